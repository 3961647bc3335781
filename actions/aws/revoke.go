package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/stanchhq/stanch/actions"
)

// RevokeSessionsParams are the parameters of aws.revoke_sessions.
type RevokeSessionsParams struct {
	UserName   string `json:"user_name" target:"user" doc:"the IAM user whose sessions to revoke (give this or role_name); default: the owner the run identified"`
	RoleName   string `json:"role_name" target:"role" doc:"the IAM role whose sessions to revoke (give this or user_name)"`
	Account    string `json:"account" target:"account" doc:"the account of the user or role; default: the owner's account once identified, else stanch's own"`
	PolicyName string `json:"policy_name" doc:"name of the inline deny policy (default AWSRevokeOlderSessions)"`
	NotBefore  string `json:"not_before" doc:"RFC 3339 cutoff: credentials issued before it are denied (default: when the step first ran)"`
}

// RevokeSessionsOutputs are the outputs of aws.revoke_sessions.
type RevokeSessionsOutputs struct {
	Principal  string `json:"principal" doc:"user/NAME or role/NAME"`
	PolicyName string `json:"policy_name" doc:"the inline policy holding the cutoff"`
	Cutoff     string `json:"cutoff" doc:"RFC 3339 time in force: sessions issued before it are denied"`
}

const defaultRevokePolicy = "AWSRevokeOlderSessions"

// provisionRevoke fills in the defaults that do not depend on the run; the
// cutoff, which does, is fixed when the step first runs (sessionCutoff).
func provisionRevoke(in *RevokeSessionsParams) {
	if in.PolicyName == "" {
		in.PolicyName = defaultRevokePolicy
	}
}

func revokeSessions(p *Provider) actions.Action {
	return actions.New(actions.Definition[RevokeSessionsParams, RevokeSessionsOutputs]{
		Name:        "aws.revoke_sessions",
		Summary:     "Deny every temporary credential issued before a cutoff to a user or role (AWSRevokeOlderSessions); never loosens an existing cutoff.",
		Containment: true,
		Permissions: []actions.Permission{
			{Name: "iam:GetUserPolicy", Why: "read the cutoff already in force on a user"},
			{Name: "iam:PutUserPolicy", Why: "put the session cutoff on a user"},
			{Name: "iam:GetRolePolicy", Why: "read the cutoff already in force on a role"},
			{Name: "iam:PutRolePolicy", Why: "put the session cutoff on a role"},
			{Name: "iam:ListUserPolicies", Why: "plan: check the user exists"},
			{Name: "iam:ListRolePolicies", Why: "plan: check the role exists"},
		},
		Example: `- id: revoke_sessions
  action: aws.revoke_sessions
  with:
    user_name: ${{ steps.identify.outputs.user_name }}
    account: ${{ steps.identify.outputs.account }}
`,
		Provision: provisionRevoke,
		Validate: func(in RevokeSessionsParams) error {
			if (in.UserName == "") == (in.RoleName == "") {
				return errors.New("give exactly one of user_name and role_name")
			}
			if in.NotBefore != "" {
				if _, err := time.Parse(time.RFC3339, in.NotBefore); err != nil {
					return fmt.Errorf("not_before %q is not an RFC 3339 time such as 2026-11-28T12:00:00Z", in.NotBefore)
				}
			}
			return nil
		},
		PlanFunc: func(ctx context.Context, env actions.Env, in *RevokeSessionsParams) (actions.PlanOf[RevokeSessionsOutputs], error) {
			st, err := p.sessionCutoff(ctx, env, in)
			if err != nil {
				return actions.PlanOf[RevokeSessionsOutputs]{}, err
			}
			if st.current.IsZero() {
				// Without a policy to read, make sure the principal exists,
				// so that the plan does not promise what Do would refuse.
				if err := st.principalExists(ctx); err != nil {
					return actions.PlanOf[RevokeSessionsOutputs]{}, fmt.Errorf("revoke sessions of %s: %w", st.principal(), err)
				}
			}
			plan := actions.PlanOf[RevokeSessionsOutputs]{Calls: st.calls, Outputs: st.outputs()}
			if st.kept() {
				plan.Summary = fmt.Sprintf("%s already denies sessions issued before %s; nothing to change", st.principal(), st.current.Format(time.RFC3339))
				plan.Settled = actions.Already
				return plan, nil
			}
			plan.Summary = fmt.Sprintf("would deny every session of %s issued before %s", st.principal(), st.cutoff.Format(time.RFC3339))
			plan.Calls = append(plan.Calls, st.putCall())
			return plan, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *RevokeSessionsParams) (actions.ResultOf[RevokeSessionsOutputs], error) {
			return p.revoke(ctx, env, in)
		},
	})
}

