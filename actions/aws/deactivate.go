package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/stanchhq/stanch/actions"
)

// DeactivateKeyParams are the parameters of aws.deactivate_key.
type DeactivateKeyParams struct {
	AccessKeyID string `json:"access_key_id" target:"credential" doc:"the access key to deactivate (AKIA…); default: the run's credential once identified"`
	UserName    string `json:"user_name" target:"user" doc:"the IAM user owning the key; default: the owner the run identified, else found with GetAccessKeyLastUsed"`
	Account     string `json:"account" target:"account" doc:"the account the key is in; default: the owner's account once identified, else stanch's own"`
}

// DeactivateKeyOutputs are the outputs of aws.deactivate_key.
type DeactivateKeyOutputs struct {
	UserName       string `json:"user_name" doc:"the user owning the key"`
	PreviousStatus string `json:"previous_status" doc:"Active or Inactive, before the step"`
	Status         string `json:"status" doc:"Inactive"`
}

func deactivateKey(p *Provider) actions.Action {
	return actions.New(actions.Definition[DeactivateKeyParams, DeactivateKeyOutputs]{
		Name:        "aws.deactivate_key",
		Summary:     "Make an IAM user's access key Inactive (reversible), touching no other key.",
		Containment: true,
		Permissions: []actions.Permission{
			{Name: "iam:GetAccessKeyLastUsed", Why: "find the key's owner when user_name is not given"},
			{Name: "iam:ListAccessKeys", Why: "check the key's status before and after"},
			{Name: "iam:UpdateAccessKey", Why: "set the key Inactive"},
			{Name: "sts:GetCallerIdentity", Why: "know whether the key's account needs a response role"},
			{Name: "sts:GetAccessKeyInfo", Why: "make sure the key is in the account the step acts in, when no earlier step identified it"},
		},
		Example: `- id: deactivate
  action: aws.deactivate_key
  with:
    access_key_id: ${{ alert.credential.id }}
    user_name: ${{ steps.identify.outputs.user_name }}
`,
		Validate: func(in DeactivateKeyParams) error {
			if strings.HasPrefix(in.AccessKeyID, "ASIA") {
				return fmt.Errorf("access_key_id %s is a temporary (role session) credential: IAM cannot deactivate it; revoke the role's sessions instead", in.AccessKeyID)
			}
			return checkKeyID(in.AccessKeyID)
		},
		PlanFunc: func(ctx context.Context, env actions.Env, in *DeactivateKeyParams) (actions.PlanOf[DeactivateKeyOutputs], error) {
			st, err := p.keyState(ctx, env, in)
			if err != nil {
				return actions.PlanOf[DeactivateKeyOutputs]{}, err
			}
			plan := actions.PlanOf[DeactivateKeyOutputs]{Calls: st.calls, Outputs: st.outputs()}
			if st.status == statusInactive {
				plan.Summary = fmt.Sprintf("%s of %s in account %s is already Inactive: nothing to change", in.AccessKeyID, st.user, st.account)
				plan.Settled = actions.Already
				return plan, nil
			}
			plan.Summary = fmt.Sprintf("would deactivate %s of %s in account %s (now %s), then re-read it until it reads Inactive", in.AccessKeyID, st.user, st.account, st.status)
			plan.Calls = append(plan.Calls,
				actions.Call{Service: "iam", Operation: "UpdateAccessKey", Params: map[string]any{"AccessKeyId": in.AccessKeyID, "Status": statusInactive, "UserName": st.user}, Mutates: true,
					Account: st.account, Effect: fmt.Sprintf("deactivate access key %s of user %s in account %s", in.AccessKeyID, st.user, st.account)},
				actions.Call{Service: "iam", Operation: "ListAccessKeys", Params: map[string]any{"UserName": st.user}, Account: st.account})
			return plan, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *DeactivateKeyParams) (actions.ResultOf[DeactivateKeyOutputs], error) {
			return p.deactivate(ctx, env, in)
		},
	})
}

const (
	statusActive   = string(iamtypes.StatusTypeActive)
	statusInactive = string(iamtypes.StatusTypeInactive)
)

type keyState struct {
	iam     *iam.Client
	account string
	user    string
	status  string
	calls   []actions.Call
}

// outputs are the step's outputs once the key reads Inactive.
func (st keyState) outputs() *DeactivateKeyOutputs {
	return &DeactivateKeyOutputs{UserName: st.user, PreviousStatus: st.status, Status: statusInactive}
}

