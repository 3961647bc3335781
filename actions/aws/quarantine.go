package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/stanchhq/stanch/actions"
)

// QuarantineParams are the parameters of aws.quarantine and
// aws.release_quarantine.
type QuarantineParams struct {
	UserName  string `json:"user_name" target:"user" doc:"the IAM user to quarantine (give this or role_name); default: the owner the run identified"`
	RoleName  string `json:"role_name" target:"role" doc:"the IAM role to quarantine (give this or user_name)"`
	Account   string `json:"account" target:"account" doc:"the account of the user or role; default: the owner's account once identified, else stanch's own"`
	Mode      string `json:"mode" doc:"managed (attach policy_arn, the default) or inline (a deny-all inline policy named StanchQuarantine)"`
	PolicyArn string `json:"policy_arn" doc:"managed policy to attach (default arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2)"`
}

const (
	defaultQuarantinePolicy = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2"
	inlineQuarantine        = "StanchQuarantine"
	denyAllDocument         = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"]}]}`
)

// QuarantineOutputs are the outputs of aws.quarantine and
// aws.release_quarantine.
type QuarantineOutputs struct {
	Principal string `json:"principal" doc:"user/NAME or role/NAME"`
	Policy    string `json:"policy" doc:"the policy ARN, or the inline policy name"`
	// AWS attaches AWSCompromisedKeyQuarantineV2 itself when it finds a
	// leak, and that one must stay: a playbook releases only what its own
	// quarantine step put in place.
	Changed bool `json:"changed" doc:"true when this step changed something; false when it was already so (for aws.quarantine: the policy may be AWS's own, which a release must leave alone)"`
}

func provisionQuarantine(in *QuarantineParams) {
	if in.Mode == "" {
		in.Mode = "managed"
	}
	if in.PolicyArn == "" {
		in.PolicyArn = defaultQuarantinePolicy
	}
}

func validateQuarantine(in QuarantineParams) error {
	if (in.UserName == "") == (in.RoleName == "") {
		return errors.New("give exactly one of user_name and role_name")
	}
	if in.Mode != "managed" && in.Mode != "inline" {
		return fmt.Errorf("mode %q: want managed or inline", in.Mode)
	}
	return nil
}

var quarantinePermissions = []actions.Permission{
	{Name: "iam:ListAttachedUserPolicies", Why: "check whether the quarantine policy is attached to a user"},
	{Name: "iam:AttachUserPolicy", Why: "attach the quarantine policy to a user"},
	{Name: "iam:DetachUserPolicy", Why: "release a user from quarantine"},
	{Name: "iam:ListAttachedRolePolicies", Why: "check whether the quarantine policy is attached to a role"},
	{Name: "iam:AttachRolePolicy", Why: "attach the quarantine policy to a role"},
	{Name: "iam:DetachRolePolicy", Why: "release a role from quarantine"},
	{Name: "iam:GetUserPolicy", Why: "check the inline quarantine of a user"},
	{Name: "iam:PutUserPolicy", Why: "put an inline deny-all on a user"},
	{Name: "iam:DeleteUserPolicy", Why: "remove the inline deny-all from a user"},
	{Name: "iam:GetRolePolicy", Why: "check the inline quarantine of a role"},
	{Name: "iam:PutRolePolicy", Why: "put an inline deny-all on a role"},
	{Name: "iam:DeleteRolePolicy", Why: "remove the inline deny-all from a role"},
	{Name: "iam:ListUserPolicies", Why: "inline mode: check the user exists"},
	{Name: "iam:ListRolePolicies", Why: "inline mode: check the role exists"},
}

