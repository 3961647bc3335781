package playbooks

import (
	"github.com/stanchhq/stanch/internal/yamldiag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
)

const keyID = "AKIAIOSFODNN7EXAMPLE"

func leak() alert.Alert {
	return alert.Alert{
		Source:     alert.SourceGitHub,
		Kind:       alert.KindCredentialExposed,
		Severity:   "high",
		Credential: alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: keyID, Account: "111122223333"},
		Location:   alert.Location{Repo: "octo/app", Path: "deploy.sh", Line: 42},
	}
}

func parse(t *testing.T, src string) *Playbook {
	t.Helper()
	pb, err := Parse("test.yaml", []byte(src), testRegistry(t))
	require.NoError(t, err)
	return pb
}

func TestParseFillsDefaults(t *testing.T) {
	t.Parallel()
	pb := parse(t, `
name: defaults
steps:
  - id: identify
    action: aws.identify_key
    with: {access_key_id: "${{ alert.credential.id }}"}
  - id: deactivate
    action: aws.deactivate_key
    timeout: 30s
    retry: {attempts: 5}
    on_error: continue
    approval: {approvers: [alice]}
`)
	require.Equal(t, "defaults", pb.Name)
	require.Equal(t, "test.yaml", pb.File)
	require.Contains(t, string(pb.Source), "name: defaults")
	require.Len(t, pb.Steps, 2)

	identify := pb.Steps[0]
	require.Equal(t, "identify", identify.ID)
	require.Equal(t, "aws.identify_key", identify.Action)
	require.Equal(t, 4, identify.Line)
	require.Equal(t, DefaultTimeout, identify.Timeout)
	require.Equal(t, Retry{Attempts: 3, Backoff: time.Second, MaxBackoff: 30 * time.Second}, identify.Retry)
	require.Equal(t, OnErrorStop, identify.OnError)
	require.Nil(t, identify.Approval)
	require.Empty(t, identify.Condition())

	deactivate := pb.Steps[1]
	require.Equal(t, 30*time.Second, deactivate.Timeout)
	require.Equal(t, Retry{Attempts: 5, Backoff: time.Second, MaxBackoff: 30 * time.Second}, deactivate.Retry)
	require.Equal(t, OnErrorContinue, deactivate.OnError)
	require.Equal(t, []string{"alice"}, deactivate.Approval.Approvers)
	require.Equal(t, 24*time.Hour, deactivate.Approval.Timeout)
	require.Equal(t, OnTimeoutDeny, deactivate.Approval.OnTimeout)

	msg, err := deactivate.ApprovalMessage(pb.Scope(leak(), RunInfo{Playbook: pb.Name}))
	require.NoError(t, err)
	require.Equal(t, "Approve step deactivate (aws.deactivate_key) of playbook defaults?", msg)
}