// keyState is the check half of deactivate: who owns the key and what its
// status is now. Every call it makes is read-only.
func (p *Provider) keyState(ctx context.Context, env actions.Env, in *DeactivateKeyParams) (keyState, error) {
	fail := func(err error) (keyState, error) {
		return keyState{}, fmt.Errorf("deactivate key %s: %w", in.AccessKeyID, err)
	}
	var st keyState
	account, calls, err := p.keyAccount(ctx, env, in.AccessKeyID, in.Account)
	if err != nil {
		return fail(err)
	}
	c, err := p.iam(ctx, account)
	if err != nil {
		return fail(err)
	}
	st.iam, st.account, st.user, st.calls = c, account, in.UserName, calls
	if st.user == "" {
		st.calls = append(st.calls, actions.Call{Service: "iam", Operation: "GetAccessKeyLastUsed", Params: map[string]any{"AccessKeyId": in.AccessKeyID}, Made: true})
		last, err := c.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: awssdk.String(in.AccessKeyID)})
		if err != nil {
			return fail(classify(fmt.Errorf("find the key's owner: iam:GetAccessKeyLastUsed: %w", err)))
		}
		st.user = awssdk.ToString(last.UserName)
	}
	st.calls = append(st.calls, actions.Call{Service: "iam", Operation: "ListAccessKeys", Params: map[string]any{"UserName": st.user}, Made: true})
	status, err := listedStatus(ctx, c, st.user, in.AccessKeyID)
	if err != nil {
		return fail(err)
	}
	st.status = status
	return st, nil
}

// listedStatus returns the status of keyID among user's keys. A key that is
// not the user's is a permanent error: stanch never touches another key.
func listedStatus(ctx context.Context, c *iam.Client, user, keyID string) (string, error) {
	pages := iam.NewListAccessKeysPaginator(c, &iam.ListAccessKeysInput{UserName: awssdk.String(user)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return "", classify(fmt.Errorf("iam:ListAccessKeys for user %s: %w", user, err))
		}
		for _, k := range page.AccessKeyMetadata {
			if awssdk.ToString(k.AccessKeyId) == keyID {
				return string(k.Status), nil
			}
		}
	}
	return "", actions.Permanent(fmt.Errorf("IAM user %s has no access key %s: %w; nothing was changed", user, keyID, errKeyNotListed))
}

// errKeyNotListed says a key is not among its user's keys.
var errKeyNotListed = errors.New("key not listed")

func (p *Provider) deactivate(ctx context.Context, env actions.Env, in *DeactivateKeyParams) (actions.ResultOf[DeactivateKeyOutputs], error) {
	type result = actions.ResultOf[DeactivateKeyOutputs]
	st, err := p.keyState(ctx, env, in)
	if err != nil {
		return result{}, err
	}
	out := st.outputs()
	if st.status == statusInactive {
		return result{Outcome: actions.Already, Message: fmt.Sprintf("%s of %s in account %s was already Inactive; nothing changed", in.AccessKeyID, st.user, st.account), Outputs: out}, nil
	}
	_, err = st.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{
		AccessKeyId: awssdk.String(in.AccessKeyID),
		Status:      iamtypes.StatusTypeInactive,
		UserName:    awssdk.String(st.user),
	})
	if err != nil {
		return result{}, fmt.Errorf("deactivate key %s: iam:UpdateAccessKey: %w", in.AccessKeyID, classify(err))
	}
	env.Log().Info("access key deactivated", "key", in.AccessKeyID, "user", st.user, "account", st.account)
	env.Record(actions.Effect{Description: fmt.Sprintf("deactivated access key %s of user %s in account %s", in.AccessKeyID, st.user, st.account)})
	// Verify: IAM is eventually consistent, so re-read a few times.
	for attempt := 1; ; attempt++ {
		status, err := listedStatus(ctx, st.iam, st.user, in.AccessKeyID)
		if err != nil {
			return result{}, fmt.Errorf("deactivate key %s: verify: %w", in.AccessKeyID, err)
		}
		if status == statusInactive {
			break
		}
		if attempt >= p.opts.VerifyAttempts {
			return result{}, actions.Retryable(fmt.Errorf("deactivate key %s: still reads %s after UpdateAccessKey", in.AccessKeyID, status))
		}
		select {
		case <-ctx.Done():
			return result{}, actions.Retryable(fmt.Errorf("deactivate key %s: verify: %w", in.AccessKeyID, ctx.Err()))
		case <-time.After(p.opts.VerifyDelay):
		}
	}
	return result{Outcome: actions.Done, Message: fmt.Sprintf("%s of %s in account %s deactivated (was %s); verified Inactive", in.AccessKeyID, st.user, st.account, st.status), Outputs: out}, nil
}
