package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/stanchhq/stanch/actions"
	ghactions "github.com/stanchhq/stanch/actions/github"
	slackact "github.com/stanchhq/stanch/actions/slack"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
	stanchslack "github.com/stanchhq/stanch/slack"
	"github.com/stanchhq/stanch/triggers"
)

const (
	tokensAPIToken   = "ghp_benchApiTokenForStanchBench0000000000"
	tokensHookSecret = "bench-github-webhook-secret"
	tokensRepo       = "acme/mass-exposure"
)

// tokensResult is a mass exposure of GitHub tokens: how many revocation
// requests stanch spent, and how long until GitHub refused every token.
type tokensResult struct {
	tokens, workers int
	requests        []int // credentials per accepted POST /credentials/revoke
	calls           int   // every POST /credentials/revoke, refused ones too
	refused         time.Duration
	resolved        time.Duration // until every alert was resolved as revoked
	lost            int
}

// benchToken is the i-th leaked token: ghp_ and 36 letters or digits.
func benchToken(i int) string { return fmt.Sprintf("ghp_massExposureBenchToken%014d", i) }

// massTokens leaks n GitHub tokens at once: n secret-scanning alerts,
// delivered as n signed webhooks by 32 clients as fast as they can, handled
// as stanch serve handles them (the alert fetched by a resolver, the
// example playbook github-token-leaked.yaml, workers containment workers).
func massTokens(ctx context.Context, n, workers int) (tokensResult, error) {
	res := tokensResult{tokens: n, workers: workers}
	var b strings.Builder
	fmt.Fprintf(&b, "accounts:\n  - id: %q\n    users:\n      - %s\n", account, sandbox.ResponderSeedUser)
	fmt.Fprintf(&b, "github:\n  token: %s\n  alerts:\n", tokensAPIToken)
	for i := range n {
		fmt.Fprintf(&b, "    - {repo: %s, number: %d, secret_type: github_personal_access_token, secret: %s}\n", tokensRepo, i+1, benchToken(i))
	}
	b.WriteString("tokens:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {provider: github, value: %s, owner: dev%03d, scopes: [repo]}\n", benchToken(i), i)
	}
	sd, err := sandbox.ParseSeed("tokens", []byte(b.String()))
	if err != nil {
		return res, err
	}
	sb, err := sandbox.New(sd, sandbox.Options{})
	if err != nil {
		return res, err
	}
	srv := httptest.NewServer(sb)
	defer srv.Close()

	gh := ghactions.Options{APIURL: srv.URL + "/api/v3/", Token: tokensAPIToken}
	p := ghactions.NewProvider(gh)
	all := ghactions.Actions(p)
	all = append(all, ghactions.TokenActions(p)...)
	all = append(all, slackact.Actions(stanchslack.NewClient(stanchslack.Options{}), slackact.Options{})...) // no Slack: tell posts nothing
	reg, err := actions.NewRegistry(all...)
	if err != nil {
		return res, err
	}
	book, err := playbooks.Load("examples/playbooks/github-token-leaked.yaml", reg)
	if err != nil {
		return res, fmt.Errorf("%w (run the benchmark from the repository's root)", err)
	}
	client, err := ghactions.NewClient(gh)
	if err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "stanch-bench-tokens-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	db, err := runner.OpenDatabase(ctx, "file:"+filepath.Join(dir, "stanch.db"))
	if err != nil {
		return res, err
	}
	defer db.Close()
	var logger *slog.Logger
	if os.Getenv("BENCH_TOKENS_DEBUG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	r, err := runner.New(ctx, runner.Config{DB: db, Registry: reg, Workers: workers, Logger: logger, Playbooks: []*playbooks.Playbook{book},
		Resolvers: map[string]runner.Resolver{triggers.ResolverGitHubAlert: (&triggers.GitHubResolver{Client: client}).Resolve}})
	if err != nil {
		return res, err
	}
	if err := r.Start(ctx); err != nil {
		return res, err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = r.Stop(stopCtx)
	}()
	hook := triggers.NewGitHub([]byte(tokensHookSecret), &runner.Dispatcher{Runner: r, Playbooks: []*playbooks.Playbook{book}}, slog.New(slog.DiscardHandler))
	hook.RateLimit(0)
	hooks := httptest.NewServer(hook)
	defer hooks.Close()

	jobs := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range jobs {
				body := fmt.Appendf(nil, `{"action":"created","alert":{"number":%d,"secret_type":"github_personal_access_token"},"repository":{"full_name":%q}}`, i+1, tokensRepo)
				mac := hmac.New(sha256.New, []byte(tokensHookSecret))
				mac.Write(body)
				req, _ := http.NewRequest(http.MethodPost, hooks.URL, strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-GitHub-Event", "secret_scanning_alert")
				req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("mass-%d", i))
				req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					mu.Lock()
					res.lost++
					mu.Unlock()
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	start := time.Now()
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	deadline := start.Add(tokensDeadline)
	for res.refused == 0 || res.resolved == 0 {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("after 5 minutes, %d of %d tokens are still accepted", activeTokens(sb, n), n)
		}
		if res.refused == 0 && activeTokens(sb, n) == 0 {
			res.refused = time.Since(start)
		}
		if res.resolved == 0 && resolvedAlerts(sb, n) == n {
			res.resolved = time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.requests = sb.GitHubRevokeRequests()
	res.calls = sb.Count("RevokeCredentials")
	return res, nil
}

func activeTokens(sb *sandbox.Sandbox, n int) int {
	active := 0
	for i := range n {
		if sb.TokenActive(benchToken(i)) {
			active++
		}
	}
	return active
}

func resolvedAlerts(sb *sandbox.Sandbox, n int) int {
	done := 0
	for i := range n {
		if a, ok := sb.GitHubAlert(tokensRepo, i+1); ok && a.Resolution == "revoked" {
			done++
		}
	}
	return done
}

// tokenRows runs the mass exposure with stanch serve's default number of
// containment workers (20) and with one worker per token.
func tokenRows(ctx context.Context, n int) ([]tokensResult, error) {
	var rows []tokensResult
	for _, workers := range []int{20, n} {
		row, err := massTokens(ctx, n, workers)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func renderTokens(rows []tokensResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Leaked GitHub tokens at once\n\n%d GitHub tokens leaked together: as many secret-scanning webhooks, posted by 32 clients as fast as they can,\neach alert read from the sandbox's GitHub and handled by examples/playbooks/github-token-leaked.yaml. GitHub allows\n60 POST /credentials/revoke requests an hour, of at most 1,000 tokens each; the target is 1 request per 1,000 tokens.\n\n", rows[0].tokens)
	b.WriteString("| containment workers | revocation requests (tokens in each) | fewest possible (1 per 1,000 tokens) | all refused after | all alerts resolved after | webhooks lost |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		sizes := make([]string, len(r.requests))
		for i, s := range r.requests {
			sizes[i] = fmt.Sprint(s)
		}
		extra := ""
		if r.calls != len(r.requests) {
			extra = fmt.Sprintf(", %d refused", r.calls-len(r.requests))
		}
		fmt.Fprintf(&b, "| %d | %d (%s)%s | %d | %.2f s | %.2f s | %d |\n", r.workers, len(r.requests), strings.Join(sizes, ", "), extra,
			(r.tokens+999)/1000, r.refused.Seconds(), r.resolved.Seconds(), r.lost)
	}
	return b.String()
}

// tokensDeadline bounds the wait for every token to be refused.
var tokensDeadline = 2 * time.Minute