func TestMatch(t *testing.T) {
	t.Parallel()
	pb := parse(t, `
name: match
on:
  sources: [github, manual]
  kinds: [credential_exposed]
  providers: [aws]
  credential_kinds: [access_key]
when: ${{ alert.severity in ["high", "critical"] && !alert.test }}
steps:
  - id: identify
    action: aws.identify_key
    with: {access_key_id: "${{ alert.credential.id }}"}
`)
	require.Equal(t, `alert.severity in ["high", "critical"] && !alert.test`, pb.When())
	tests := []struct {
		name   string
		change func(a *alert.Alert)
		ok     bool
		reason string
	}{
		{"matches", func(*alert.Alert) {}, true, "the alert matches its `on:` filters and `when: alert.severity in [\"high\", \"critical\"] && !alert.test`"},
		{"source", func(a *alert.Alert) { a.Source = alert.SourceGuardDuty }, false, `"guardduty" is not in on.sources [github, manual]`},
		{"kind", func(a *alert.Alert) { a.Kind = alert.KindCredentialResolved }, false, `"credential_resolved" is not in on.kinds [credential_exposed]`},
		{"provider", func(a *alert.Alert) { a.Credential.Provider = "github" }, false, `"github" is not in on.providers [aws]`},
		{"credential kind", func(a *alert.Alert) { a.Credential.Kind = alert.CredentialRoleSession }, false, `"role_session" is not in on.credential_kinds [access_key]`},
		{"severity", func(a *alert.Alert) { a.Severity = "low" }, false, `when: alert.severity in ["high", "critical"] && !alert.test was false`},
		{"test alert", func(a *alert.Alert) { a.Test = true }, false, `when: alert.severity in ["high", "critical"] && !alert.test was false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := leak()
			tt.change(&a)
			ok, reason, err := pb.Match(a)
			require.NoError(t, err)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.reason, reason)
		})
	}
}

func TestMatchWithoutFilters(t *testing.T) {
	t.Parallel()
	pb := parse(t, `
name: anything
steps:
  - id: identify
    action: aws.identify_key
    with: {access_key_id: "${{ alert.credential.id }}"}
`)
	ok, reason, err := pb.Match(alert.Alert{Source: "manual", Credential: alert.Credential{ID: "tok"}})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "the alert matches its `on:` filters", reason)
}

func TestMatchReportsNonBoolAtRunTime(t *testing.T) {
	t.Parallel()
	// vars have no static type, so only the run can tell.
	pb := parse(t, `
name: var-condition
vars: {enabled: "yes"}
when: vars.enabled
steps:
  - id: identify
    action: aws.identify_key
    with: {access_key_id: "${{ alert.credential.id }}"}
`)
	_, _, err := pb.Match(leak())
	require.EqualError(t, err, "playbook var-condition: when: `vars.enabled`: invalid operation: bool(string)")
}

const runtimeBook = `
name: runtime
vars:
  team_channel: "#sec-incidents"
  max_age: 90
steps:
  - id: identify
    action: aws.identify_key
    with:
      access_key_id: ${{ alert.credential.id }}
  - id: mint
    action: test.secret_maker
    if: steps.identify.outputs.user_name != ""
    with:
      name: "${{ alert.location.repo }}:${{ alert.location.line }} by ${{ steps.identify.outputs.user_name }} in ${{ run.id }}"
      count: ${{ alert.location.line }}
      wait: 90s
  - id: deactivate
    action: aws.deactivate_key
    if: "${{ steps.mint.outcome == 'done' }}"
    target: explicit
    with:
      access_key_id: ${{ steps.mint.outputs.secret }}
      user_name: ${{ steps.identify.outputs.user_name }}
      account: ${{ vars.max_age }}
    approval:
      approvers: [U024BE7LH]
      message: "Deactivate ${{ alert.credential.id }} of ${{ steps.identify.outputs.user_name }}? (${{ vars.team_channel }}, ${{ vars.max_age }} days)"
`

func TestEnabled(t *testing.T) {
	t.Parallel()
	pb := parse(t, runtimeBook)
	identify, mint, deactivate := pb.Steps[0], pb.Steps[1], pb.Steps[2]
	sc := pb.Scope(leak(), RunInfo{ID: "run_1", Playbook: pb.Name})

	ok, reason, err := identify.Enabled(sc)
	require.NoError(t, err)
	require.True(t, ok, "a step without if is enabled")
	require.Empty(t, reason)

	sc.Steps["identify"] = StepState{Status: "succeeded", Outcome: "done", Outputs: map[string]any{"user_name": ""}}
	ok, reason, err = mint.Enabled(sc)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, `if: steps.identify.outputs.user_name != "" was false`, reason)

	sc.Steps["identify"] = StepState{Status: "succeeded", Outcome: "done", Outputs: map[string]any{"user_name": "ci-bot"}}
	ok, _, err = mint.Enabled(sc)
	require.NoError(t, err)
	require.True(t, ok)

	require.Equal(t, "steps.mint.outcome == 'done'", deactivate.Condition(), "the ${{ }} wrapping is not part of the condition")
	sc.Steps["mint"] = StepState{Status: "skipped", Outcome: "skipped"}
	ok, reason, err = deactivate.Enabled(sc)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, "if: steps.mint.outcome == 'done' was false", reason)
}

func TestParams(t *testing.T) {
	t.Parallel()
	pb := parse(t, runtimeBook)
	identify, mint, deactivate := pb.Steps[0], pb.Steps[1], pb.Steps[2]
	sc := pb.Scope(leak(), RunInfo{ID: "run_1", Playbook: pb.Name})

	params, err := identify.Params(sc)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"access_key_id": keyID}, params)

	sc.Steps["identify"] = StepState{Status: "succeeded", Outcome: "done", Outputs: map[string]any{"user_name": "ci-bot"}}
	params, err = mint.Params(sc)
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"name":  "octo/app:42 by ci-bot in run_1", // text mixed with templates is a string
		"count": 42,                               // a whole template keeps its type
		"wait":  "90s",
	}, params)

	sc.Steps["mint"] = StepState{Status: "succeeded", Outcome: "done", Outputs: map[string]any{"id": "s-1", "secret": "not-really-secret"}}
	params, err = deactivate.Params(sc)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"access_key_id": "not-really-secret", "user_name": "ci-bot", "account": 90}, params)

	msg, err := deactivate.ApprovalMessage(sc)
	require.NoError(t, err)
	require.Equal(t, "Deactivate AKIAIOSFODNN7EXAMPLE of ci-bot? (#sec-incidents, 90 days)", msg)
}

func TestParamsNamesWhatFailed(t *testing.T) {
	t.Parallel()
	pb := parse(t, runtimeBook)
	mint, deactivate := pb.Steps[1], pb.Steps[2]
	sc := pb.Scope(leak(), RunInfo{ID: "run_1", Playbook: pb.Name})

	// identify was skipped: it has no outputs.
	sc.Steps["identify"] = StepState{Status: "skipped", Outcome: "skipped"}
	_, err := mint.Params(sc)
	require.EqualError(t, err, "step mint: parameter name: `steps.identify.outputs.user_name` has no value (a step that was skipped or failed has no outputs)")

	sc.Steps["mint"] = StepState{Status: "succeeded", Outcome: "done", Outputs: map[string]any{"id": "s-1", "secret": "hunter2-secret"}}
	_, err = deactivate.Params(sc)
	require.EqualError(t, err, "step deactivate: parameter user_name: `steps.identify.outputs.user_name` has no value (a step that was skipped or failed has no outputs)")
	require.NotContains(t, err.Error(), "hunter2")

	_, err = deactivate.ApprovalMessage(sc)
	require.EqualError(t, err, "step deactivate: approval message: `steps.identify.outputs.user_name` has no value (a step that was skipped or failed has no outputs)")
}

func TestParamsRunTimeError(t *testing.T) {
	t.Parallel()
	pb := parse(t, `
name: runtime-error
steps:
  - id: identify
    action: aws.identify_key
    with:
      access_key_id: ${{ alert.credential.id }}
  - id: deactivate
    action: aws.deactivate_key
    if: steps.identify.outputs.last_used_date > 3
    with:
      access_key_id: ${{ alert.credential.id }}
      user_name: ${{ upper(steps.identify.outputs.user_name) }}
`)
	deactivate := pb.Steps[1]
	sc := pb.Scope(leak(), RunInfo{})
	sc.Steps["identify"] = StepState{Outcome: "done", Outputs: map[string]any{"user_name": 7, "last_used_date": "2026-01-02"}}
	_, _, err := deactivate.Enabled(sc)
	require.ErrorContains(t, err, "step deactivate: if: `steps.identify.outputs.last_used_date > 3`: ")
	_, err = deactivate.Params(sc)
	require.ErrorContains(t, err, "step deactivate: parameter user_name: `upper(steps.identify.outputs.user_name)`: ")
}

func TestNestedWithValues(t *testing.T) {
	t.Parallel()
	// The parameter checks of test.secret_maker reject lists and maps, so
	// this goes through the value tree directly.
	l := &loader{problems: problems{File: "t.yaml"}, reg: testRegistry(t), vars: map[string]any{"n": 3}}
	pb := l.load([]byte(`
name: nested
steps:
  - id: mint
    action: test.secret_maker
    with:
      name: ${{ alert.credential.id }}
`))
	require.Empty(t, l.Problems)
	v := dict{
		"keys": list{whole{pb.Steps[0].with["name"].(whole).e}, literal{"x"}},
		"n":    literal{1},
	}
	got, err := v.eval(pb.Scope(leak(), RunInfo{}))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"keys": []any{keyID, "x"}, "n": 1}, got)
}

func TestErrorsFormat(t *testing.T) {
	t.Parallel()
	errs := Errors{
		{File: "a.yaml", Line: 3, Col: 5, Msg: "unknown key `wiht` in a step", Hint: "did you mean `with`?"},
		{File: "a.yaml", Line: 9, Col: 1, Msg: "the playbook has no steps"},
	}
	require.Equal(t, "a.yaml:3:5: unknown key `wiht` in a step\n    hint: did you mean `with`?\na.yaml:9:1: the playbook has no steps", errs.Error())
	var err error = errs
	require.EqualError(t, err, errs.Error())
}

func TestProblemsAreSortedByPosition(t *testing.T) {
	t.Parallel()
	_, err := Parse("p.yaml", []byte(`
steps:
  - id: b
    action: nope.nope
name: Bad
`), testRegistry(t))
	var errs Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 2)
	require.Equal(t, []int{4, 5}, []int{errs[0].Line, errs[1].Line})
}

func TestExpressionColumns(t *testing.T) {
	t.Parallel()
	reg := testRegistry(t)
	for _, tc := range []struct {
		name, when string
		col        int
	}{
		{"plain", `when: alert.nope`, 13},
		{"double quoted", `when: "alert.nope"`, 14},
		{"wrapped", `when: ${{ alert.nope }}`, 17},
		{"quoted and wrapped", `when: '${{alert.nope}}'`, 17},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := "name: cols\n" + tc.when + "\nsteps:\n  - id: identify\n    action: aws.identify_key\n    with: {access_key_id: \"${{ alert.credential.id }}\"}\n"
			_, err := Parse("c.yaml", []byte(src), reg)
			var errs Errors
			require.ErrorAs(t, err, &errs)
			require.Len(t, errs, 1)
			require.Equal(t, 2, errs[0].Line)
			require.Equal(t, tc.col, errs[0].Col)
			require.Equal(t, "`alert` has no field `nope`", errs[0].Msg)
		})
	}
}

func TestNearest(t *testing.T) {
	t.Parallel()
	keys := []string{"id", "action", "if", "with", "delay", "timeout", "retry", "on_error", "approval"}
	require.Equal(t, "with", yamldiag.Nearest("wiht", keys))
	require.Equal(t, "timeout", yamldiag.Nearest("timout", keys))
	require.Equal(t, "approval", yamldiag.Nearest("aproval", keys))
	require.Empty(t, yamldiag.Nearest("retries_count", keys))
	require.Equal(t, "aws.deactivate_key", yamldiag.Nearest("aws.deactivate_keys", []string{"aws.identify_key", "aws.deactivate_key"}))
}

func TestStepDelay(t *testing.T) {
	t.Parallel()
	pb, err := Parse("delay.yaml", []byte(`
name: sweep-again
steps:
  - id: identify
    action: aws.identify_key
    with: {access_key_id: "${{ alert.credential.id }}"}
  - id: again
    action: aws.identify_key
    delay: 15m
    with: {access_key_id: "${{ alert.credential.id }}"}
`), testRegistry(t))
	require.NoError(t, err)
	require.Zero(t, pb.Steps[0].Delay)
	require.Equal(t, 15*time.Minute, pb.Steps[1].Delay)

	_, err = Parse("delay.yaml", []byte("name: x\nsteps:\n  - id: a\n    action: aws.identify_key\n    delay: soon\n    with: {access_key_id: AKIAIOSFODNN7EXAMPLE}\n"), testRegistry(t))
	require.ErrorContains(t, err, "delay.yaml:5:12: `delay`: \"soon\" is not a duration")
}