func (p *Provider) revoke(ctx context.Context, env actions.Env, in *RevokeSessionsParams) (actions.ResultOf[RevokeSessionsOutputs], error) {
	type result = actions.ResultOf[RevokeSessionsOutputs]
	st, err := p.sessionCutoff(ctx, env, in)
	if err != nil {
		return result{}, err
	}
	if st.kept() {
		return result{Outcome: actions.Already, Message: fmt.Sprintf("%s already denies sessions issued before %s", st.principal(), st.current.Format(time.RFC3339)), Outputs: st.outputs()}, nil
	}
	if err := st.put(ctx); err != nil {
		return result{}, fmt.Errorf("revoke sessions of %s: %w", st.principal(), err)
	}
	env.Log().Info("sessions revoked", "principal", st.principal(), "account", st.account, "policy", st.policy, "cutoff", st.cutoff.Format(time.RFC3339))
	env.Record(actions.Effect{Description: fmt.Sprintf("denied every session of %s in account %s issued before %s (inline policy %s)", st.principal(), st.account, st.cutoff.Format(time.RFC3339), st.policy)})
	// Verify: read the policy back; IAM is eventually consistent.
	for attempt := 1; ; attempt++ {
		got, err := st.read(ctx)
		if err != nil {
			return result{}, fmt.Errorf("revoke sessions of %s: verify: %w", st.principal(), err)
		}
		if !got.Before(st.cutoff) {
			break
		}
		if attempt >= p.opts.VerifyAttempts {
			return result{}, actions.Retryable(fmt.Errorf("revoke sessions of %s: the policy still reads cutoff %s after %s", st.principal(), got.Format(time.RFC3339), st.putOp()))
		}
		select {
		case <-ctx.Done():
			return result{}, actions.Retryable(fmt.Errorf("revoke sessions of %s: verify: %w", st.principal(), ctx.Err()))
		case <-time.After(p.opts.VerifyDelay):
		}
	}
	msg := fmt.Sprintf("every session of %s issued before %s is denied", st.principal(), st.cutoff.Format(time.RFC3339))
	if !st.current.IsZero() {
		msg += fmt.Sprintf(" (the earlier cutoff was %s)", st.current.Format(time.RFC3339))
	}
	return result{Outcome: actions.Done, Message: msg, Outputs: st.outputs()}, nil
}

// cutoffState is the check half of revoke_sessions.
type cutoffState struct {
	iam     *iam.Client
	account string
	in      *RevokeSessionsParams
	policy  string
	cutoff  time.Time // the one this step wants
	current time.Time // the one in force for everything, zero if none
	// partial is the latest cutoff of any Deny statement of the policy,
	// which may deny less than everything: a new policy never moves it
	// earlier.
	partial time.Time
	calls   []actions.Call
}

func (p *Provider) sessionCutoff(ctx context.Context, env actions.Env, in *RevokeSessionsParams) (*cutoffState, error) {
	st := &cutoffState{in: in, policy: in.PolicyName}
	// The cutoff is fixed when the step first runs, so that a retry or a
	// resumed run writes the same policy (and a later one never moves it
	// backwards).
	switch {
	case in.NotBefore != "":
		st.cutoff, _ = time.Parse(time.RFC3339, in.NotBefore)
	case !env.StepStartedAt.IsZero():
		st.cutoff = env.StepStartedAt
	default:
		st.cutoff = time.Now()
	}
	// IAM compares whole seconds: round up, so that a credential issued
	// in the same second as the step started is denied too.
	st.cutoff = st.cutoff.UTC()
	if t := st.cutoff.Truncate(time.Second); !t.Equal(st.cutoff) {
		st.cutoff = t.Add(time.Second)
	}
	var err error
	if st.account, err = p.acting(ctx, in.Account); err != nil {
		return nil, fmt.Errorf("revoke sessions of %s: %w", st.principal(), err)
	}
	c, err := p.iam(ctx, st.account)
	if err != nil {
		return nil, fmt.Errorf("revoke sessions of %s: %w", st.principal(), err)
	}
	st.iam = c
	st.calls = append(st.calls, actions.Call{Service: "iam", Operation: st.getOp(), Params: st.getParams(), Made: true})
	if st.current, st.partial, err = st.readBoth(ctx); err != nil {
		return nil, fmt.Errorf("revoke sessions of %s: %w", st.principal(), err)
	}
	if !st.kept() && st.partial.After(st.cutoff) {
		st.cutoff = st.partial
	}
	return st, nil
}

