package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/stanchhq/stanch/actions"
)

// DerivedCredential is one entry of aws.cloudtrail_impact's
// derived_credentials output: a credential minted (kind session) or
// created (kind access_key) with a leaked key. The other fields the impact
// step reports (region, time, depth, …) are ignored.
type DerivedCredential struct {
	AccessKeyID string `json:"access_key_id"`
	Kind        string `json:"kind"` // access_key or session
	// UserName owns an access key, or minted a session
	// (GetSessionToken, GetFederationToken).
	UserName string `json:"user_name"`
	// RoleName or RoleARN name the role of an AssumeRole session, whose
	// permissions are the role's: its sessions are revoked on the role.
	RoleName       string `json:"role_name"`
	RoleARN        string `json:"role_arn"`
	CreatedByEvent string `json:"created_by_event"`
	CreatedByKey   string `json:"created_by_key"`
}

// ContainDerivedParams are the parameters of aws.contain_derived.
type ContainDerivedParams struct {
	Derived []map[string]any `json:"derived" required:"true" doc:"the credentials to contain, each with access_key_id, kind (access_key or session) and optionally user_name or role_name: ${{ steps.impact.outputs.derived_credentials }}"`
	Mode    string           `json:"mode" doc:"deactivate (the default) or delete the attacker's access keys"`
	Account string           `json:"account" target:"account" doc:"the account; default: the owner's account once identified, else stanch's own; its response role is used when it is not stanch's own"`
}

// ContainDerivedOutputs are the outputs of aws.contain_derived.
type ContainDerivedOutputs struct {
	Contained []map[string]any `json:"contained" doc:"per credential: access_key_id, action (deactivate, delete, revoke_sessions), outcome (done, already), and principal for sessions"`
}

const (
	containDeactivate = "deactivate"
	containDelete     = "delete"
	containRevoke     = "revoke_sessions"
)

func containDerived(p *Provider) actions.Action {
	return actions.New(actions.Definition[ContainDerivedParams, ContainDerivedOutputs]{
		Name:    "aws.contain_derived",
		Summary: "Contain the credentials a leaked key minted or created: deactivate (or delete) attacker-created keys, revoke the sessions of the users or roles that minted session credentials. Tries every credential before failing.",
		Permissions: []actions.Permission{
			{Name: "iam:GetAccessKeyLastUsed", Why: "find the owner of an attacker-created key, or of the key that minted a session"},
			{Name: "iam:ListAccessKeys", Why: "check and verify the key's status"},
			{Name: "iam:UpdateAccessKey", Why: "deactivate attacker-created keys"},
			{Name: "iam:DeleteAccessKey", Why: "delete attacker-created keys (mode: delete)"},
			{Name: "iam:GetUserPolicy", Why: "read the session cutoff of the minting user"},
			{Name: "iam:PutUserPolicy", Why: "revoke the sessions minted by a user"},
			{Name: "iam:GetRolePolicy", Why: "read the session cutoff of an assumed role"},
			{Name: "iam:PutRolePolicy", Why: "revoke the sessions of an assumed role"},
			{Name: "iam:ListUserPolicies", Why: "plan: check the minting user exists"},
			{Name: "iam:ListRolePolicies", Why: "plan: check the assumed role exists"},
		},
		Example: `- id: contain_derived
  action: aws.contain_derived
  if: len(steps.impact.outputs.derived_credentials) > 0
  approval: {approvers: [security-oncall], timeout: 4h}
  with:
    derived: ${{ steps.impact.outputs.derived_credentials }}
    account: ${{ steps.identify.outputs.account }}
`,
		Provision: func(in *ContainDerivedParams) {
			if in.Mode == "" {
				in.Mode = containDeactivate
			}
		},
		Validate: func(in ContainDerivedParams) error {
			if in.Mode != containDeactivate && in.Mode != containDelete {
				return fmt.Errorf("mode %q: want deactivate or delete", in.Mode)
			}
			return nil
		},
		PlanFunc: func(ctx context.Context, env actions.Env, in *ContainDerivedParams) (actions.PlanOf[ContainDerivedOutputs], error) {
			return p.planContainDerived(ctx, env, in)
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *ContainDerivedParams) (actions.ResultOf[ContainDerivedOutputs], error) {
			return p.containDerived(ctx, env, in)
		},
	})
}

