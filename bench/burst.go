package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/stanchhq/stanch/actions"
	awsactions "github.com/stanchhq/stanch/actions/aws"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
	"github.com/stanchhq/stanch/triggers"
)

type burstResult struct {
	alerts, accounts, impacts int
	total                     time.Duration // first request to last containment
	p50, p99                  time.Duration
	lost                      int
}

func burstKey(account, user int) string { return fmt.Sprintf("AKIABURST%03d%08d", account, user) }

func burstAccount(i int) string { return fmt.Sprintf("2000000%05d", i) }

// burstContain posts accounts×users distinct leaked keys, spread over as
// many accounts reached through their response role, as fast as 32
// clients can, at the given injected latency; with impacts > 0, that many
// long CloudTrail queries are running when the burst starts.
func burstContain(ctx context.Context, accounts, users int, latency time.Duration, impacts int) (burstResult, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "accounts:\n  - id: %q\n    users:\n      - %s\n", account, sandbox.ResponderSeedUser)
	if impacts > 0 {
		fmt.Fprintf(&b, "      - name: noisy\n        keys: [{id: AKIANOISYKEY00000000, secret: noisySecretNoisySecretNoisySecretNoisy00}]\n")
		fmt.Fprintf(&b, "    regions: [us-east-1]\n    event_generators: [{access_key_id: AKIANOISYKEY00000000, user: noisy, regions: [us-east-1], count: 1000, seed: 1}]\n")
	}
	for a := range accounts {
		fmt.Fprintf(&b, "  - id: %q\n    roles: [{name: stanch-responder, trusted_accounts: [%q], external_id: bench}]\n    users:\n", burstAccount(a), account)
		for u := range users {
			fmt.Fprintf(&b, "      - name: u%02d\n        keys: [{id: %s, secret: burstSecretBurstSecretBurstSecret%03d%03d}]\n", u, burstKey(a, u), a, u)
		}
	}
	sd, err := sandbox.ParseSeed("burst", []byte(b.String()))
	if err != nil {
		return burstResult{}, err
	}
	sb, err := sandbox.New(sd, sandbox.Options{Latency: latency})
	if err != nil {
		return burstResult{}, err
	}
	awsSrv := httptest.NewServer(sb)
	defer awsSrv.Close()
	cfg := awsConfig(awsSrv.URL)
	reg, err := actions.NewRegistry(awsactions.Actions(awsactions.NewProvider(awsactions.ProviderOptions{
		Config: func(context.Context, string) (aws.Config, error) { return cfg, nil },
		Roles:  &awsactions.ResponseRoles{ARN: "arn:aws:iam::{account}:role/stanch-responder", ExternalID: "bench"},
	}))...)
	if err != nil {
		return burstResult{}, err
	}
	contain, err := playbooks.Parse("contain.yaml", []byte(containment), reg)
	if err != nil {
		return burstResult{}, err
	}
	dir, err := os.MkdirTemp("", "stanch-bench-burst-")
	if err != nil {
		return burstResult{}, err
	}
	defer os.RemoveAll(dir)
	db, err := runner.OpenDatabase(ctx, "file:"+filepath.Join(dir, "stanch.db"))
	if err != nil {
		return burstResult{}, err
	}
	defer db.Close()
	r, err := runner.New(ctx, runner.Config{DB: db, Registry: reg, Workers: 100, InvestigationWorkers: max(impacts, 1)})
	if err != nil {
		return burstResult{}, err
	}
	if err := r.Start(ctx); err != nil {
		return burstResult{}, err
	}
	defer func() {
		// The impact queries may still be reading; do not wait for them.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = r.Stop(stopCtx)
	}()
	if impacts > 0 {
		// Long investigations: each reads 1,000 events (20 pages at 2 per
		// second) on the investigation queue.
		investigate, err := playbooks.Parse("investigate.yaml", []byte("name: investigate\ncorrelate: false\nsteps:\n  - id: impact\n    action: aws.cloudtrail_impact\n    with: {access_key_id: \"${{ alert.credential.id }}\", regions: [us-east-1]}\n"), reg)
		if err != nil {
			return burstResult{}, err
		}
		for i := range impacts {
			a := alert.Alert{Source: alert.SourceManual, DedupKey: fmt.Sprintf("noise-%d", i), Credential: alert.Credential{ID: "AKIANOISYKEY00000000"}}
			a.Normalise(time.Now())
			if _, err := r.Submit(ctx, a, []*playbooks.Playbook{investigate}); err != nil {
				return burstResult{}, err
			}
		}
		time.Sleep(time.Second) // let the queries get going
	}
	hook := httptest.NewServer(triggers.NewEventBridgeLimited("X-Stanch-Token", []byte(hookSecret), &runner.Dispatcher{Runner: r, Playbooks: []*playbooks.Playbook{contain}}, slog.New(slog.DiscardHandler), 0))
	defer hook.Close()

	type sent struct {
		key  string
		user string
		acct string
		at   time.Time
	}
	jobs := make(chan sent)
	var mu sync.Mutex
	var sends []sent
	lost := 0
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for s := range jobs {
				event := fmt.Sprintf(`{"version":"0","id":"%s","detail-type":"AWS Health Event","source":"aws.health","account":%q,"resources":[%q],"detail":{"eventArn":"arn:aws:health:us-east-1::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/%s","eventTypeCode":"AWS_RISK_CREDENTIALS_EXPOSED","eventMetadata":{"accountId":%q,"publicKey":%q}}}`,
					s.key, s.acct, s.key, s.key, s.acct, s.key)
				req, _ := http.NewRequest(http.MethodPost, hook.URL, strings.NewReader(event))
				req.Header.Set("X-Stanch-Token", hookSecret)
				s.at = time.Now()
				res, err := http.DefaultClient.Do(req)
				mu.Lock()
				if err != nil || res.StatusCode != http.StatusOK {
					lost++
				} else {
					sends = append(sends, s)
				}
				mu.Unlock()
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}
		})
	}
	start := time.Now()
	for a := range accounts {
		for u := range users {
			jobs <- sent{key: burstKey(a, u), user: fmt.Sprintf("u%02d", u), acct: burstAccount(a)}
		}
	}
	close(jobs)
	wg.Wait()
	n := accounts * users
	deadline := time.Now().Add(5 * time.Minute)
	var last time.Time
	var lat []time.Duration
	for {
		contained := map[string]time.Time{}
		for _, c := range sb.Calls() {
			if c.Action == "UpdateAccessKey" && c.Effective {
				contained[c.Params["AccessKeyId"]] = c.Time
			}
		}
		if len(contained) >= n-lost || time.Now().After(deadline) {
			lat = lat[:0]
			for _, s := range sends {
				if at, ok := contained[s.key]; ok {
					lat = append(lat, at.Sub(s.at))
					if at.After(last) {
						last = at
					}
				}
			}
			lost += len(sends) - len(lat)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return burstResult{alerts: n, accounts: accounts, impacts: impacts, total: last.Sub(start), p50: pct(lat, 50), p99: pct(lat, 99), lost: lost}, nil
}

func renderBurst(quiet, busy burstResult) string {
	worse := (float64(busy.p99)/float64(max(quiet.p99, 1)) - 1) * 100
	return fmt.Sprintf("\n## Burst\n\n%d distinct leaked keys in %d sandbox accounts (each reached through its response role), posted by 32 clients\nas fast as they can, 50 ms injected latency per AWS call, 100 containment workers. The second row has %d long\nCloudTrail impact queries running on the investigation queue when the burst starts.\n\n| impact queries running | all contained after | per-alert p50 | per-alert p99 | alerts lost |\n|---|---|---|---|---|\n| 0 | %.1f s | %s | %s | %d |\n| %d | %.1f s | %s | %s | %d |\n\nContainment p99 with the queries running: %+.0f%%.\n",
		quiet.alerts, quiet.accounts, busy.impacts, quiet.total.Seconds(), ms(quiet.p50), ms(quiet.p99), quiet.lost,
		busy.impacts, busy.total.Seconds(), ms(busy.p50), ms(busy.p99), busy.lost, worse)
}
