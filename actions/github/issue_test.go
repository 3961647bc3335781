package github

import (
	"context"
	"fmt"
	"testing"

	gh "github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
)

const issueRepo = "acme/security-incidents"

func TestOpenIssueOncePerRunAndKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	open := b.actions(t, b.tokenOptions())["github.open_issue"]
	with := map[string]any{"repository": issueRepo, "title": "Leaked key AKIAIOSFODNN7EXAMPLE", "body": "Contained by stanch.\n", "labels": []any{"incident", "aws"}}

	res, err := testkit.RunAction(t, open, b.env("run_1"), with)
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome, res.Message)
	require.Equal(t, map[string]any{"number": 1, "url": "https://github.com/acme/security-incidents/issues/1"}, res.Outputs)
	issues := b.sb.GitHubIssues(issueRepo)
	require.Len(t, issues, 1)
	require.Equal(t, "Contained by stanch.\n\n<!-- stanch:run=run_1 key=incident -->", issues[0].Body)
	require.Equal(t, []string{"incident", "aws", "stanch"}, issues[0].Labels)
	require.Equal(t, "open", issues[0].State)

	// A retry, or a resume whose journal lost the step: the marker finds the
	// issue, and nothing differs.
	again, err := testkit.RunAction(t, open, b.env("run_1"), with)
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome)
	require.Equal(t, res.Outputs, again.Outputs)
	require.Equal(t, 1, b.sb.EffectiveCount("CreateIssue"))
	require.Zero(t, b.sb.Count("UpdateIssue"))

	// A later step with the same key edits only what differs, and keeps
	// labels people added.
	client, err := NewClient(b.tokenOptions())
	require.NoError(t, err)
	_, _, err = client.Issues.Edit(context.Background(), "acme", "security-incidents", 1, &gh.IssueRequest{Labels: &[]string{"incident", "aws", "stanch", "triage"}})
	require.NoError(t, err)
	closing := map[string]any{"repository": issueRepo, "title": "Leaked key AKIAIOSFODNN7EXAMPLE (contained)", "body": "Contained by stanch.\n", "labels": []any{"incident"}, "state": "closed"}
	edited, err := testkit.RunAction(t, open, b.env("run_1"), closing)
	require.NoError(t, err)
	require.Equal(t, actions.Done, edited.Outcome)
	require.Equal(t, "edited acme/security-incidents#1: title, state open → closed", edited.Message)
	issues = b.sb.GitHubIssues(issueRepo)
	require.Len(t, issues, 1)
	require.Equal(t, "closed", issues[0].State)
	require.Equal(t, "Leaked key AKIAIOSFODNN7EXAMPLE (contained)", issues[0].Title)
	require.Equal(t, []string{"incident", "aws", "stanch", "triage"}, issues[0].Labels)

	// Another key, or another run, is another issue.
	other, err := testkit.RunAction(t, open, b.env("run_1"), map[string]any{"repository": issueRepo, "title": "Follow-up", "key": "follow-up"})
	require.NoError(t, err)
	require.Equal(t, 2, other.Outputs["number"])
	next, err := testkit.RunAction(t, open, b.env("run_2"), with)
	require.NoError(t, err)
	require.Equal(t, 3, next.Outputs["number"])
	require.Len(t, b.sb.GitHubIssues(issueRepo), 3)
}

// TestOpenIssueFindsItOnALaterPage opens the issue, buries it under more
// issues labelled stanch than one page holds, and runs the step again, as
// a resume after a crash between the creation and the journal would.
func TestOpenIssueFindsItOnALaterPage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	open := b.actions(t, b.tokenOptions())["github.open_issue"]
	with := map[string]any{"repository": issueRepo, "title": "Leaked key", "state": "closed"}
	first, err := testkit.RunAction(t, open, b.env("run_1"), with)
	require.NoError(t, err)
	require.Equal(t, actions.Done, first.Outcome)
	require.Contains(t, first.Message, "opened and edited acme/security-incidents#1: state open → closed")

	client, err := NewClient(b.tokenOptions())
	require.NoError(t, err)
	for i := range 130 {
		_, _, err := client.Issues.Create(context.Background(), "acme", "security-incidents", &gh.IssueRequest{
			Title: gh.String(fmt.Sprintf("incident %d", i)), Body: gh.String(fmt.Sprintf("<!-- stanch:run=run_other%d key=incident -->", i)), Labels: &[]string{"stanch"}})
		require.NoError(t, err)
	}
	_, _, err = client.Issues.Create(context.Background(), "acme", "security-incidents", &gh.IssueRequest{Title: gh.String("unlabelled"), Body: gh.String("<!-- stanch:run=run_1 key=incident -->")})
	require.NoError(t, err)

	lists := b.sb.Count("ListIssues")
	again, err := testkit.RunAction(t, open, b.env("run_1"), with)
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome, again.Message)
	require.Equal(t, 1, again.Outputs["number"])
	require.Equal(t, 2, b.sb.Count("ListIssues")-lists, "the issue was on the second page")
	require.Len(t, b.sb.GitHubIssues(issueRepo), 132, "no second issue")

	plan, err := open.Plan(context.Background(), b.env("run_1"), testkit.Decode(t, open, with))
	require.NoError(t, err)
	require.Equal(t, "acme/security-incidents#1 is up to date: nothing to change", plan.Summary)
	plan, err = open.Plan(context.Background(), b.env("run_3"), testkit.Decode(t, open, with))
	require.NoError(t, err)
	require.Equal(t, `would open an issue in acme/security-incidents: "Leaked key", labelled stanch`, plan.Summary)
}

func TestOpenIssueParams(t *testing.T) {
	t.Parallel()
	b := setup(t)
	open := b.actions(t, b.tokenOptions())["github.open_issue"]
	for _, c := range []struct {
		with map[string]any
		want string
	}{
		{map[string]any{"repository": issueRepo, "title": " "}, "title is empty"},
		{map[string]any{"repository": issueRepo, "title": "x", "state": "resolved"}, `state "resolved" is not open or closed`},
		{map[string]any{"repository": issueRepo, "title": "x", "key": "Has Spaces"}, `key "Has Spaces"`},
		{map[string]any{"repository": "acme", "title": "x"}, `repository "acme" is not owner/name`},
		{map[string]any{"repository": issueRepo, "title": "x", "labels": "not-a-list"}, `parameter "labels" wants list of string`},
	} {
		_, err := open.Decode(c.with)
		require.ErrorContains(t, err, c.want)
	}
	_, err := open.Do(context.Background(), actions.Env{}, &OpenIssueParams{Repository: issueRepo, Title: "x"})
	require.ErrorContains(t, err, "needs the run's id")
}