// parseDerived reads one item of the derived list.
func parseDerived(item map[string]any) (DerivedCredential, error) {
	var d DerivedCredential
	data, err := json.Marshal(item)
	if err == nil {
		err = json.Unmarshal(data, &d)
	}
	if err != nil {
		return d, actions.Permanentf("not a derived credential: %v", err)
	}
	if d.RoleName == "" && d.RoleARN != "" {
		d.RoleName, err = roleNameOf(d.RoleARN)
		if err != nil {
			return d, err
		}
	}
	switch {
	case d.AccessKeyID == "":
		return d, actions.Permanentf("no access_key_id")
	case d.Kind == "access_key" && !strings.HasPrefix(d.AccessKeyID, "AKIA"):
		return d, actions.Permanentf("kind access_key, but %s is not an AKIA… access key id", d.AccessKeyID)
	case d.Kind != "access_key" && d.Kind != "session":
		return d, actions.Permanentf("kind %q is not access_key or session", d.Kind)
	}
	return d, nil
}

// roleNameOf takes the role name out of a role ARN
// (arn:aws:iam::1:role/path/name) or an assumed-role ARN
// (arn:aws:sts::1:assumed-role/name/session).
func roleNameOf(roleARN string) (string, error) {
	a, err := arn.Parse(roleARN)
	if err == nil {
		parts := strings.Split(a.Resource, "/")
		switch {
		case parts[0] == "role" && len(parts) >= 2:
			return parts[len(parts)-1], nil
		case parts[0] == "assumed-role" && len(parts) >= 2:
			return parts[1], nil
		}
	}
	return "", actions.Permanentf("role_arn %q is not a role ARN", roleARN)
}

// containment is what one derived credential needs: the action and its
// parameters.
type containment struct {
	action string // deactivate, delete or revoke_sessions
	key    *DeactivateKeyParams
	revoke *RevokeSessionsParams
}

// containmentFor decides how to contain d. Session credentials cannot be
// deactivated: the sessions of the principal whose permissions they carry
// are revoked instead — the assumed role for AssumeRole, else the user that
// minted them.
func (p *Provider) containmentFor(ctx context.Context, in *ContainDerivedParams, d DerivedCredential) (containment, []actions.Call, error) {
	var calls []actions.Call
	if d.Kind == "access_key" {
		action := containDeactivate
		if in.Mode == containDelete {
			action = containDelete
		}
		return containment{action: action, key: &DeactivateKeyParams{AccessKeyID: d.AccessKeyID, UserName: d.UserName, Account: in.Account}}, nil, nil
	}
	c := containment{action: containRevoke, revoke: &RevokeSessionsParams{Account: in.Account, PolicyName: defaultRevokePolicy}}
	switch {
	case d.RoleName != "":
		c.revoke.RoleName = d.RoleName
	case d.CreatedByEvent == "AssumeRole":
		// The user who called AssumeRole lends the session none of its
		// own permissions: denying the user would leave the session
		// working.
		return c, nil, actions.Permanentf("the session %s was minted by AssumeRole, and the item does not name the role (role_name or role_arn); revoke that role's sessions with aws.revoke_sessions", d.AccessKeyID)
	case d.UserName != "":
		c.revoke.UserName = d.UserName
	case strings.HasPrefix(d.CreatedByKey, "AKIA"):
		user, call, err := p.keyOwner(ctx, in.Account, d.CreatedByKey)
		calls = append(calls, call)
		if err != nil {
			return c, calls, fmt.Errorf("find who minted the session %s: %w", d.AccessKeyID, err)
		}
		c.revoke.UserName = user
	default:
		return c, nil, actions.Permanentf("no user or role recorded for the session %s: revoke the sessions of the principal that minted it with aws.revoke_sessions", d.AccessKeyID)
	}
	return c, calls, nil
}

// keyOwner asks IAM which user owns keyID.
func (p *Provider) keyOwner(ctx context.Context, account, keyID string) (string, actions.Call, error) {
	call := actions.Call{Service: "iam", Operation: "GetAccessKeyLastUsed", Params: map[string]any{"AccessKeyId": keyID}, Made: true}
	c, err := p.iam(ctx, account)
	if err != nil {
		return "", call, err
	}
	last, err := c.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: awssdk.String(keyID)})
	if err != nil {
		return "", call, classify(fmt.Errorf("iam:GetAccessKeyLastUsed %s: %w", keyID, err))
	}
	return awssdk.ToString(last.UserName), call, nil
}

