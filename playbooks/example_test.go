package playbooks_test

import (
	"fmt"
	"time"

	"github.com/stanchhq/stanch/actions"
	awsactions "github.com/stanchhq/stanch/actions/aws"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
)

// registry holds the AWS actions, built without credentials: parsing a
// playbook checks its steps against the actions' specs and calls nothing.
func registry() *actions.Registry {
	reg, err := actions.NewRegistry(awsactions.Actions(awsactions.NewProvider(awsactions.ProviderOptions{}))...)
	if err != nil {
		panic(err)
	}
	return reg
}

const containKey = `
name: contain-aws-key
on:
  providers: [aws]
steps:
  - id: identify
    action: aws.identify_key
    with:
      access_key_id: ${{ alert.credential.id }}
  - id: deactivate
    action: aws.deactivate_key
    if: steps.identify.outputs.key_kind == "access_key"
    with:
      access_key_id: ${{ alert.credential.id }}
    retry: {attempts: 5}
  - id: delete
    action: aws.delete_key
    approval:
      approvers: [security-oncall]
      timeout: 4h
      message: "Delete ${{ alert.credential.id }} of ${{ steps.identify.outputs.user_name }}?"
    with:
      access_key_id: ${{ alert.credential.id }}
`

// Parse checks a playbook against the registry's actions and compiles its
// expressions; defaults fill in what a step leaves out.
func ExampleParse() {
	pb, err := playbooks.Parse("contain.yaml", []byte(containKey), registry())
	if err != nil {
		panic(err)
	}
	fmt.Println(pb.Name, pb.On.Providers)
	for _, st := range pb.Steps {
		fmt.Printf("line %d: %s runs %s (timeout %s, %d attempts)", st.Line, st.ID, st.Action, st.Timeout, st.Retry.Attempts)
		if c := st.Condition(); c != "" {
			fmt.Printf(" if %s", c)
		}
		if st.Approval != nil {
			fmt.Printf(", approved by %v within %s", st.Approval.Approvers, st.Approval.Timeout)
		}
		fmt.Println()
	}
	// Output:
	// contain-aws-key [aws]
	// line 6: identify runs aws.identify_key (timeout 5m0s, 3 attempts)
	// line 10: deactivate runs aws.deactivate_key (timeout 5m0s, 5 attempts) if steps.identify.outputs.key_kind == "access_key"
	// line 16: delete runs aws.delete_key (timeout 5m0s, 3 attempts), approved by [security-oncall] within 4h0m0s
}

// An invalid playbook is refused with every problem at once, each with its
// file:line:col and a hint.
func ExampleParse_errors() {
	_, err := playbooks.Parse("broken.yaml", []byte(`
name: broken
steps:
  - id: deactivate
    action: aws.deactivate_key
    with:
      access_key: ${{ alert.credential.id }}
  - id: deactivate
    action: aws.delete_key
    timeout: soon
    with:
      access_key_id: ${{ alert.credential.id }}
`), registry())
	fmt.Println(err)
	// Output:
	// broken.yaml:7:7: unknown parameter "access_key" for aws.deactivate_key
	//     hint: did you mean `access_key_id`? parameters of aws.deactivate_key: access_key_id, user_name, account
	// broken.yaml:8:9: duplicate step id `deactivate`
	//     hint: step ids are unique; the first `deactivate` is step 1 at line 4
	// broken.yaml:10:14: `timeout`: "soon" is not a duration
	//     hint: use a Go duration such as 30s, 5m, 1h30m
}

// The runner evaluates a parsed playbook for one alert: does it start a
// run, does a step run, and with what parameters.
func ExamplePlaybook_Match() {
	pb, err := playbooks.Parse("contain.yaml", []byte(containKey), registry())
	if err != nil {
		panic(err)
	}
	a := alert.Alert{Source: alert.SourceManual, Credential: alert.Credential{Provider: "aws", ID: "AKIAIOSFODNN7EXAMPLE"}}
	a.Normalise(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	ok, _, err := pb.Match(a)
	fmt.Println("match:", ok, err)

	sc := pb.Scope(a, playbooks.RunInfo{ID: "run_1", Playbook: pb.Name})
	sc.Steps["identify"] = playbooks.StepState{Status: "succeeded", Outcome: "done", Outputs: map[string]any{"key_kind": "access_key", "user_name": "ci-bot"}}
	deactivate, del := pb.Steps[1], pb.Steps[2]
	enabled, _, err := deactivate.Enabled(sc)
	fmt.Println("deactivate runs:", enabled, err)
	params, err := deactivate.Params(sc)
	fmt.Println("with:", params, err)
	msg, err := del.ApprovalMessage(sc)
	fmt.Println("asks:", msg, err)

	gcp := alert.Alert{Source: alert.SourceManual, Credential: alert.Credential{Provider: "gcp", ID: "key-1"}}
	gcp.Normalise(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	ok, reason, _ := pb.Match(gcp)
	fmt.Println("match:", ok, reason)
	// Output:
	// match: true <nil>
	// deactivate runs: true <nil>
	// with: map[access_key_id:AKIAIOSFODNN7EXAMPLE] <nil>
	// asks: Delete AKIAIOSFODNN7EXAMPLE of ci-bot? <nil>
	// match: false "gcp" is not in on.providers [aws]
}
