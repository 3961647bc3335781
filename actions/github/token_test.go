package github

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/apicall"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/leaked"
)

// Leaked GitHub tokens are made of planted secrets, so that
// planted.RequireNone finds any trace of them.
var (
	leakedPAT   = "ghp_" + planted.AfterKeyID[:36]
	alertPAT    = "ghp_" + planted.InPath[:36]
	unseenPAT   = "ghp_" + planted.InTitle[:36]
	budgetPAT   = "ghp_" + planted.InURL[:36]
	budgetPAT2  = "ghp_" + planted.NoDigit[:35] + "7"
	fineGrained = "github_pat_" + planted.AfterKeyID + planted.InPath + "00"
)

// tokenSeed is the package's seed with leaked tokens (and an alert that
// reported alertPAT), plus extra YAML items under tokens:.
func tokenSeed(extra string) string {
	return seedYAML + `    - repo: acme/payments-service
      number: 77
      secret_type: github_personal_access_token
      secret: ` + alertPAT + `
tokens:
  - {provider: github, value: ` + leakedPAT + `, owner: octocat, scopes: [repo, gist]}
  - {provider: github, value: ` + alertPAT + `, owner: hubot, scopes: [repo]}
  - {provider: github, value: ` + unseenPAT + `, owner: monalisa}
  - {provider: github, value: ` + budgetPAT + `, owner: octocat}
  - {provider: github, value: ` + budgetPAT2 + `, owner: octocat}
  - {provider: github, value: ` + fineGrained + `, owner: octocat}
` + extra
}

type tokenBundle struct {
	sb   *testkit.Fixture
	p    *Provider
	logs *bytes.Buffer
	env  actions.Env
	act  actions.Action
}

