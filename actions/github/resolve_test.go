package github

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/reportlink"
	"github.com/stanchhq/stanch/sandbox"
)

func TestResolveAlertOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resolve := b.actions(t, b.tokenOptions())["github.resolve_alert"]
	with := map[string]any{"repository": repo, "alert_number": 42, "comment": "stanch run run_1 deactivated the key"}

	res, err := testkit.RunAction(t, resolve, b.env("run_1"), with)
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome, res.Message)
	require.Equal(t, map[string]any{"state": "resolved", "resolution": "revoked", "resolved_by": "stanch-responder", "url": "https://github.com/acme/payments-service/security/secret-scanning/42"}, res.Outputs)
	got, ok := b.sb.GitHubAlert(repo, 42)
	require.True(t, ok)
	require.Equal(t, "resolved", got.State)
	require.Equal(t, "revoked", got.Resolution)
	require.Equal(t, "stanch run run_1 deactivated the key", got.ResolutionComment)
	require.Equal(t, 1, b.sb.EffectiveCount("UpdateSecretScanningAlert"))

	// Again, as a retry or a resume would: GitHub is read, not written.
	again, err := testkit.RunAction(t, resolve, b.env("run_1"), map[string]any{"repository": repo, "alert_number": 42, "comment": "a second comment"})
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome)
	require.Contains(t, again.Message, "already resolved (as revoked by stanch-responder at ")
	require.Equal(t, 1, b.sb.Count("UpdateSecretScanningAlert"), "no second PATCH")
	got, _ = b.sb.GitHubAlert(repo, 42)
	require.Equal(t, "stanch run run_1 deactivated the key", got.ResolutionComment)

	// Every read asked GitHub to leave the secret literal out, and it never
	// reached stanch.
	for _, c := range b.sb.Calls() {
		if c.Action == "GetSecretScanningAlert" {
			require.Equal(t, "true", c.Params["hide_secret"])
		}
	}
	b.noSecret(t, res, again)
}

func TestResolveAlertDefaultsAndPlan(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resolve := b.actions(t, b.tokenOptions())["github.resolve_alert"]
	p, err := resolve.Decode(map[string]any{"repository": repo, "alert_number": 42})
	require.NoError(t, err)

	plan, err := resolve.Plan(context.Background(), b.env("run_7"), p)
	require.NoError(t, err)
	require.Contains(t, plan.Summary, `would resolve secret-scanning alert acme/payments-service#42 (now open) as revoked with the comment "Resolved by stanch run run_7"`)
	require.Len(t, plan.Calls, 3)
	require.True(t, plan.Calls[0].Made)
	require.Equal(t, "PATCH repos/acme/payments-service/secret-scanning/alerts/42", plan.Calls[1].Operation)
	require.True(t, plan.Calls[1].Mutates)
	require.False(t, plan.Calls[1].Made)
	require.Equal(t, map[string]any{"state": "resolved", "resolution": "revoked", "resolution_comment": "Resolved by stanch run run_7"}, plan.Calls[1].Params)
	require.Zero(t, b.sb.Count("UpdateSecretScanningAlert"), "plan changes nothing")

	res, err := resolve.Do(context.Background(), b.env("run_7"), p)
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	got, _ := b.sb.GitHubAlert(repo, 42)
	require.Equal(t, "Resolved by stanch run run_7", got.ResolutionComment)

	plan, err = resolve.Plan(context.Background(), b.env("run_7"), p)
	require.NoError(t, err)
	require.Contains(t, plan.Summary, "already resolved")
	require.Len(t, plan.Calls, 1)
	b.noSecret(t, plan)
}

func TestResolveAlertResolvedByAPersonStaysAsItIs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resolve := b.actions(t, b.tokenOptions())["github.resolve_alert"]
	res, err := testkit.RunAction(t, resolve, b.env("run_1"), map[string]any{"repository": repo, "alert_number": 43})
	require.NoError(t, err)
	require.Equal(t, actions.Already, res.Outcome)
	require.Equal(t, "false_positive", res.Outputs["resolution"])
	got, _ := b.sb.GitHubAlert(repo, 43)
	require.Equal(t, "a test fixture", got.ResolutionComment)
	require.Zero(t, b.sb.Count("UpdateSecretScanningAlert"))
}

func TestResolveAlertErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resolve := b.actions(t, b.tokenOptions())["github.resolve_alert"]

	// A playbook cannot ask for a resolution GitHub does not know…
	_, err := resolve.Decode(map[string]any{"repository": repo, "alert_number": 42, "resolution": "fixed"})
	require.ErrorContains(t, err, `resolution "fixed" is not one of false_positive, wont_fix, revoked, used_in_tests`)
	_, err = resolve.Decode(map[string]any{"repository": "payments-service", "alert_number": 42})
	require.ErrorContains(t, err, `repository "payments-service" is not owner/name`)
	_, err = resolve.Decode(map[string]any{"repository": repo, "alert_number": 0})
	require.ErrorContains(t, err, "alert_number 0")

	// …and when GitHub refuses one anyway, the step fails at once, saying
	// why.
	_, err = resolve.Do(context.Background(), b.env("run_1"), &ResolveAlertParams{Repository: repo, AlertNumber: 42, Resolution: "fixed"})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Contains(t, err.Error(), `resolve secret-scanning alert acme/payments-service#42 as "fixed": GitHub refused the resolution (422 Validation Failed: resolution "fixed" is not valid`)
	got, _ := b.sb.GitHubAlert(repo, 42)
	require.Equal(t, "open", got.State)

	_, err = testkit.RunAction(t, resolve, b.env("run_1"), map[string]any{"repository": repo, "alert_number": 99})
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.ErrorContains(t, err, "404 Not Found")
	require.ErrorContains(t, err, "secret_scanning_alerts:write")

	bad := b.tokenOptions()
	bad.Token = "ghp_wrong"
	_, err = testkit.RunAction(t, b.actions(t, bad)["github.resolve_alert"], b.env("run_1"), map[string]any{"repository": repo, "alert_number": 42})
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.ErrorContains(t, err, "GitHub refused stanch's credentials")

	_, err = testkit.RunAction(t, b.actions(t, Options{})["github.resolve_alert"], b.env("run_1"), map[string]any{"repository": repo, "alert_number": 42})
	require.ErrorIs(t, err, ErrNotConfigured)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))

	b.sb.SetFault("github", sandbox.Fault{ErrorRate: 1})
	_, err = testkit.RunAction(t, resolve, b.env("run_1"), map[string]any{"repository": repo, "alert_number": 42})
	require.Equal(t, actions.KindRetryable, actions.KindOf(err), "a 503 is worth retrying: %v", err)
	require.Zero(t, b.sb.EffectiveCount("UpdateSecretScanningAlert"))
	b.noSecret(t, err)
}

// With report links configured, the comment, the default one and a custom
// one alike, ends with the link to the run's incident record: anchored on
// the run's creation (from its report), and it verifies.
func TestResolveAlertCommentLinksRecord(t *testing.T) {
	t.Parallel()
	signer, err := reportlink.NewSigner([]byte("report-link-key-for-tests-0123456789abcdef"), 24*time.Hour, "https://stanch.example.com")
	require.NoError(t, err)
	created := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for name, c := range map[string]struct{ comment, want string }{
		"default": {want: "Resolved by stanch run run_01LINK"},
		"custom":  {comment: "stanch run run_01LINK deactivated the key", want: "stanch run run_01LINK deactivated the key"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			opts := b.tokenOptions()
			opts.RecordLink = signer.Link
			resolve := b.actions(t, opts)["github.resolve_alert"]
			env := b.env("run_01LINK")
			anchor := actions.JournalAnchor{Seq: 23, Hash: strings.Repeat("4c1f", 16)}
			env.Report = func(context.Context) (actions.Report, error) {
				return actions.Report{RunID: "run_01LINK", StartedAt: created, Journal: anchor}, nil
			}
			with := map[string]any{"repository": repo, "alert_number": 42}
			if c.comment != "" {
				with["comment"] = c.comment
			}
			res, err := testkit.RunAction(t, resolve, env, with)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome, res.Message)
			got, ok := b.sb.GitHubAlert(repo, 42)
			require.True(t, ok)
			comment, link, ok := strings.Cut(got.ResolutionComment, " — incident record: ")
			require.True(t, ok, got.ResolutionComment)
			// GitHub keeps the journal's anchor at the time for good.
			link, journal, ok := strings.Cut(link, " — journal entry ")
			require.True(t, ok, got.ResolutionComment)
			require.Equal(t, "23, sha256 "+anchor.Hash, journal)
			require.Equal(t, c.want, comment)
			require.Equal(t, signer.Link("run_01LINK", created), link, "the same link as the Slack message's")
			u, err := url.Parse(link)
			require.NoError(t, err)
			require.Equal(t, "/reports/./run_01LINK", u.Path)
			require.NoError(t, signer.Verify("run_01LINK", u.Query().Get("expires"), u.Query().Get("mac"), created.Add(23*time.Hour)))
			require.ErrorIs(t, signer.Verify("run_01LINK", u.Query().Get("expires"), u.Query().Get("mac"), created.Add(24*time.Hour)), reportlink.ErrExpired)
		})
	}
}

// A comment too long for GitHub loses its end, never the link.
func TestRecordLinkKeepsWithinTheLimit(t *testing.T) {
	t.Parallel()
	link := "https://stanch.example.com/reports/./run_01LINK?expires=1&mac=00"
	anchor := actions.JournalAnchor{Seq: 7, Hash: strings.Repeat("ab", 32)}
	got := withRecordLink(strings.Repeat("é", maxComment), link, anchor)
	require.Equal(t, maxComment, utf8.RuneCountInString(got))
	require.True(t, strings.HasSuffix(got, "é… — incident record: "+link+" — journal entry 7, sha256 "+anchor.Hash), got[len(got)-200:])
	require.Equal(t, "short", withRecordLink("short", "", actions.JournalAnchor{}), "no link, no journal: the comment as it is")
}