func quarantine(p *Provider, release bool) actions.Action {
	name, summary, verb := "aws.quarantine", "Quarantine a user or role: attach AWS's compromised-key quarantine policy (or an inline deny-all).", "quarantine"
	if release {
		name, summary, verb = "aws.release_quarantine", "Undo aws.quarantine: detach the quarantine policy (or delete the inline deny-all).", "release"
	}
	return actions.New(actions.Definition[QuarantineParams, QuarantineOutputs]{
		Name:        name,
		Summary:     summary,
		Permissions: quarantinePermissions,
		Example:     quarantineExample(release),
		Containment: !release,
		Provision:   provisionQuarantine,
		Validate:    validateQuarantine,
		PlanFunc: func(ctx context.Context, _ actions.Env, in *QuarantineParams) (actions.PlanOf[QuarantineOutputs], error) {
			q, err := p.quarantineState(ctx, in)
			if err != nil {
				return actions.PlanOf[QuarantineOutputs]{}, err
			}
			plan := actions.PlanOf[QuarantineOutputs]{Calls: q.calls, Outputs: q.outputs(!q.settled(release))}
			if q.settled(release) {
				plan.Summary = fmt.Sprintf("%s: nothing to change (%s)", q.principal(), q.state())
				plan.Settled = actions.Already
				return plan, nil
			}
			op, params := q.change(release)
			plan.Summary = fmt.Sprintf("would %s %s in account %s (%s)", verb, q.principal(), q.account, q.policy())
			plan.Calls = append(plan.Calls, actions.Call{Service: "iam", Operation: op, Params: params, Mutates: true, Account: q.account,
				Effect: fmt.Sprintf("%s %s in account %s (%s)", verb, q.principal(), q.account, q.policy())})
			return plan, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *QuarantineParams) (actions.ResultOf[QuarantineOutputs], error) {
			return p.quarantine(ctx, env, in, release, verb)
		},
	})
}

func (p *Provider) quarantine(ctx context.Context, env actions.Env, in *QuarantineParams, release bool, verb string) (actions.ResultOf[QuarantineOutputs], error) {
	type result = actions.ResultOf[QuarantineOutputs]
	q, err := p.quarantineState(ctx, in)
	if err != nil {
		return result{}, err
	}
	if q.settled(release) {
		return result{Outcome: actions.Already, Message: fmt.Sprintf("%s: %s already; nothing changed", q.principal(), q.state()), Outputs: q.outputs(false)}, nil
	}
	if err := q.apply(ctx, release); err != nil {
		return result{}, fmt.Errorf("%s %s: %w", verb, q.principal(), err)
	}
	env.Log().Info("quarantine changed", "principal", q.principal(), "account", q.account, "policy", q.policy(), "release", release)
	past := map[bool]string{false: "quarantined", true: "released from quarantine"}[release]
	env.Record(actions.Effect{Description: fmt.Sprintf("%s %s in account %s (%s)", past, q.principal(), q.account, q.policy())})
	// Verify: read it back; IAM is eventually consistent.
	for attempt := 1; ; attempt++ {
		if err := q.read(ctx); err != nil {
			return result{}, fmt.Errorf("%s %s: verify: %w", verb, q.principal(), err)
		}
		if q.settled(release) {
			break
		}
		if attempt >= p.opts.VerifyAttempts {
			return result{}, actions.Retryable(fmt.Errorf("%s %s: the change does not read back yet (%s)", verb, q.principal(), q.state()))
		}
		select {
		case <-ctx.Done():
			return result{}, actions.Retryable(fmt.Errorf("%s %s: verify: %w", verb, q.principal(), ctx.Err()))
		case <-time.After(p.opts.VerifyDelay):
		}
	}
	return result{Outcome: actions.Done, Message: fmt.Sprintf("%s: %s; verified", q.principal(), q.state()), Outputs: q.outputs(true)}, nil
}

type quarantineCheck struct {
	iam     *iam.Client
	account string
	params  *QuarantineParams
	// in: the quarantine is in force (the managed policy is attached, or
	// the inline policy denies everything). present: there is something
	// for a release to remove (in inline mode, a policy of that name
	// whatever it says).
	in, present bool
	calls       []actions.Call
}

// settled reports whether there is nothing left to do.
func (q *quarantineCheck) settled(release bool) bool {
	if release {
		return !q.present
	}
	return q.in
}