func (st *cutoffState) kept() bool { return !st.current.IsZero() && !st.current.Before(st.cutoff) }

func (st *cutoffState) principal() string {
	if st.in.RoleName != "" {
		return "role/" + st.in.RoleName
	}
	return "user/" + st.in.UserName
}

func (st *cutoffState) outputs() *RevokeSessionsOutputs {
	cutoff := st.cutoff
	if st.kept() {
		cutoff = st.current
	}
	return &RevokeSessionsOutputs{Principal: st.principal(), PolicyName: st.policy, Cutoff: cutoff.Format(time.RFC3339)}
}

func (st *cutoffState) getOp() string {
	if st.in.RoleName != "" {
		return "GetRolePolicy"
	}
	return "GetUserPolicy"
}

func (st *cutoffState) putOp() string {
	if st.in.RoleName != "" {
		return "PutRolePolicy"
	}
	return "PutUserPolicy"
}

func (st *cutoffState) getParams() map[string]any {
	if st.in.RoleName != "" {
		return map[string]any{"RoleName": st.in.RoleName, "PolicyName": st.policy}
	}
	return map[string]any{"UserName": st.in.UserName, "PolicyName": st.policy}
}

// putCall is the write that puts the cutoff, as a plan shows it.
func (st *cutoffState) putCall() actions.Call {
	return actions.Call{Service: "iam", Operation: st.putOp(), Params: st.putParams(), Mutates: true, Account: st.account,
		Effect: fmt.Sprintf("deny every session of %s in account %s issued before %s (inline policy %s)", st.principal(), st.account, st.cutoff.Format(time.RFC3339), st.policy)}
}

func (st *cutoffState) putParams() map[string]any {
	p := st.getParams()
	p["PolicyDocument"] = revokeDocument(st.cutoff)
	return p
}

// read returns the cutoff of the policy in force, zero when there is none.
func (st *cutoffState) read(ctx context.Context) (time.Time, error) {
	full, _, err := st.readBoth(ctx)
	return full, err
}

// readBoth returns the cutoffs of the policy (see cutoffsOf), zero when
// there is none.
func (st *cutoffState) readBoth(ctx context.Context) (full, partial time.Time, err error) {
	var doc *string
	if st.in.RoleName != "" {
		var out *iam.GetRolePolicyOutput
		if out, err = st.iam.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: awssdk.String(st.in.RoleName), PolicyName: awssdk.String(st.policy)}); err == nil {
			doc = out.PolicyDocument
		}
	} else {
		var out *iam.GetUserPolicyOutput
		if out, err = st.iam.GetUserPolicy(ctx, &iam.GetUserPolicyInput{UserName: awssdk.String(st.in.UserName), PolicyName: awssdk.String(st.policy)}); err == nil {
			doc = out.PolicyDocument
		}
	}
	var nse *iamtypes.NoSuchEntityException
	if errors.As(err, &nse) {
		// No such policy is no cutoff — unless the principal itself is
		// missing, which the put reports.
		return time.Time{}, time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, time.Time{}, classify(fmt.Errorf("iam:%s: %w", st.getOp(), err))
	}
	return cutoffsOf(awssdk.ToString(doc))
}

// principalExists checks that the user or role exists.
func (st *cutoffState) principalExists(ctx context.Context) error {
	call, err := checkPrincipal(ctx, st.iam, st.in.UserName, st.in.RoleName)
	st.calls = append(st.calls, call)
	return err
}

// checkPrincipal lists one inline policy of the user (or role, when role is
// set), which fails with NoSuchEntity when the principal does not exist. It
// returns the call it made, for plans.
func checkPrincipal(ctx context.Context, c *iam.Client, user, role string) (actions.Call, error) {
	if role != "" {
		_, err := c.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: awssdk.String(role), MaxItems: awssdk.Int32(1)})
		return actions.Call{Service: "iam", Operation: "ListRolePolicies", Params: map[string]any{"RoleName": role, "MaxItems": 1}, Made: true}, classifyOp(err, "iam:ListRolePolicies")
	}
	_, err := c.ListUserPolicies(ctx, &iam.ListUserPoliciesInput{UserName: awssdk.String(user), MaxItems: awssdk.Int32(1)})
	return actions.Call{Service: "iam", Operation: "ListUserPolicies", Params: map[string]any{"UserName": user, "MaxItems": 1}, Made: true}, classifyOp(err, "iam:ListUserPolicies")
}

