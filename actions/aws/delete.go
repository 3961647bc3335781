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
	AccessKeyID string `json:"access_key_id" target:"credential" doc:"the access key to delete (AKIA…); default: the run's credential once identified"`
	UserName    string `json:"user_name" target:"user" doc:"the IAM user owning the key; default: the owner the run identified, else found with GetAccessKeyLastUsed"`
	Account     string `json:"account" target:"account" doc:"the account of the key; default: the owner's account once identified, else stanch's own"`
	// AllowActive must be set to delete a key that is still Active.
	AllowActive bool `json:"allow_active" doc:"delete even an Active key (by default only an Inactive one: deactivate first)"`
}

// DeleteKeyOutputs are the outputs of aws.delete_key.
type DeleteKeyOutputs struct {
	UserName string `json:"user_name" doc:"the user that owned the key"`
	Deleted  bool   `json:"deleted" doc:"true when this step deleted it, false when it was already gone"`
}

func deleteKey(p *Provider) actions.Action {
	return actions.New(actions.Definition[DeleteKeyParams, DeleteKeyOutputs]{
		Name:        "aws.delete_key",
		Summary:     "Delete an IAM user's access key (irreversible; normally after approval). Already gone is success, once verified in the key's own account.",
		Containment: true,
		Permissions: []actions.Permission{
			{Name: "iam:GetAccessKeyLastUsed", Why: "find the key's owner when user_name is not given, and make sure a key not listed is really gone"},
			{Name: "iam:ListAccessKeys", Why: "check the key exists and is inactive, and verify it is gone"},
			{Name: "iam:DeleteAccessKey", Why: "delete the key"},
			{Name: "sts:GetAccessKeyInfo", Why: "make sure the key is in the account the step acts in, when no earlier step identified it"},
		},
		Example: `- id: delete
  action: aws.delete_key
  approval: {approvers: [security-oncall], timeout: 24h}
  with:
    access_key_id: ${{ alert.credential.id }}
`,
		Validate: func(in DeleteKeyParams) error { return checkKeyID(in.AccessKeyID) },
		PlanFunc: func(ctx context.Context, env actions.Env, in *DeleteKeyParams) (actions.PlanOf[DeleteKeyOutputs], error) {
			st, err := p.deleteState(ctx, env, in)
			if err != nil {
				return actions.PlanOf[DeleteKeyOutputs]{}, err
			}
			plan := actions.PlanOf[DeleteKeyOutputs]{Calls: st.calls, Outputs: &DeleteKeyOutputs{UserName: st.user, Deleted: st.status != ""}}
			del := actions.Call{Service: "iam", Operation: "DeleteAccessKey", Params: map[string]any{"AccessKeyId": in.AccessKeyID, "UserName": st.user}, Mutates: true,
				Account: st.account, Irreversible: true, Effect: fmt.Sprintf("delete access key %s of user %s in account %s", in.AccessKeyID, st.user, st.account)}
			switch {
			case st.status == "":
				plan.Summary = fmt.Sprintf("%s is already gone from account %s: nothing to delete", in.AccessKeyID, st.account)
				plan.Settled = actions.Already
			case st.status == statusActive && !in.AllowActive:
				// An earlier step of the run usually deactivates it first.
				plan.Summary = fmt.Sprintf("would delete %s of %s in account %s once it is Inactive (it is Active now, and an Active key is refused)", in.AccessKeyID, st.user, st.account)
				plan.Calls = append(plan.Calls, del)
			default:
				plan.Summary = fmt.Sprintf("would delete %s of %s in account %s (now %s)", in.AccessKeyID, st.user, st.account, st.status)
				plan.Calls = append(plan.Calls, del)
			}
			return plan, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *DeleteKeyParams) (actions.ResultOf[DeleteKeyOutputs], error) {
			return p.delete(ctx, env, in)
		},
	})
}

