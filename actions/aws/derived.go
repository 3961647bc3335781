package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/stanchhq/stanch/actions"
)

// DerivedCredential is one entry of aws.cloudtrail_impact's
// derived_credentials output.
type DerivedCredential struct {
	AccessKeyID    string `json:"access_key_id"`
	Kind           string `json:"kind"` // access_key or session
	UserName       string `json:"user_name"`
	CreatedByEvent string `json:"created_by_event"`
	CreatedByKey   string `json:"created_by_key"`
	Region         string `json:"region"`
	Time           string `json:"time"`
	Depth          int    `json:"depth"`
}

// ContainDerivedParams are the parameters of aws.contain_derived.
type ContainDerivedParams struct {
	Derived []DerivedCredential `json:"derived" required:"true" doc:"the credentials to contain: ${{ steps.impact.outputs.derived_credentials }}"`
	Mode    string              `json:"mode" doc:"deactivate (the default) or delete the attacker's access keys"`
	Account string              `json:"account" doc:"the account; its response role is used when it is not stanch's own"`
}

func containDerived(p *Provider) actions.Action {
	return actions.New(actions.Definition[ContainDerivedParams]{
		Name:    "aws.contain_derived",
		Summary: "Contain the credentials a leaked key minted or created: deactivate (or delete) attacker-created keys, revoke the sessions of the users that minted session credentials.",
		Outputs: []actions.Output{{Name: "contained", Type: "list", Doc: "per credential: access_key_id, action, outcome"}},
		Permissions: []actions.Permission{
			{Name: "iam:GetAccessKeyLastUsed", Why: "find the owner of an attacker-created key"},
			{Name: "iam:ListAccessKeys", Why: "check and verify the key's status"},
			{Name: "iam:UpdateAccessKey", Why: "deactivate attacker-created keys"},
			{Name: "iam:DeleteAccessKey", Why: "delete attacker-created keys (mode: delete)"},
			{Name: "iam:GetUserPolicy", Why: "read the session cutoff of the minting user"},
			{Name: "iam:PutUserPolicy", Why: "revoke the sessions minted from the leaked key"},
		},
		Example: `- id: contain_derived
  action: aws.contain_derived
  if: len(steps.impact.outputs.derived_credentials) > 0
  approval: {approvers: [security-oncall], timeout: 4h}
  with:
    derived: ${{ steps.impact.outputs.derived_credentials }}
    account: ${{ steps.identify.outputs.account }}
`,
		Validate: func(in *ContainDerivedParams) error {
			switch in.Mode {
			case "":
				in.Mode = "deactivate"
			case "deactivate", "delete":
			default:
				return fmt.Errorf("mode %q: want deactivate or delete", in.Mode)
			}
			for _, d := range in.Derived {
				if d.Kind != "access_key" && d.Kind != "session" {
					return fmt.Errorf("derived credential %s: kind %q is not access_key or session", d.AccessKeyID, d.Kind)
				}
			}
			return nil
		},
		PlanFunc: func(_ context.Context, _ actions.Env, in *ContainDerivedParams) (actions.Plan, error) {
			plan := actions.Plan{Summary: fmt.Sprintf("would contain %d derived credential(s)", len(in.Derived))}
			for _, d := range in.Derived {
				if d.Kind == "session" {
					plan.Calls = append(plan.Calls, actions.Call{Service: "iam", Operation: "PutUserPolicy", Params: map[string]any{"UserName": d.UserName, "PolicyName": defaultRevokePolicy}, Mutates: true})
					continue
				}
				op := "UpdateAccessKey"
				if in.Mode == "delete" {
					op = "DeleteAccessKey"
				}
				plan.Calls = append(plan.Calls, actions.Call{Service: "iam", Operation: op, Params: map[string]any{"AccessKeyId": d.AccessKeyID, "UserName": d.UserName}, Mutates: true})
			}
			return plan, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *ContainDerivedParams) (actions.Result, error) {
			return p.containDerived(ctx, env, in)
		},
	})
}

// containDerived tries every credential even when one fails, and fails the
// step only after all were tried.
func (p *Provider) containDerived(ctx context.Context, env actions.Env, in *ContainDerivedParams) (actions.Result, error) {
	var contained []map[string]any
	var lines []string
	var errs []error
	anyDone := false
	for _, d := range in.Derived {
		action, res, err := p.containOne(ctx, env, in, d)
		entry := map[string]any{"access_key_id": d.AccessKeyID, "action": action, "outcome": string(res.Outcome)}
		if err != nil {
			entry["outcome"], entry["error"] = "failed", err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", d.AccessKeyID, err))
		} else if res.Outcome == actions.Done {
			anyDone = true
		}
		contained = append(contained, entry)
		lines = append(lines, fmt.Sprintf("%s %s: %s", d.AccessKeyID, action, entry["outcome"]))
	}
	if contained == nil {
		contained = []map[string]any{}
	}
	msg := strings.Join(lines, "; ")
	if len(errs) > 0 {
		err := errors.Join(errs...)
		// Permanent only when every failure is: a throttled one is worth
		// another attempt of the whole step, which skips what is done.
		for _, e := range errs {
			if actions.KindOf(e) != actions.KindPermanent {
				return actions.Result{}, actions.Retryable(fmt.Errorf("contain derived credentials: %s: %w", msg, err))
			}
		}
		return actions.Result{}, actions.Permanent(fmt.Errorf("contain derived credentials: %s: %w", msg, err))
	}
	outcome := actions.Already
	if anyDone {
		outcome = actions.Done
	}
	if len(in.Derived) == 0 {
		outcome, msg = actions.NoOp, "no derived credentials"
	}
	return actions.Result{Outcome: outcome, Message: msg, Outputs: map[string]any{"contained": contained}}, nil
}

func (p *Provider) containOne(ctx context.Context, env actions.Env, in *ContainDerivedParams, d DerivedCredential) (string, actions.Result, error) {
	if d.Kind == "session" {
		// Session credentials cannot be deactivated: deny every session of
		// the user that minted them.
		if d.UserName == "" {
			return "revoke_sessions", actions.Result{}, actions.Permanentf("no user recorded for the session %s", d.AccessKeyID)
		}
		res, err := p.revoke(ctx, env, &RevokeSessionsParams{UserName: d.UserName, Account: in.Account, PolicyName: defaultRevokePolicy})
		return "revoke_sessions of user/" + d.UserName, res, err
	}
	user := d.UserName
	if user == "" {
		c, err := p.iam(ctx, in.Account)
		if err != nil {
			return "deactivate", actions.Result{}, err
		}
		last, err := c.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: awssdk.String(d.AccessKeyID)})
		if err != nil {
			return "deactivate", actions.Result{}, classify(fmt.Errorf("find the owner: iam:GetAccessKeyLastUsed: %w", err))
		}
		user = awssdk.ToString(last.UserName)
	}
	res, err := p.deactivate(ctx, env, &DeactivateKeyParams{AccessKeyID: d.AccessKeyID, UserName: user, Account: in.Account})
	if err != nil || in.Mode != "delete" {
		return "deactivate", res, err
	}
	res, err = p.delete(ctx, &DeleteKeyParams{AccessKeyID: d.AccessKeyID, UserName: user, Account: in.Account})
	return "delete", res, err
}