func setupToken(t *testing.T, extra string) tokenBundle {
	t.Helper()
	sb := testkit.Sandbox(t, testkit.Seed(t, tokenSeed(extra)))
	p := NewProvider(Options{APIURL: sb.GitHubAPI(), Token: token})
	logs := &bytes.Buffer{}
	env := testkit.Env("run-tok")
	env.Logger = slog.New(slog.NewJSONHandler(&syncWriter{w: logs}, nil))
	return tokenBundle{sb: sb, p: p, logs: logs, env: env, act: revokeToken(p)}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func revokeCalls(sb *testkit.Fixture) int {
	n := 0
	for _, c := range sb.Calls() {
		if strings.HasSuffix(c.Params["path"], "/credentials/revoke") || c.Action == "RevokeCredentials" {
			n++
		}
	}
	return n
}

func TestRevokeTokenPlanDoAndAgain(t *testing.T) {
	t.Parallel()
	b := setupToken(t, "")
	fp := leaked.Process.Remember(leakedPAT)
	with := map[string]any{"credential": fp}

	plan, err := testkit.PlanAction(t, b.act, b.env, with)
	require.NoError(t, err)
	require.Len(t, plan.Calls, 3)
	require.Equal(t, "GET /user", plan.Calls[0].Operation)
	require.True(t, plan.Calls[0].Made)
	require.Equal(t, "POST /credentials/revoke", plan.Calls[1].Operation)
	require.True(t, plan.Calls[1].Mutates)
	require.Equal(t, "octocat", plan.Outputs["login"])
	require.Zero(t, revokeCalls(b.sb), "a plan revokes nothing")
	require.True(t, b.sb.TokenActive(leakedPAT))

	res, err := revokeStep(t, b.act, b.env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	require.Equal(t, "octocat", res.Outputs["login"])
	require.Equal(t, []string{"repo", "gist"}, res.Outputs["scopes"])
	require.Equal(t, "personal_access_token", res.Outputs["token_type"])
	require.Equal(t, true, res.Outputs["revoked"])
	require.False(t, b.sb.TokenActive(leakedPAT), "GitHub refuses the token")
	require.Equal(t, 1, revokeCalls(b.sb))

	again, err := revokeStep(t, b.act, b.env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome, again.Message)
	require.Equal(t, 1, revokeCalls(b.sb), "a token refused already costs no revocation request")
	replan, err := testkit.PlanAction(t, b.act, b.env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Already, replan.Settled)

	planted.RequireNone(t, "plans, results and logs", plan, res, again, replan, b.logs.String())
	planted.RequireNone(t, "the sandbox's call log", b.sb.Calls())
}

func TestRevokeTokenReadsTheAlertWhenThisProcessHasNotSeenIt(t *testing.T) {
	t.Parallel()
	b := setupToken(t, "")
	fp := alert.Fingerprint(alertPAT)
	leaked.Process.Forget(fp)
	res, err := revokeStep(t, b.act, b.env, map[string]any{"credential": fp, "repository": repo, "alert_number": 77})
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	require.Equal(t, "hubot", res.Outputs["login"])
	require.False(t, b.sb.TokenActive(alertPAT))
	got, ok := leaked.Process.Lookup(fp)
	require.True(t, ok, "the value read from the alert is remembered for the steps after")
	require.Equal(t, alertPAT, got)

	// Another alert's secret is not this token's.
	_, err = revokeStep(t, b.act, b.env, map[string]any{"credential": alert.Fingerprint(unseenPAT), "repository": repo, "alert_number": 77})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Contains(t, err.Error(), "holds a different secret")
	planted.RequireNone(t, "results, errors and logs", res, err, b.logs.String())
}

func TestRevokeTokenNobodyHoldsSaysHowToRevokeByHand(t *testing.T) {
	t.Parallel()
	b := setupToken(t, "")
	fp := alert.Fingerprint(unseenPAT)
	_, err := revokeStep(t, b.act, b.env, map[string]any{"credential": fp})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Contains(t, err.Error(), "stanch never stores token values")
	require.Contains(t, err.Error(), "this process has not seen it")
	require.Contains(t, err.Error(), "https://github.com/settings/tokens")
	_, perr := testkit.PlanAction(t, b.act, b.env, map[string]any{"credential": fp})
	require.Error(t, perr)
	require.True(t, b.sb.TokenActive(unseenPAT))

	_, err = b.act.Decode(map[string]any{"credential": unseenPAT})
	require.ErrorContains(t, err, "not a token fingerprint")
	planted.RequireNone(t, "errors", err, perr)
}

func TestRevokeTokenFineGrainedHasNoScopes(t *testing.T) {
	t.Parallel()
	b := setupToken(t, "")
	fp := leaked.Process.Remember(fineGrained)
	res, err := revokeStep(t, b.act, b.env, map[string]any{"credential": fp})
	require.NoError(t, err)
	require.Equal(t, "fine_grained_personal_access_token", res.Outputs["token_type"])
	require.Empty(t, res.Outputs["scopes"])
	planted.RequireNone(t, "results", res, b.logs.String())
}

func TestRevokeTokensLeakedTogetherShareOneRequest(t *testing.T) {
	t.Parallel()
	const n = 200
	var extra strings.Builder
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("ghp_Batch%031d", i)
		fmt.Fprintf(&extra, "  - {provider: github, value: %s, owner: ci-bot-%d}\n", values[i], i)
	}
	b := setupToken(t, extra.String())
	var wg sync.WaitGroup
	results := make([]actions.Result, n)
	errs := make([]error, n)
	for i, v := range values {
		fp := leaked.Process.Remember(v)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = revokeStep(t, b.act, b.env, map[string]any{"credential": fp})
		}()
	}
	wg.Wait()
	for i := range values {
		require.NoError(t, errs[i], "token %d", i)
		require.Equal(t, actions.Done, results[i].Outcome)
		require.False(t, b.sb.TokenActive(values[i]), "token %d is refused", i)
	}
	require.Equal(t, 1, revokeCalls(b.sb), "200 tokens leaked together take one request")
	require.Equal(t, []int{n}, b.sb.GitHubRevokeRequests())
	require.Equal(t, n, results[0].Outputs["batch_size"])
	require.Equal(t, 1, RevocationRequests(b.sb.GitHubAPI()))
}

