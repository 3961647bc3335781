package github

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
)

// GitHub keeps resolution comments and issues for good: a secret a
// playbook's template put in one (from an alert field, a step's message)
// is redacted before it is sent.
func TestGitHubTextIsRedactedBeforeItIsSent(t *testing.T) {
	t.Parallel()
	secret := planted.NoUpper
	b := setup(t)
	acts := b.actions(t, b.tokenOptions())
	res, err := testkit.RunAction(t, acts["github.resolve_alert"], b.env("run_1"), map[string]any{"repository": repo, "alert_number": 42, "comment": "deactivated; the secret was " + secret})
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome, res.Message)
	got, ok := b.sb.GitHubAlert(repo, 42)
	require.True(t, ok)
	require.Equal(t, "deactivated; the secret was "+alert.Redacted, got.ResolutionComment)

	res, err = testkit.RunAction(t, acts["github.open_issue"], b.env("run_1"), map[string]any{"repository": issueRepo, "title": "Leaked " + secret, "body": "found at https://ci.example.com/job?token=" + secret})
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome, res.Message)
	issues := b.sb.GitHubIssues(issueRepo)
	require.Len(t, issues, 1)
	require.Equal(t, "Leaked "+alert.Redacted, issues[0].Title)
	require.Equal(t, "found at https://ci.example.com/job?token="+alert.Redacted+"\n\n<!-- stanch:run=run_1 key=incident -->", issues[0].Body)
}

// Every planted secret, as a playbook's templates could put it in what
// the actions send (a resolution comment, an issue's title and body, as
// written, URL-encoded, in a path) and as the alert's secret literal that
// GitHub holds: none reaches GitHub, a result, a plan, an error or the
// logs.
func TestPlantedSecretsNeverReachGitHub(t *testing.T) {
	t.Parallel()
	seed := testkit.Seed(t, seedYAML)
	seed.GitHub.Alerts[0].Secret = planted.InLiteral
	b := setupSeed(t, seed)
	acts := b.actions(t, b.tokenOptions())
	var sent []any // results, plans and errors
	run := func(a actions.Action, runID string, with map[string]any) {
		t.Helper()
		plan, err := testkit.PlanAction(t, a, b.env(runID), with)
		require.NoError(t, err)
		res, err := testkit.RunAction(t, a, b.env(runID), with)
		require.NoError(t, err)
		require.Equal(t, actions.Done, res.Outcome, res.Message)
		sent = append(sent, plan, res)
	}

	var comment []string
	for _, s := range planted.All {
		comment = append(comment, "the secret was "+s)
	}
	run(acts["github.resolve_alert"], "run_1", map[string]any{"repository": repo, "alert_number": 42, "comment": strings.Join(comment, "; ")})
	for i, s := range planted.All {
		run(acts["github.open_issue"], "run_1", map[string]any{"repository": issueRepo, "key": fmt.Sprintf("leak-%d", i), "title": "Leaked " + s,
			"body": "found at https://ci.example.com/job?token=" + url.QueryEscape(s) + " in deploy/" + s + "/settings.py", "labels": []any{"leak " + s}})
	}
	_, err := testkit.RunAction(t, acts["github.resolve_alert"], b.env("run_2"), map[string]any{"repository": repo, "alert_number": 404, "comment": "the secret was " + planted.NoDigit})
	require.Error(t, err)
	sent = append(sent, err)

	got, ok := b.sb.GitHubAlert(repo, 42)
	require.True(t, ok)
	require.Equal(t, "resolved", got.State)
	planted.RequireNone(t, "the resolution comment", got.ResolutionComment)
	require.Contains(t, got.ResolutionComment, alert.Redacted)
	issues := b.sb.GitHubIssues(issueRepo)
	require.Len(t, issues, len(planted.All))
	for _, i := range issues {
		planted.RequireNone(t, "an issue", i.Title, i.Body, i.Labels)
	}
	planted.RequireNone(t, "what the actions returned", sent...)
	planted.RequireNone(t, "the calls GitHub received", b.sb.Calls())
	planted.RequireNone(t, "what GitHub answered", b.wire.String())
	planted.RequireNone(t, "the logs", b.log.String())
}
