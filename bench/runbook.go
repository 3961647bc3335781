package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/stanchhq/stanch/sandbox"
)

type runbookResult struct {
	n      int
	perKey time.Duration // median wall time of the AWS CLI runbook per alert
	stanch time.Duration // stanch's time to the same last call, p50
}

// runbook times bench/runbook.sh, the same containment calls made with the
// AWS CLI, against a sandbox without injected latency.
func runbook(ctx context.Context, n int) (runbookResult, error) {
	if _, err := exec.LookPath("aws"); err != nil {
		return runbookResult{}, fmt.Errorf("the AWS CLI is needed for the runbook comparison: %w", err)
	}
	h, err := newHarness(ctx, n, 0, 0)
	if err != nil {
		return runbookResult{}, err
	}
	defer h.close()
	script, err := filepath.Abs("bench/runbook.sh")
	if err != nil {
		return runbookResult{}, err
	}
	var times []time.Duration
	for i := range n {
		cmd := exec.CommandContext(ctx, "bash", script, keyID(i))
		cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+awsURL(h), "AWS_ACCESS_KEY_ID="+sandbox.ResponderKeyID, "AWS_SECRET_ACCESS_KEY="+sandbox.ResponderSecret,
			"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return runbookResult{}, fmt.Errorf("runbook: %v: %s", err, out)
		}
		times = append(times, time.Since(start))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	return runbookResult{n: n, perKey: pct(times, 50)}, nil
}

func (r runbookResult) render() string {
	ratio := float64(r.perKey) / float64(max(r.stanch, 1))
	return fmt.Sprintf("\n## Side by side with an AWS CLI runbook\n\n`bench/runbook.sh` makes the same containment calls with the AWS CLI (get-access-key-info, get-access-key-last-used,\nupdate-access-key, put-user-policy) against the same sandbox; median of %d alerts, against stanch's p50 time to the\nsession-revoking policy (0 ms injected latency).\n\n| AWS CLI runbook per alert | stanch per alert | stanch is faster by |\n|---|---|---|\n| %s | %s | %.0f× |\n",
		r.n, ms(r.perKey), ms(r.stanch), ratio)
}
