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

// QuarantineParams are the parameters of aws.quarantine and
// aws.release_quarantine.
type QuarantineParams struct {
	UserName  string `json:"user_name" doc:"the IAM user to quarantine (give this or role_name)"`
	RoleName  string `json:"role_name" doc:"the IAM role to quarantine (give this or user_name)"`
	Account   string `json:"account" doc:"the account of the user or role"`
	Mode      string `json:"mode" doc:"managed (attach policy_arn, the default) or inline (a deny-all inline policy named StanchQuarantine)"`
	PolicyArn string `json:"policy_arn" doc:"managed policy to attach (default arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2)"`
}

const (
	defaultQuarantinePolicy = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2"
	inlineQuarantine        = "StanchQuarantine"
	denyAllDocument         = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"]}]}`
)

func validateQuarantine(in *QuarantineParams) error {
	if (in.UserName == "") == (in.RoleName == "") {
		return errors.New("give exactly one of user_name and role_name")
	}
	switch in.Mode {
	case "":
		in.Mode = "managed"
	case "managed", "inline":
	default:
		return fmt.Errorf("mode %q: want managed or inline", in.Mode)
	}
	if in.PolicyArn == "" {
		in.PolicyArn = defaultQuarantinePolicy
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
}

func quarantine(p *Provider, release bool) actions.Action {
	name, summary, verb := "aws.quarantine", "Quarantine a user or role: attach AWS's compromised-key quarantine policy (or an inline deny-all).", "quarantine"
	if release {
		name, summary, verb = "aws.release_quarantine", "Undo aws.quarantine: detach the quarantine policy (or delete the inline deny-all).", "release"
	}
	return actions.New(actions.Definition[QuarantineParams]{
		Name:        name,
		Summary:     summary,
		Outputs:     []actions.Output{{Name: "principal", Type: "string", Doc: "user/NAME or role/NAME"}, {Name: "policy", Type: "string", Doc: "the policy ARN, or the inline policy name"}},
		Permissions: quarantinePermissions,
		Example: fmt.Sprintf(`- id: %s
  action: %s
  with:
    user_name: ${{ steps.identify.outputs.user_name }}
`, verb, name),
		Validate: validateQuarantine,
		PlanFunc: func(ctx context.Context, _ actions.Env, in *QuarantineParams) (actions.Plan, error) {
			q, err := p.quarantineState(ctx, in)
			if err != nil {
				return actions.Plan{}, err
			}
			plan := actions.Plan{Calls: q.calls, Outputs: q.outputs()}
			if q.in == !release {
				plan.Summary = fmt.Sprintf("%s: nothing to change (%s)", q.principal(), q.state())
				return plan, nil
			}
			op, params := q.change(release)
			plan.Summary = fmt.Sprintf("would %s %s (%s)", verb, q.principal(), q.policy())
			plan.Calls = append(plan.Calls, actions.Call{Service: "iam", Operation: op, Params: params, Mutates: true})
			return plan, nil
		},
		DoFunc: func(ctx context.Context, _ actions.Env, in *QuarantineParams) (actions.Result, error) {
			q, err := p.quarantineState(ctx, in)
			if err != nil {
				return actions.Result{}, err
			}
			if q.in == !release {
				return actions.Result{Outcome: actions.Already, Message: fmt.Sprintf("%s: %s already", q.principal(), q.state()), Outputs: q.outputs()}, nil
			}
			if err := q.apply(ctx, release); err != nil {
				return actions.Result{}, fmt.Errorf("%s %s: %w", verb, q.principal(), err)
			}
			now, err := q.read(ctx)
			if err != nil {
				return actions.Result{}, fmt.Errorf("%s %s: verify: %w", verb, q.principal(), err)
			}
			if now == release {
				return actions.Result{}, actions.Retryable(fmt.Errorf("%s %s: the change does not read back yet", verb, q.principal()))
			}
			q.in = now
			return actions.Result{Outcome: actions.Done, Message: fmt.Sprintf("%s: %s", q.principal(), q.state()), Outputs: q.outputs()}, nil
		},
	})
}

type quarantineCheck struct {
	iam    *iam.Client
	params *QuarantineParams
	in     bool // quarantined now
	calls  []actions.Call
}

func (p *Provider) quarantineState(ctx context.Context, in *QuarantineParams) (*quarantineCheck, error) {
	c, err := p.iam(ctx, in.Account)
	if err != nil {
		return nil, err
	}
	q := &quarantineCheck{iam: c, params: in}
	op, params := q.readCall()
	q.calls = append(q.calls, actions.Call{Service: "iam", Operation: op, Params: params, Made: true})
	if q.in, err = q.read(ctx); err != nil {
		return nil, fmt.Errorf("quarantine %s: %w", q.principal(), err)
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
	if q.in {
		return "quarantined by " + q.policy()
	}
	return "not quarantined by " + q.policy()
}

func (q *quarantineCheck) outputs() map[string]any {
	return map[string]any{"principal": q.principal(), "policy": q.policy()}
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

// read reports whether the quarantine is in place.
func (q *quarantineCheck) read(ctx context.Context) (bool, error) {
	user, role := awssdk.String(q.params.UserName), awssdk.String(q.params.RoleName)
	var err error
	if q.params.Mode == "inline" {
		if q.params.RoleName != "" {
			_, err = q.iam.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: role, PolicyName: awssdk.String(inlineQuarantine)})
		} else {
			_, err = q.iam.GetUserPolicy(ctx, &iam.GetUserPolicyInput{UserName: user, PolicyName: awssdk.String(inlineQuarantine)})
		}
		var nse *iamtypes.NoSuchEntityException
		if errors.As(err, &nse) {
			return false, nil
		}
		return err == nil, classifyOp(err, "read inline policy")
	}
	var attached []iamtypes.AttachedPolicy
	if q.params.RoleName != "" {
		pages := iam.NewListAttachedRolePoliciesPaginator(q.iam, &iam.ListAttachedRolePoliciesInput{RoleName: role})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return false, classifyOp(err, "iam:ListAttachedRolePolicies")
			}
			attached = append(attached, page.AttachedPolicies...)
		}
	} else {
		pages := iam.NewListAttachedUserPoliciesPaginator(q.iam, &iam.ListAttachedUserPoliciesInput{UserName: user})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return false, classifyOp(err, "iam:ListAttachedUserPolicies")
			}
			attached = append(attached, page.AttachedPolicies...)
		}
	}
	for _, a := range attached {
		if awssdk.ToString(a.PolicyArn) == q.params.PolicyArn {
			return true, nil
		}
	}
	return false, nil
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
