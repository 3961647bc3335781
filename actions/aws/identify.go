package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/stanchhq/stanch/actions"
)

// IdentifyKeyParams are the parameters of aws.identify_key.
type IdentifyKeyParams struct {
	AccessKeyID string `json:"access_key_id" required:"true" target:"credential" doc:"the leaked access key id (AKIA… or ASIA…)"`
}

// IdentifyKeyOutputs are the outputs of aws.identify_key.
type IdentifyKeyOutputs struct {
	Account         string `json:"account" doc:"the 12-digit account that owns the key"`
	UserName        string `json:"user_name" doc:"the IAM user that owns the key; \"\" for role-session (ASIA) keys"`
	KeyKind         string `json:"key_kind" doc:"access_key (AKIA) or role_session (ASIA)"`
	LastUsedDate    string `json:"last_used_date" doc:"RFC 3339 time of last use, \"\" if never used"`
	LastUsedService string `json:"last_used_service" doc:"service of last use, \"N/A\" if never used"`
	LastUsedRegion  string `json:"last_used_region" doc:"region of last use, \"N/A\" if never used"`
}

func identifyKey(p *Provider) actions.Action {
	return actions.New(actions.Definition[IdentifyKeyParams, IdentifyKeyOutputs]{
		Name:    "aws.identify_key",
		Summary: "Find the account and IAM user an access key belongs to, and when it was last used.",
		Permissions: []actions.Permission{
			{Name: "sts:GetAccessKeyInfo", Why: "find the account that owns the key"},
			{Name: "sts:GetCallerIdentity", Why: "know which account stanch's own credentials act in"},
			{Name: "iam:GetAccessKeyLastUsed", Why: "find the key's owner and its last use"},
		},
		Example: `- id: identify
  action: aws.identify_key
  with:
    access_key_id: ${{ alert.credential.id }}
`,
		Validate: func(in IdentifyKeyParams) error { return checkKeyID(in.AccessKeyID) },
		PlanFunc: func(ctx context.Context, _ actions.Env, in *IdentifyKeyParams) (actions.PlanOf[IdentifyKeyOutputs], error) {
			res, calls, err := p.identify(ctx, in.AccessKeyID)
			if err != nil {
				return actions.PlanOf[IdentifyKeyOutputs]{}, err
			}
			return actions.PlanOf[IdentifyKeyOutputs]{Summary: res.Message, Calls: calls, Outputs: res.Outputs, Owner: res.Owner}, nil
		},
		DoFunc: func(ctx context.Context, _ actions.Env, in *IdentifyKeyParams) (actions.ResultOf[IdentifyKeyOutputs], error) {
			res, _, err := p.identify(ctx, in.AccessKeyID)
			return res, err
		},
	})
}

// identify is read-only, so Plan and Do share it.
func (p *Provider) identify(ctx context.Context, keyID string) (actions.ResultOf[IdentifyKeyOutputs], []actions.Call, error) {
	type result = actions.ResultOf[IdentifyKeyOutputs]
	fail := func(err error) (result, []actions.Call, error) {
		return result{}, nil, fmt.Errorf("identify key %s: %w", keyID, err)
	}
	stsc, err := p.sts(ctx, "")
	if err != nil {
		return fail(actions.Permanent(err))
	}
	calls := []actions.Call{{Service: "sts", Operation: "GetAccessKeyInfo", Params: map[string]any{"AccessKeyId": keyID}, Made: true}}
	info, err := stsc.GetAccessKeyInfo(ctx, &sts.GetAccessKeyInfoInput{AccessKeyId: awssdk.String(keyID)})
	if err != nil {
		return fail(classify(fmt.Errorf("sts:GetAccessKeyInfo: %w", err)))
	}
	account := awssdk.ToString(info.Account)
	ambient, err := p.ambientAccount(ctx)
	if err != nil {
		return fail(err)
	}
	calls = append(calls, actions.Call{Service: "sts", Operation: "GetCallerIdentity", Params: map[string]any{}, Made: true})
	out := &IdentifyKeyOutputs{Account: account, KeyKind: "access_key", LastUsedService: "N/A", LastUsedRegion: "N/A"}
	if strings.HasPrefix(keyID, "ASIA") {
		// Temporary credentials have no IAM owner to look up: the role they
		// were issued for is found in CloudTrail.
		out.KeyKind = "role_session"
		return result{Outcome: actions.Done, Message: fmt.Sprintf("%s is a role-session credential of account %s", keyID, account), Outputs: out,
			Owner: &actions.Owner{Account: account, Credential: keyID}}, calls, nil
	}
	iamc, err := p.iam(ctx, account)
	if err != nil {
		return fail(fmt.Errorf("the key belongs to account %s: %w", account, err))
	}
	if account != ambient {
		calls = append(calls, actions.Call{Service: "sts", Operation: "AssumeRole", Params: map[string]any{"Account": account}, Made: true})
	}
	calls = append(calls, actions.Call{Service: "iam", Operation: "GetAccessKeyLastUsed", Params: map[string]any{"AccessKeyId": keyID}, Made: true})
	last, err := iamc.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: awssdk.String(keyID)})
	if err != nil {
		return fail(classify(fmt.Errorf("iam:GetAccessKeyLastUsed: %w", err)))
	}
	user := awssdk.ToString(last.UserName)
	out.UserName = user
	used := "never used"
	if u := last.AccessKeyLastUsed; u != nil {
		out.LastUsedService = awssdk.ToString(u.ServiceName)
		out.LastUsedRegion = awssdk.ToString(u.Region)
		if u.LastUsedDate != nil {
			out.LastUsedDate = u.LastUsedDate.UTC().Format(time.RFC3339)
			used = fmt.Sprintf("last used %s (%s, %s)", out.LastUsedDate, out.LastUsedService, out.LastUsedRegion)
		}
	}
	return result{Outcome: actions.Done, Message: fmt.Sprintf("%s belongs to IAM user %s in account %s; %s", keyID, user, account, used), Outputs: out,
		Owner: &actions.Owner{Account: account, User: user, Credential: keyID}}, calls, nil
}

func checkKeyID(id string) error {
	if id == "" {
		return errors.New("access_key_id is needed: identify the key in an earlier step (aws.identify_key), whose owner every later step acts on, or give it")
	}
	if len(id) != 20 || !(strings.HasPrefix(id, "AKIA") || strings.HasPrefix(id, "ASIA")) {
		return fmt.Errorf("access_key_id %q is not an AWS access key id (AKIA… or ASIA…, 20 characters)", id)
	}
	return nil
}
