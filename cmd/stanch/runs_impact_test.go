package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	plant "github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/runner"
)

// TestRunsShowPrintsImpact: stanch runs show prints the run's impact
// section after the steps, one part per step that tells of the
// credential's use, in the steps' order: the GitHub audit log's summary,
// the Vault token's lookup, the plain line of a provider that keeps no
// usage history; control characters and planted tokens in outputs never
// reach the terminal.
func TestRunsShowPrintsImpact(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	run := runner.Run{ID: "run_01IMPACT", Playbook: "github-token-leaked", Status: runner.RunSucceeded, CreatedAt: now, FinishedAt: now.Add(time.Minute)}
	steps := map[string]runner.StepRecord{
		"revoke": {StepID: "revoke", Seq: 1, Action: "github.revoke_token", Status: runner.StepSucceeded, Outcome: "done", Attempts: 1,
			Outputs: map[string]any{"login": "octocat", "revoked": true}},
		"impact": {StepID: "impact", Seq: 2, Action: "github.token_impact", Status: runner.StepSucceeded, Outcome: "done", Attempts: 1,
			Outputs: map[string]any{"events": 3, "first_used": "2026-11-28T09:00:00Z", "last_used": "2026-11-28T09:30:00Z",
				"repositories": []string{"acme/api"}, "cloned": []string{"acme/api"}, "pushed": []string{"acme/api"},
				"finding_counts": map[string]int{"code_change": 1, "data_access": 2},
				"findings": []map[string]any{
					{"event": "git.push", "time": "2026-11-28T09:30:00Z", "repo": "acme/api", "org": "acme", "source_ip": "198.51.100.7", "category": "code_change", "severity": "high"},
					{"event": "git.clone", "time": "2026-11-28T09:00:00Z", "repo": "acme/api\x1b[2J", "org": "acme", "source_ip": "198.51.100.7", "category": "data_access", "severity": "medium"},
				},
				"by_source_ip": map[string]int{"198.51.100.7": 3}, "orgs": []string{"acme"}}},
		"vault": {StepID: "vault", Seq: 3, Action: "vault.revoke_token", Status: runner.StepSucceeded, Outcome: "done", Attempts: 1,
			Outputs: map[string]any{"display_name": "token " + plant.VaultService, "token_type": "service", "accessor": "ci-accessor-1", "path": "auth/token/create",
				"policies": []string{"default", "ci"}, "creation_time": "2026-11-28T08:00:00Z", "expire_time": "2026-11-29T08:00:00Z", "ttl_seconds": 3600,
				"orphan": true, "renewable": true, "revoked": true}},
		"slack": {StepID: "slack", Seq: 4, Action: "slack.revoke_token", Status: runner.StepSucceeded, Outcome: "already", Attempts: 1,
			Outputs: map[string]any{"revoked": true, "impact": "Slack offers no usage history by token"}},
		"tell": {StepID: "tell", Seq: 5, Action: "slack.notify", Status: runner.StepSucceeded, Outcome: "done", Attempts: 1},
	}
	var out bytes.Buffer
	printRun(&globals{stdout: &out}, run, steps, nil)
	got := out.String()
	start, end := strings.Index(got, "\nimpact\n"), strings.Index(got, "\njournal\n")
	require.True(t, start > strings.Index(got, "\nsteps\n") && end > start, "the impact section is between the steps and the journal:\n%s", got)
	require.Equal(t, `
impact
  What the GitHub token was used for (step impact, github.token_impact)
    3 event(s) in 1 repository, first 2026-11-28T09:00:00Z, last 2026-11-28T09:30:00Z
    Cloned: acme/api
    Pushed to: acme/api
    Findings: code change 1, data access 2
    • git.push 2026-11-28T09:30:00Z in acme/api from 198.51.100.7 (code change, high)
    • git.clone 2026-11-28T09:00:00Z in acme/api\x1b[2J from 198.51.100.7 (data access, medium)
    Top source IPs: 198.51.100.7 (3)
  What the Vault token could do (step vault, vault.revoke_token)
    Token token [REDACTED] (service, accessor ci-accessor-1) from auth/token/create
    Policies: default, ci
    Created 2026-11-28T08:00:00Z; expires 2026-11-29T08:00:00Z (TTL left 1h0m0s)
    Orphan: yes (no parent); children: not known (revoking it revoked them too)
    Renewable: yes; uses left: unlimited
    Vault keeps no usage history by token that stanch can read: what the token did is in Vault's audit devices, keyed by its HMAC
  What the Slack token was used for (step slack, slack.revoke_token)
    Slack keeps no usage history by token: what the token did cannot be listed
`, got[start:end])
	require.NotContains(t, got, "\x1b", "control characters are escaped")
	plant.RequireNone(t, "runs show", got)
}

// TestRunsShowWithoutImpact: a run whose steps tell nothing of the
// credential's use prints no impact section.
func TestRunsShowWithoutImpact(t *testing.T) {
	t.Parallel()
	run := runner.Run{ID: "run_01QUIET", Playbook: "p", Status: runner.RunRunning, CreatedAt: time.Now()}
	steps := map[string]runner.StepRecord{
		"impact": {StepID: "impact", Seq: 1, Action: "aws.cloudtrail_impact", Status: runner.StepRunning},
		"revoke": {StepID: "revoke", Seq: 2, Action: "npm.revoke_token", Status: runner.StepPending},
	}
	var out bytes.Buffer
	printRun(&globals{stdout: &out}, run, steps, nil)
	require.NotContains(t, out.String(), "\nimpact\n")
}

// TestRunsShowTokenImpact: for Slack, GitLab, npm and Vault, a scanner
// report's token revoked through the example playbook and the sandbox
// leaves a run whose stanch runs show says what the provider can tell:
// Vault's lookup, or that the provider keeps no usage history by token;
// and no token value.
func TestRunsShowTokenImpact(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"slack":  {"What the Slack token was used for (step revoke, slack.revoke_token)", "Slack keeps no usage history by token"},
		"gitlab": {"What the GitLab token was used for (step revoke, gitlab.revoke_token)", "GitLab keeps no usage history by token"},
		"npm":    {"What the npm token was used for (step revoke, npm.revoke_token)", "npm keeps no usage history by token"},
		"vault":  {"What the Vault token could do (step revoke, vault.revoke_token)", "Policies: ci, default", "Orphan: ", "Vault keeps no usage history by token"},
	}
	for _, p := range tokenProviders[1:] {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			e := newTokenE2E(t)
			res := e.ingestToken(p, e.tokenReport(t, p))
			require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
			runs := e.tokenRuns(t)
			require.Len(t, runs, 1)
			show := e.stanch(nil, "runs", "show", runs[0].ID, "--database", e.db)
			require.Equal(t, 0, show.code, show.stderr)
			require.Contains(t, show.stdout, "\nimpact\n")
			for _, w := range want[p.name] {
				require.Contains(t, show.stdout, w)
			}
			plant.RequireNone(t, p.name+": runs show", show.stdout, show.stderr)
		})
	}
}