func (p *Provider) quarantineState(ctx context.Context, in *QuarantineParams) (*quarantineCheck, error) {
	account, err := p.acting(ctx, in.Account)
	if err != nil {
		return nil, err
	}
	c, err := p.iam(ctx, account)
	if err != nil {
		return nil, err
	}
	q := &quarantineCheck{iam: c, account: account, params: in}
	op, params := q.readCall()
	q.calls = append(q.calls, actions.Call{Service: "iam", Operation: op, Params: params, Made: true})
	if err = q.read(ctx); err != nil {
		return nil, fmt.Errorf("quarantine %s: %w", q.principal(), err)
	}
	if in.Mode == "inline" && !q.present {
		// GetUserPolicy says NoSuchEntity for a missing user too: make sure
		// "not quarantined" is not about a principal that does not exist.
		call, err := checkPrincipal(ctx, c, in.UserName, in.RoleName)
		q.calls = append(q.calls, call)
		if err != nil {
			return nil, fmt.Errorf("quarantine %s: %w", q.principal(), err)
		}
	}
	return q, nil
}

func (q *quarantineCheck) principal() string {
	if q.params.RoleName != "" {
		return "role/" + q.params.RoleName
	}
	return "user/" + q.params.UserName
}

func (q *quarantineCheck) policy() string {
	if q.params.Mode == "inline" {
		return inlineQuarantine
	}
	return q.params.PolicyArn
}

func (q *quarantineCheck) state() string {
	switch {
	case q.in:
		return "quarantined by " + q.policy()
	case q.present:
		return "holds an inline policy " + q.policy() + " that does not deny everything"
	}
	return "not quarantined by " + q.policy()
}

func (q *quarantineCheck) outputs(changed bool) *QuarantineOutputs {
	return &QuarantineOutputs{Principal: q.principal(), Policy: q.policy(), Changed: changed}
}

func (q *quarantineCheck) who() map[string]any {
	if q.params.RoleName != "" {
		return map[string]any{"RoleName": q.params.RoleName}
	}
	return map[string]any{"UserName": q.params.UserName}
}

func (q *quarantineCheck) kind() string {
	if q.params.RoleName != "" {
		return "Role"
	}
	return "User"
}

func (q *quarantineCheck) readCall() (string, map[string]any) {
	params := q.who()
	if q.params.Mode == "inline" {
		params["PolicyName"] = inlineQuarantine
		return "Get" + q.kind() + "Policy", params
	}
	return "ListAttached" + q.kind() + "Policies", params
}

func (q *quarantineCheck) change(release bool) (string, map[string]any) {
	params := q.who()
	switch {
	case q.params.Mode == "inline" && release:
		params["PolicyName"] = inlineQuarantine
		return "Delete" + q.kind() + "Policy", params
	case q.params.Mode == "inline":
		params["PolicyName"], params["PolicyDocument"] = inlineQuarantine, denyAllDocument
		return "Put" + q.kind() + "Policy", params
	case release:
		params["PolicyArn"] = q.params.PolicyArn
		return "Detach" + q.kind() + "Policy", params
	default:
		params["PolicyArn"] = q.params.PolicyArn
		return "Attach" + q.kind() + "Policy", params
	}
}

// read finds out whether the quarantine is in place.
func (q *quarantineCheck) read(ctx context.Context) error {
	user, role := awssdk.String(q.params.UserName), awssdk.String(q.params.RoleName)
	q.in, q.present = false, false
	if q.params.Mode == "inline" {
		var doc *string
		var err error
		if q.params.RoleName != "" {
			var out *iam.GetRolePolicyOutput
			if out, err = q.iam.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: role, PolicyName: awssdk.String(inlineQuarantine)}); err == nil {
				doc = out.PolicyDocument
			}
		} else {
			var out *iam.GetUserPolicyOutput
			if out, err = q.iam.GetUserPolicy(ctx, &iam.GetUserPolicyInput{UserName: user, PolicyName: awssdk.String(inlineQuarantine)}); err == nil {
				doc = out.PolicyDocument
			}
		}
		var nse *iamtypes.NoSuchEntityException
		if errors.As(err, &nse) {
			return nil
		}
		if err != nil {
			return classifyOp(err, "iam:Get"+q.kind()+"Policy")
		}
		q.present, q.in = true, deniesEverything(awssdk.ToString(doc))
		return nil
	}
	var attached []iamtypes.AttachedPolicy
	if q.params.RoleName != "" {
		pages := iam.NewListAttachedRolePoliciesPaginator(q.iam, &iam.ListAttachedRolePoliciesInput{RoleName: role})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return classifyOp(err, "iam:ListAttachedRolePolicies")
			}
			attached = append(attached, page.AttachedPolicies...)
		}
	} else {
		pages := iam.NewListAttachedUserPoliciesPaginator(q.iam, &iam.ListAttachedUserPoliciesInput{UserName: user})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return classifyOp(err, "iam:ListAttachedUserPolicies")
			}
			attached = append(attached, page.AttachedPolicies...)
		}
	}
	for _, a := range attached {
		if awssdk.ToString(a.PolicyArn) == q.params.PolicyArn {
			q.in, q.present = true, true
		}
	}
	return nil
}