func (p *Provider) delete(ctx context.Context, env actions.Env, in *DeleteKeyParams) (actions.ResultOf[DeleteKeyOutputs], error) {
	type result = actions.ResultOf[DeleteKeyOutputs]
	st, err := p.deleteState(ctx, env, in)
	if err != nil {
		return result{}, err
	}
	switch {
	case st.status == "":
		return result{Outcome: actions.Already, Message: fmt.Sprintf("%s was already deleted: user %s in account %s no longer has it", in.AccessKeyID, st.user, st.account),
			Outputs: &DeleteKeyOutputs{UserName: st.user, Deleted: false}}, nil
	case st.status == statusActive && !in.AllowActive:
		return result{}, actions.Permanentf("delete key %s: it is still Active; deactivate it first (or set allow_active); nothing was changed", in.AccessKeyID)
	}
	_, err = st.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{AccessKeyId: awssdk.String(in.AccessKeyID), UserName: awssdk.String(st.user)})
	var nse *iamtypes.NoSuchEntityException
	if err != nil && !errors.As(err, &nse) {
		return result{}, fmt.Errorf("delete key %s: iam:DeleteAccessKey: %w", in.AccessKeyID, classify(err))
	}
	env.Record(actions.Effect{Description: fmt.Sprintf("deleted access key %s of user %s in account %s", in.AccessKeyID, st.user, st.account), Irreversible: true})
	if _, err := listedStatus(ctx, st.iam, st.user, in.AccessKeyID); err == nil {
		return result{}, actions.Retryable(fmt.Errorf("delete key %s: it is still listed after DeleteAccessKey", in.AccessKeyID))
	}
	return result{Outcome: actions.Done, Message: fmt.Sprintf("%s of %s in account %s deleted (was %s)", in.AccessKeyID, st.user, st.account, st.status),
		Outputs: &DeleteKeyOutputs{UserName: st.user, Deleted: true}}, nil
}

type deleteCheck struct {
	iam     *iam.Client
	account string
	user    string
	status  string // "" when the key is gone
	calls   []actions.Call
}

// deleteState is the check half of delete_key. A key that its user does
// not list is called gone only once IAM in the same account confirms that
// no user there has it: a user of the same name elsewhere, or the wrong
// user, is never taken for proof that the key was deleted.
func (p *Provider) deleteState(ctx context.Context, env actions.Env, in *DeleteKeyParams) (deleteCheck, error) {
	fail := func(err error) (deleteCheck, error) {
		return deleteCheck{}, fmt.Errorf("delete key %s: %w", in.AccessKeyID, err)
	}
	account, calls, err := p.keyAccount(ctx, env, in.AccessKeyID, in.Account)
	if err != nil {
		return fail(err)
	}
	c, err := p.iam(ctx, account)
	if err != nil {
		return fail(err)
	}
	st := deleteCheck{iam: c, account: account, user: in.UserName, calls: calls}
	if st.user == "" {
		owner, call, err := p.keyOwner(ctx, account, in.AccessKeyID)
		st.calls = append(st.calls, call)
		if err != nil {
			// A deleted key has no owner to find: IAM answers as for a key
			// it will not show, so the key is treated as gone only when the
			// owner was given.
			return fail(fmt.Errorf("find its owner: %w", err))
		}
		st.user = owner
	}
	st.calls = append(st.calls, actions.Call{Service: "iam", Operation: "ListAccessKeys", Params: map[string]any{"UserName": st.user}, Made: true, Account: account})
	status, err := listedStatus(ctx, c, st.user, in.AccessKeyID)
	if err == nil {
		st.status = status
		return st, nil
	}
	if !errors.Is(err, errKeyNotListed) {
		return fail(err)
	}
	// Not listed: gone, unless IAM still knows the key under another user.
	owner, call, lookupErr := p.keyOwner(ctx, account, in.AccessKeyID)
	st.calls = append(st.calls, call)
	switch {
	case lookupErr == nil && owner != "" && owner != st.user:
		return fail(actions.Permanentf("it belongs to user %s, not to %s, in account %s; nothing was changed", owner, st.user, account))
	case lookupErr == nil && owner == st.user:
		// Listed a moment ago under no one, known to IAM now: let the
		// step try again rather than guess.
		return fail(actions.Retryable(fmt.Errorf("user %s does not list it, yet IAM knows it as theirs", st.user)))
	case lookupErr != nil && actions.KindOf(lookupErr) != actions.KindPermanent:
		return fail(lookupErr)
	}
	return st, nil // already gone
}
