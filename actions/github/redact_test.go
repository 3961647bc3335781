package github

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
)

// GitHub keeps resolution comments and issues for good: a secret a
// playbook's template put in one (from an alert field, a step's message)
// is redacted before it is sent.
func TestGitHubTextIsRedactedBeforeItIsSent(t *testing.T) {
	t.Parallel()
	secret := planted.NoUpper
	b := setup(t)
	acts := b.actions(t, b.tokenOptions())
	res, err := b.do(t, acts["github.resolve_alert"], "run_1", map[string]any{"repository": repo, "alert_number": 42, "comment": "deactivated; the secret was " + secret})
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome, res.Message)
	got, ok := b.sb.GitHubAlert(repo, 42)
	require.True(t, ok)
	require.Equal(t, "deactivated; the secret was "+alert.Redacted, got.ResolutionComment)

	res, err = b.do(t, acts["github.open_issue"], "run_1", map[string]any{"repository": issueRepo, "title": "Leaked " + secret, "body": "found at https://ci.example.com/job?token=" + secret})
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome, res.Message)
	issues := b.sb.GitHubIssues(issueRepo)
	require.Len(t, issues, 1)
	require.Equal(t, "Leaked "+alert.Redacted, issues[0].Title)
	require.Equal(t, "found at https://ci.example.com/job?token="+alert.Redacted+"\n\n<!-- stanch:run=run_1 key=incident -->", issues[0].Body)
}
