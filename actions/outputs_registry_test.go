package actions_test

import (
	"context"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	awsactions "github.com/stanchhq/stanch/actions/aws"
	ghactions "github.com/stanchhq/stanch/actions/github"
	slackact "github.com/stanchhq/stanch/actions/slack"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/examples"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
	"github.com/stanchhq/stanch/slack"
)

const (
	outputsGitHubToken = "ghp_sandboxTokenForStanchTests0000000000"
	outputsRepo        = "acme/payments-service"
	outputsLeakedPAT   = "ghp_outputsRegistryTestToken000000000000"
)

// TestEveryActionReturnsItsDeclaredOutputs runs every action of every
// provider in the sandbox, in the order of a containment playbook, and
// checks that what each step's Plan and Do return is what its action
// declares: the names `stanch validate` checks references against, and
// the types `stanch actions` shows. An action no step runs fails the test:
// each new action needs a step here.
func TestEveryActionReturnsItsDeclaredOutputs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seedData, err := examples.FS.ReadFile("sandbox/seed.yaml")
	require.NoError(t, err)
	seed, err := sandbox.ParseSeed("examples/sandbox/seed.yaml", seedData)
	require.NoError(t, err)
	// The demo's seed has a leaked key, what an attacker did with it, a
	// secret to rotate into and a Slack workspace; add the GitHub alert
	// that found the key.
	seed.GitHub = &sandbox.SeedGitHub{Token: outputsGitHubToken, Alerts: []sandbox.SeedGitHubAlert{
		{Repo: outputsRepo, Number: 42, SecretType: "aws_access_key_id", Secret: "AKIAIOSFODNN7EXAMPLE"},
	}}
	// And a leaked GitHub token that left events in acme's audit log.
	seed.Tokens = append(seed.Tokens, sandbox.SeedToken{Provider: "github", Value: outputsLeakedPAT, Owner: "octocat", Org: "acme", Events: []sandbox.SeedTokenEvent{
		{Action: "git.clone", Repo: outputsRepo, Ago: "1h"}, {Action: "org.update_member", Ago: "30m", Data: map[string]any{"user": "mallory", "permission": "admin"}},
	}})
	sb := testkit.Sandbox(t, seed)
	cfg := sb.AWSConfig()
	all := awsactions.Actions(awsactions.NewProvider(awsactions.ProviderOptions{
		Config:      func(context.Context, string) (awssdk.Config, error) { return cfg, nil },
		VerifyDelay: 10 * time.Millisecond,
	}))
	all = append(all, ghactions.Actions(ghactions.NewProvider(ghactions.Options{APIURL: sb.GitHubAPI(), Token: outputsGitHubToken}))...)
	all = append(all, slackact.Actions(slack.NewClient(slack.Options{Token: seed.Slack.Token, APIURL: sb.SlackAPI()}), slackact.Options{})...)
	reg, err := actions.NewRegistry(all...)
	require.NoError(t, err)

	const leaked = "AKIAIOSFODNN7EXAMPLE"
	started := time.Now()
	report := actions.Report{RunID: "run_outputs", Playbook: "outputs", Status: "running", StartedAt: started,
		Alert: alert.Alert{Source: "github", Kind: alert.KindCredentialExposed, Severity: "critical", ReceivedAt: started,
			Credential: alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: leaked}}}
	var owner actions.Owner
	outputs := map[string]map[string]any{} // by step
	ran := map[string]bool{}
	step := func(id, name string, with func() map[string]any) {
		t.Helper()
		a, ok := reg.Lookup(name)
		require.True(t, ok, name)
		spec := a.Spec()
		env := actions.Env{RunID: "run_outputs", StepID: id, Attempt: 1, IdempotencyKey: "run_outputs/" + id, StepStartedAt: time.Now(), Owner: owner,
			Report: func(context.Context) (actions.Report, error) { return report, nil }}
		p := testkit.Decode(t, a, with())
		plan, err := a.Plan(ctx, env, p)
		require.NoError(t, err, id)
		if plan.Outputs != nil {
			require.NoError(t, actions.CheckPlannedOutputs(spec, plan.Outputs), "step %s: its plan", id)
		}
		res, err := a.Do(ctx, env, p)
		require.NoError(t, err, id)
		if len(spec.Outputs) > 0 {
			require.NotNil(t, res.Outputs, "step %s (%s) did something and returned no outputs", id, name)
		}
		require.NoError(t, actions.CheckOutputs(spec, res.Outputs), "step %s", id)
		if res.Owner != nil && !owner.Known() {
			owner = *res.Owner
			owner.By = id
		}
		outputs[id] = res.Outputs
		ran[name] = true
	}
	literal := func(with map[string]any) func() map[string]any { return func() map[string]any { return with } }

	step("identify", "aws.identify_key", literal(map[string]any{"access_key_id": leaked}))
	step("impact", "aws.cloudtrail_impact", literal(map[string]any{"access_key_id": leaked}))
	step("contain_derived", "aws.contain_derived", func() map[string]any {
		derived := outputs["impact"]["derived_credentials"].([]map[string]any)
		require.NotEmpty(t, derived, "the seed's attacker made credentials")
		items := make([]any, len(derived))
		for i, d := range derived {
			items[i] = d
		}
		return map[string]any{"derived": items}
	})
	step("deactivate", "aws.deactivate_key", literal(map[string]any{"access_key_id": leaked}))
	step("revoke", "aws.revoke_sessions", func() map[string]any { return map[string]any{"user_name": outputs["identify"]["user_name"]} })
	step("quarantine", "aws.quarantine", func() map[string]any { return map[string]any{"user_name": outputs["identify"]["user_name"]} })
	step("release", "aws.release_quarantine", func() map[string]any { return map[string]any{"user_name": outputs["identify"]["user_name"]} })
	step("delete", "aws.delete_key", func() map[string]any {
		return map[string]any{"access_key_id": leaked, "user_name": outputs["identify"]["user_name"]}
	})
	step("rotate", "aws.rotate_key", func() map[string]any {
		return map[string]any{"user_name": outputs["identify"]["user_name"], "leaked_access_key_id": leaked, "secret_id": "iam-user/ci-bot"}
	})
	step("resolve", "github.resolve_alert", literal(map[string]any{"repository": outputsRepo, "alert_number": 42}))
	step("issue", "github.open_issue", literal(map[string]any{"repository": "acme/security-incidents", "title": "Leaked AWS key " + leaked}))
	step("github_impact", "github.token_impact", literal(map[string]any{"credential": alert.Fingerprint(outputsLeakedPAT), "org": "acme", "hashed_token": sandbox.GitHubHashedToken(outputsLeakedPAT)}))
	step("tell", "slack.notify", literal(map[string]any{"channel": "#sec-incidents"}))

	for _, name := range reg.Names() {
		require.True(t, ran[name], "no step runs %s: add one to this test", name)
	}
}
