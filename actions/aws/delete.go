package aws

import (
	"context"
	"errors"
	"fmt"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/stanchhq/stanch/actions"
)

// DeleteKeyParams are the parameters of aws.delete_key.
type DeleteKeyParams struct {
	AccessKeyID string `json:"access_key_id" required:"true" doc:"the access key to delete (AKIA…)"`
	UserName    string `json:"user_name" doc:"the IAM user owning the key; found with GetAccessKeyLastUsed when empty"`
	Account     string `json:"account" doc:"the account of the key; its response role is used when it is not stanch's own"`
	// AllowActive must be set to delete a key that is still Active.
	AllowActive bool `json:"allow_active" doc:"delete even an Active key (by default only an Inactive one: deactivate first)"`
}

func deleteKey(p *Provider) actions.Action {
	return actions.New(actions.Definition[DeleteKeyParams]{
		Name:    "aws.delete_key",
		Summary: "Delete an IAM user's access key (irreversible; normally after approval). Already gone is success.",
		Outputs: []actions.Output{
			{Name: "user_name", Type: "string", Doc: "the user that owned the key"},
			{Name: "deleted", Type: "bool", Doc: "true when this step deleted it, false when it was already gone"},
		},
		Permissions: []actions.Permission{
			{Name: "iam:GetAccessKeyLastUsed", Why: "find the key's owner when user_name is not given"},
			{Name: "iam:ListAccessKeys", Why: "check the key exists and is inactive, and verify it is gone"},
			{Name: "iam:DeleteAccessKey", Why: "delete the key"},
		},
		Example: `- id: delete
  action: aws.delete_key
  approval: {approvers: [security-oncall], timeout: 24h}
  with:
    access_key_id: ${{ alert.credential.id }}
    user_name: ${{ steps.identify.outputs.user_name }}
`,
		Validate: func(in *DeleteKeyParams) error { return checkKeyID(in.AccessKeyID) },
		PlanFunc: func(ctx context.Context, _ actions.Env, in *DeleteKeyParams) (actions.Plan, error) {
			st, err := p.deleteState(ctx, in)
			if err != nil {
				return actions.Plan{}, err
			}
			plan := actions.Plan{Calls: st.calls, Outputs: map[string]any{"user_name": st.user, "deleted": st.status != ""}}
			switch {
			case st.status == "":
				plan.Summary = fmt.Sprintf("%s is already gone: nothing to delete", in.AccessKeyID)
			case st.status == statusActive && !in.AllowActive:
				// An earlier step of the run usually deactivates it first.
				plan.Summary = fmt.Sprintf("would delete %s of %s once it is Inactive (it is Active now, and an Active key is refused)", in.AccessKeyID, st.user)
				plan.Calls = append(plan.Calls, actions.Call{Service: "iam", Operation: "DeleteAccessKey", Params: map[string]any{"AccessKeyId": in.AccessKeyID, "UserName": st.user}, Mutates: true})
			default:
				plan.Summary = fmt.Sprintf("would delete %s of %s (now %s)", in.AccessKeyID, st.user, st.status)
				plan.Calls = append(plan.Calls, actions.Call{Service: "iam", Operation: "DeleteAccessKey", Params: map[string]any{"AccessKeyId": in.AccessKeyID, "UserName": st.user}, Mutates: true})
			}
			return plan, nil
		},
		DoFunc: func(ctx context.Context, _ actions.Env, in *DeleteKeyParams) (actions.Result, error) {
			return p.delete(ctx, in)
		},
	})
}

func (p *Provider) delete(ctx context.Context, in *DeleteKeyParams) (actions.Result, error) {
	st, err := p.deleteState(ctx, in)
	if err != nil {
		return actions.Result{}, err
	}
	switch {
	case st.status == "":
		return actions.Result{Outcome: actions.Already, Message: in.AccessKeyID + " was already deleted", Outputs: map[string]any{"user_name": st.user, "deleted": false}}, nil
	case st.status == statusActive && !in.AllowActive:
		return actions.Result{}, actions.Permanentf("delete key %s: it is still Active; deactivate it first (or set allow_active)", in.AccessKeyID)
	}
	_, err = st.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{AccessKeyId: awssdk.String(in.AccessKeyID), UserName: awssdk.String(st.user)})
	var nse *iamtypes.NoSuchEntityException
	if err != nil && !errors.As(err, &nse) {
		return actions.Result{}, fmt.Errorf("delete key %s: iam:DeleteAccessKey: %w", in.AccessKeyID, classify(err))
	}
	if _, err := listedStatus(ctx, st.iam, st.user, in.AccessKeyID); err == nil {
		return actions.Result{}, actions.Retryable(fmt.Errorf("delete key %s: it is still listed after DeleteAccessKey", in.AccessKeyID))
	}
	return actions.Result{Outcome: actions.Done, Message: fmt.Sprintf("%s of %s deleted (was %s)", in.AccessKeyID, st.user, st.status), Outputs: map[string]any{"user_name": st.user, "deleted": true}}, nil
}

type deleteCheck struct {
	iam    *iam.Client
	user   string
	status string // "" when the key is gone
	calls  []actions.Call
}

func (p *Provider) deleteState(ctx context.Context, in *DeleteKeyParams) (deleteCheck, error) {
	c, err := p.iam(ctx, in.Account)
	if err != nil {
		return deleteCheck{}, fmt.Errorf("delete key %s: %w", in.AccessKeyID, err)
	}
	st := deleteCheck{iam: c, user: in.UserName}
	if st.user == "" {
		st.calls = append(st.calls, actions.Call{Service: "iam", Operation: "GetAccessKeyLastUsed", Params: map[string]any{"AccessKeyId": in.AccessKeyID}, Made: true})
		last, err := c.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: awssdk.String(in.AccessKeyID)})
		if err != nil {
			// A deleted key has no owner to find: IAM answers as for a key
			// it will not show, so the key is treated as gone only when the
			// owner was given.
			return deleteCheck{}, fmt.Errorf("delete key %s: find its owner: iam:GetAccessKeyLastUsed: %w", in.AccessKeyID, classify(err))
		}
		st.user = awssdk.ToString(last.UserName)
	}
	st.calls = append(st.calls, actions.Call{Service: "iam", Operation: "ListAccessKeys", Params: map[string]any{"UserName": st.user}, Made: true})
	status, err := listedStatus(ctx, c, st.user, in.AccessKeyID)
	if err != nil {
		if errors.Is(err, errKeyNotListed) {
			return st, nil // already gone
		}
		return deleteCheck{}, fmt.Errorf("delete key %s: %w", in.AccessKeyID, err)
	}
	st.status = status
	return st, nil
}