// deniesEverything reports whether a (URL-encoded) policy document has an
// unconditional Deny of every action on every resource.
func deniesEverything(doc string) bool {
	if !strings.HasPrefix(strings.TrimSpace(doc), "{") {
		if unescaped, err := url.PathUnescape(doc); err == nil {
			doc = unescaped
		}
	}
	var policy struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if json.Unmarshal([]byte(doc), &policy) != nil {
		return false
	}
	type statement struct {
		Effect    string          `json:"Effect"`
		Action    json.RawMessage `json:"Action"`
		Resource  json.RawMessage `json:"Resource"`
		Condition json.RawMessage `json:"Condition"`
	}
	var statements []statement
	if json.Unmarshal(policy.Statement, &statements) != nil {
		var one statement
		if json.Unmarshal(policy.Statement, &one) != nil {
			return false
		}
		statements = []statement{one}
	}
	for _, s := range statements {
		if s.Effect == "Deny" && noCondition(s.Condition) && hasStar(s.Action) && hasStar(s.Resource) {
			return true
		}
	}
	return false
}

// hasStar reports whether a policy element ("*" or a list) contains "*".
func hasStar(raw json.RawMessage) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == "*"
	}
	var list []string
	return json.Unmarshal(raw, &list) == nil && slices.Contains(list, "*")
}

func (q *quarantineCheck) apply(ctx context.Context, release bool) error {
	user, role := awssdk.String(q.params.UserName), awssdk.String(q.params.RoleName)
	arn, name := awssdk.String(q.params.PolicyArn), awssdk.String(inlineQuarantine)
	op, _ := q.change(release)
	var err error
	switch op {
	case "AttachUserPolicy":
		_, err = q.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: user, PolicyArn: arn})
	case "AttachRolePolicy":
		_, err = q.iam.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: role, PolicyArn: arn})
	case "DetachUserPolicy":
		_, err = q.iam.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: user, PolicyArn: arn})
	case "DetachRolePolicy":
		_, err = q.iam.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: role, PolicyArn: arn})
	case "PutUserPolicy":
		_, err = q.iam.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: user, PolicyName: name, PolicyDocument: awssdk.String(denyAllDocument)})
	case "PutRolePolicy":
		_, err = q.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: role, PolicyName: name, PolicyDocument: awssdk.String(denyAllDocument)})
	case "DeleteUserPolicy":
		_, err = q.iam.DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: user, PolicyName: name})
	case "DeleteRolePolicy":
		_, err = q.iam.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: role, PolicyName: name})
	}
	return classifyOp(err, "iam:"+op)
}

// classifyOp names the operation in an AWS error and classifies it.
func classifyOp(err error, op string) error {
	if err == nil {
		return nil
	}
	return classify(fmt.Errorf("%s: %w", op, err))
}

func noCondition(raw json.RawMessage) bool {
	c := strings.TrimSpace(string(raw))
	return c == "" || c == "null" || c == "{}"
}

func quarantineExample(release bool) string {
	if release {
		return `- id: release
  action: aws.release_quarantine
  if: steps.quarantine.outputs.changed
  approval: {approvers: [security-oncall], timeout: 24h}
  with:
    user_name: ${{ steps.identify.outputs.user_name }}
`
	}
	return `- id: quarantine
  action: aws.quarantine
  with:
    user_name: ${{ steps.identify.outputs.user_name }}
    account: ${{ steps.identify.outputs.account }}
`
}