// The one request a batch makes is in the record of every step it
// carried, with GitHub's request id, beside each step's own calls.
func TestEveryStepABatchCarriedRecordsItsRequest(t *testing.T) {
	t.Parallel()
	const n = 3
	var extra strings.Builder
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("ghp_Record%030d", i)
		fmt.Fprintf(&extra, "  - {provider: github, value: %s, owner: ci-bot-%d}\n", values[i], i)
	}
	b := setupToken(t, extra.String())
	var wg sync.WaitGroup
	var mu sync.Mutex
	calls := make([][]apicall.Call, n)
	for i, v := range values {
		fp := leaked.Process.Remember(v)
		wg.Go(func() {
			ctx := apicall.WithRecorder(context.Background(), func(c apicall.Call) {
				mu.Lock()
				defer mu.Unlock()
				calls[i] = append(calls[i], c)
			})
			_, err := revokeStepIn(ctx, t, b.act, b.env, map[string]any{"credential": fp})
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, 1, revokeCalls(b.sb))
	var ids []string
	for i := range calls {
		var ops []string
		for _, c := range calls[i] {
			require.Equal(t, "github", c.Service)
			require.NotEmpty(t, c.RequestID)
			ops = append(ops, c.Operation)
			if c.Operation == "POST /api/v3/credentials/revoke" {
				ids = append(ids, c.RequestID)
			}
		}
		require.Contains(t, ops, "GET /api/v3/user", "step %d identified its token", i)
		require.Equal(t, 1, countOf(ops, "POST /api/v3/credentials/revoke"), "step %d: %v", i, ops)
	}
	require.Len(t, ids, n)
	require.Equal(t, ids[0], ids[1], "the same request")
	require.Equal(t, ids[0], ids[2])
}

func countOf(list []string, v string) int {
	n := 0
	for _, s := range list {
		if s == v {
			n++
		}
	}
	return n
}

func TestRevokeTokenWaitsWhenTheHoursBudgetIsSpent(t *testing.T) {
	t.Parallel()
	b := setupToken(t, "")
	b.sb.SetGitHubRevokeLimit(1, time.Hour)
	first := leaked.Process.Remember(budgetPAT)
	res, err := revokeStep(t, b.act, b.env, map[string]any{"credential": first})
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)

	second := leaked.Process.Remember(budgetPAT2)
	start := time.Now()
	_, err = revokeStep(t, b.act, b.env, map[string]any{"credential": second})
	require.Error(t, err)
	require.Equal(t, actions.KindRetryable, actions.KindOf(err), "a spent budget waits, it does not fail")
	var budget *BudgetError
	require.ErrorAs(t, err, &budget)
	require.WithinDuration(t, start.Add(time.Hour), budget.Reset, 2*time.Minute, "the error carries the reset time")
	var later interface{ RetryAfter() time.Duration }
	require.ErrorAs(t, err, &later)
	require.Greater(t, later.RetryAfter(), 50*time.Minute)
	require.True(t, b.sb.TokenActive(budgetPAT2))
	sent := revokeCalls(b.sb)

	// Known spent: the next attempt before the reset sends nothing.
	_, err = revokeStep(t, b.act, b.env, map[string]any{"credential": second})
	require.ErrorAs(t, err, &budget)
	require.Equal(t, sent, revokeCalls(b.sb), "no request is sent while the budget is known to be spent")
	planted.RequireNone(t, "errors and logs", err, b.logs.String())
}

func TestRevokeTokenSpec(t *testing.T) {
	t.Parallel()
	spec := revokeToken(NewProvider(Options{})).Spec()
	require.True(t, spec.Containment)
	for _, o := range spec.Outputs {
		require.False(t, o.Secret, "github.revoke_token declares no secret output: it outputs no token")
	}
	names := []string{}
	for _, p := range spec.Permissions {
		names = append(names, p.Name)
	}
	require.Contains(t, names, "secret_scanning_alerts:read")
}

// revokeStep runs a revocation step as the runner does: an attempt sent
// away until its batch is answered (a *BatchWait) comes back when due,
// without counting as an attempt.
func revokeStep(t testing.TB, a actions.Action, env actions.Env, with map[string]any) (actions.Result, error) {
	t.Helper()
	return revokeStepIn(context.Background(), t, a, env, with)
}

// revokeStepIn is revokeStep with every attempt made with ctx.
func revokeStepIn(ctx context.Context, t testing.TB, a actions.Action, env actions.Env, with map[string]any) (actions.Result, error) {
	t.Helper()
	params := testkit.Decode(t, a, with)
	for {
		res, err := a.Do(ctx, env, params)
		var wait *BatchWait
		if !errors.As(err, &wait) {
			return res, err
		}
		time.Sleep(wait.RetryAfter())
	}
}