func (st *cutoffState) put(ctx context.Context) error {
	doc := awssdk.String(revokeDocument(st.cutoff))
	var err error
	if st.in.RoleName != "" {
		_, err = st.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: awssdk.String(st.in.RoleName), PolicyName: awssdk.String(st.policy), PolicyDocument: doc})
	} else {
		_, err = st.iam.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: awssdk.String(st.in.UserName), PolicyName: awssdk.String(st.policy), PolicyDocument: doc})
	}
	if err != nil {
		return classify(fmt.Errorf("iam:%s: %w", st.putOp(), err))
	}
	return nil
}

// revokeDocument denies everything to credentials issued before cutoff: the
// AWSRevokeOlderSessions pattern of the IAM console.
func revokeDocument(cutoff time.Time) string {
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect":    "Deny",
			"Action":    []string{"*"},
			"Resource":  []string{"*"},
			"Condition": map[string]any{"DateLessThan": map[string]string{"aws:TokenIssueTime": cutoff.UTC().Format(time.RFC3339)}},
		}},
	}
	out, _ := json.Marshal(doc)
	return string(out)
}

// cutoffOf reads the latest aws:TokenIssueTime cutoff of the statements
// of a policy document (which IAM returns URL-encoded) that deny every
// action on every resource. A cutoff it cannot read is an error:
// overwriting it might loosen it.
func cutoffOf(doc string) (time.Time, error) {
	full, _, err := cutoffsOf(doc)
	return full, err
}

// cutoffsOf returns the latest cutoff of the statements that deny
// everything (full), and of every Deny statement with a cutoff (partial).
func cutoffsOf(doc string) (full, partial time.Time, err error) {
	if !strings.HasPrefix(strings.TrimSpace(doc), "{") {
		// PathUnescape, not QueryUnescape: a literal '+' (a UTC offset)
		// must stay a '+'.
		if unescaped, err := url.PathUnescape(doc); err == nil {
			doc = unescaped
		}
	}
	var policy struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(doc), &policy); err != nil {
		return time.Time{}, time.Time{}, actions.Permanentf("the existing session policy is not JSON; fix or delete it: %v", err)
	}
	type statement struct {
		Effect    string                    `json:"Effect"`
		Action    json.RawMessage           `json:"Action"`
		Resource  json.RawMessage           `json:"Resource"`
		Condition map[string]map[string]any `json:"Condition"`
	}
	var statements []statement
	if err := json.Unmarshal(policy.Statement, &statements); err != nil {
		var one statement
		if err := json.Unmarshal(policy.Statement, &one); err != nil {
			return time.Time{}, time.Time{}, actions.Permanentf("the existing session policy has an unexpected shape: %v", err)
		}
		statements = []statement{one}
	}
	for _, s := range statements {
		if s.Effect != "Deny" {
			continue
		}
		v, ok := s.Condition["DateLessThan"]["aws:TokenIssueTime"]
		if !ok {
			continue
		}
		values, ok := v.([]any)
		if !ok {
			values = []any{v}
		}
		for _, value := range values {
			text, _ := value.(string)
			t, err := parseIAMTime(text)
			if err != nil {
				return time.Time{}, time.Time{}, actions.Permanentf("the existing session policy's aws:TokenIssueTime %q is not a time stanch can read; fix or delete the policy", text)
			}
			if t.After(partial) {
				partial = t
			}
			if hasStar(s.Action) && hasStar(s.Resource) && t.After(full) {
				full = t
			}
		}
	}
	return full.UTC(), partial.UTC(), nil
}

// parseIAMTime reads the forms IAM accepts in date conditions: epoch
// seconds, and ISO 8601 down to the year, with or without a zone (UTC when
// absent).
func parseIAMTime(s string) (time.Time, error) {
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC(), nil
	}
	s = strings.ToUpper(s)
	var err error
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z07", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05",
		"2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02T15", "2006-01-02", "2006-01", "2006"} {
		var t time.Time
		if t, err = time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}