// planContainDerived plans no outputs: which credentials get contained, and
// how, is only known once Do tried them.
func (p *Provider) planContainDerived(ctx context.Context, env actions.Env, in *ContainDerivedParams) (actions.PlanOf[ContainDerivedOutputs], error) {
	var plan actions.PlanOf[ContainDerivedOutputs]
	var lines []string
	var errs []error
	for _, item := range in.Derived {
		d, err := parseDerived(item)
		var calls []actions.Call
		var line string
		if err == nil {
			calls, line, err = p.planOne(ctx, env, in, d)
		}
		plan.Calls = append(plan.Calls, calls...)
		if err != nil {
			line = fmt.Sprintf("%s: cannot be contained: %v", d.AccessKeyID, err)
			errs = append(errs, fmt.Errorf("%s: %w", d.AccessKeyID, err))
		}
		lines = append(lines, line)
	}
	if len(errs) > 0 {
		return actions.PlanOf[ContainDerivedOutputs]{}, fmt.Errorf("contain derived credentials: %s: %w", strings.Join(lines, "; "), joinKind(errs))
	}
	plan.Summary = fmt.Sprintf("%d derived credential(s): %s", len(in.Derived), strings.Join(lines, "; "))
	if len(plan.Effects()) == 0 {
		plan.Settled = actions.Already // every one already contained
	}
	if len(in.Derived) == 0 {
		plan.Summary, plan.Settled = "no derived credentials: nothing to contain", actions.NoOp
	}
	return plan, nil
}

// planOne runs the read-only checks for d and lists the calls Do would make.
func (p *Provider) planOne(ctx context.Context, env actions.Env, in *ContainDerivedParams, d DerivedCredential) ([]actions.Call, string, error) {
	c, calls, err := p.containmentFor(ctx, in, d)
	if err != nil {
		return calls, "", err
	}
	if c.revoke != nil {
		st, err := p.sessionCutoff(ctx, env, c.revoke)
		if err != nil {
			return calls, "", err
		}
		if st.current.IsZero() {
			if err := st.principalExists(ctx); err != nil {
				return append(calls, st.calls...), "", fmt.Errorf("revoke sessions of %s: %w", st.principal(), err)
			}
		}
		calls = append(calls, st.calls...)
		if st.kept() {
			return calls, fmt.Sprintf("%s: %s already denies sessions issued before %s", d.AccessKeyID, st.principal(), st.current.UTC().Format("2006-01-02T15:04:05Z")), nil
		}
		calls = append(calls, st.putCall())
		return calls, fmt.Sprintf("%s: would revoke the sessions of %s", d.AccessKeyID, st.principal()), nil
	}
	st, err := p.keyState(ctx, env, c.key)
	calls = append(calls, st.calls...)
	if errors.Is(err, errKeyNotListed) && c.action == containDelete {
		return calls, fmt.Sprintf("%s: already gone", d.AccessKeyID), nil
	}
	if err != nil {
		return calls, "", err
	}
	switch {
	case c.action == containDelete:
		calls = append(calls, actions.Call{Service: "iam", Operation: "DeleteAccessKey", Params: map[string]any{"AccessKeyId": d.AccessKeyID, "UserName": st.user}, Mutates: true,
			Account: st.account, Irreversible: true, Effect: fmt.Sprintf("delete the derived access key %s of user %s in account %s", d.AccessKeyID, st.user, st.account)})
		return calls, fmt.Sprintf("%s: would delete it (user %s, now %s)", d.AccessKeyID, st.user, st.status), nil
	case st.status == statusInactive:
		return calls, fmt.Sprintf("%s: already Inactive", d.AccessKeyID), nil
	}
	calls = append(calls, actions.Call{Service: "iam", Operation: "UpdateAccessKey", Params: map[string]any{"AccessKeyId": d.AccessKeyID, "Status": statusInactive, "UserName": st.user}, Mutates: true,
		Account: st.account, Effect: fmt.Sprintf("deactivate the derived access key %s of user %s in account %s", d.AccessKeyID, st.user, st.account)})
	return calls, fmt.Sprintf("%s: would deactivate it (user %s)", d.AccessKeyID, st.user), nil
}

// containDerived tries every credential even when one fails, and fails the
// step only after all were tried.
func (p *Provider) containDerived(ctx context.Context, env actions.Env, in *ContainDerivedParams) (actions.ResultOf[ContainDerivedOutputs], error) {
	contained := []map[string]any{}
	var lines []string
	var errs []error
	anyDone := false
	for _, item := range in.Derived {
		d, err := parseDerived(item)
		action, principal := "none", ""
		var outcome actions.Outcome
		if err == nil {
			action, principal, outcome, err = p.containOne(ctx, env, in, d)
		}
		entry := map[string]any{"access_key_id": d.AccessKeyID, "action": action, "outcome": string(outcome)}
		if principal != "" {
			entry["principal"] = principal
		}
		line := fmt.Sprintf("%s %s: %s", d.AccessKeyID, action, outcome)
		if err != nil {
			entry["outcome"], entry["error"] = "failed", err.Error()
			line = fmt.Sprintf("%s %s: failed", d.AccessKeyID, action)
			errs = append(errs, fmt.Errorf("%s: %w", d.AccessKeyID, err))
		} else if outcome == actions.Done {
			anyDone = true
		}
		env.Log().Info("derived credential", "key", d.AccessKeyID, "action", action, "outcome", entry["outcome"])
		contained = append(contained, entry)
		lines = append(lines, line)
	}
	msg := strings.Join(lines, "; ")
	if len(errs) > 0 {
		return actions.ResultOf[ContainDerivedOutputs]{}, fmt.Errorf("contain derived credentials: %s: %w", msg, joinKind(errs))
	}
	outcome := actions.Already
	if anyDone {
		outcome = actions.Done
	}
	if len(in.Derived) == 0 {
		outcome, msg = actions.NoOp, "no derived credentials"
	}
	return actions.ResultOf[ContainDerivedOutputs]{Outcome: outcome, Message: msg, Outputs: &ContainDerivedOutputs{Contained: contained}}, nil
}

// joinKind joins errs into an error that is permanent only when every one
// of them is: another attempt of the whole step is worth it for a throttled
// credential, and it skips the ones already contained.
func joinKind(errs []error) error {
	err := errors.Join(errs...)
	for _, e := range errs {
		if actions.KindOf(e) != actions.KindPermanent {
			return actions.Retryable(err)
		}
	}
	return actions.Permanent(err)
}

// containOne contains d the way the action for its kind would, and returns
// what that action's step would have reported.
func (p *Provider) containOne(ctx context.Context, env actions.Env, in *ContainDerivedParams, d DerivedCredential) (action, principal string, outcome actions.Outcome, err error) {
	c, _, err := p.containmentFor(ctx, in, d)
	if err != nil {
		return c.action, "", "", err
	}
	if c.revoke != nil {
		principal = "user/" + c.revoke.UserName
		if c.revoke.RoleName != "" {
			principal = "role/" + c.revoke.RoleName
		}
		res, err := p.revoke(ctx, env, c.revoke)
		return c.action, principal, res.Outcome, err
	}
	given := c.key.UserName != ""
	if !given {
		if c.key.UserName, _, err = p.keyOwner(ctx, in.Account, d.AccessKeyID); err != nil {
			return c.action, "", "", fmt.Errorf("find the key's owner: %w", err)
		}
	}
	if c.action == containDelete {
		// The attacker's key goes whatever its status; already gone is
		// success, so a resumed step changes nothing.
		res, err := p.delete(ctx, env, &DeleteKeyParams{AccessKeyID: d.AccessKeyID, UserName: c.key.UserName, Account: in.Account, AllowActive: true})
		return c.action, "", res.Outcome, err
	}
	res, err := p.deactivate(ctx, env, c.key)
	if given && errors.Is(err, errKeyNotListed) {
		// The impact step recorded another owner than IAM knows: ask IAM.
		owner, _, lookupErr := p.keyOwner(ctx, in.Account, d.AccessKeyID)
		if lookupErr != nil || owner == c.key.UserName {
			return c.action, "", res.Outcome, err
		}
		env.Log().Warn("derived key has another owner than recorded", "key", d.AccessKeyID, "recorded", c.key.UserName, "owner", owner)
		c.key.UserName = owner
		res, err = p.deactivate(ctx, env, c.key)
	}
	return c.action, "", res.Outcome, err
}
