package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// The end-to-end tests run the real stanch binary as a subprocess against
// the sandbox, so that a SIGKILL really kills a process mid-run.

const (
	leakedKey = "AKIAIOSFODNN7EXAMPLE"
	otherKey  = "AKIAI44QH8DHBEXAMPLE"
	account   = "111122223333"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func stanchBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stanch-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "stanch")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

type e2e struct {
	t    *testing.T
	bin  string
	sb   *sandbox.Sandbox
	url  string
	dir  string
	db   string
	root string // repository root, for examples/
	// env is added to the environment of stanch serve.
	env []string
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	seedData, err := os.ReadFile("testdata/seed.yaml")
	require.NoError(t, err)
	return newE2EWithSeed(t, seedData)
}

func newE2EWithSeed(t *testing.T, seedData []byte) *e2e {
	t.Helper()
	sb := testkit.Sandbox(t, testkit.Seed(t, string(seedData)))
	dir := t.TempDir()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	return &e2e{t: t, bin: stanchBinary(t), sb: sb.Sandbox, url: sb.URL, dir: dir, db: "file:" + filepath.Join(dir, "stanch.db"), root: root}
}

type result struct {
	code   int
	killed bool
	stdout string
	stderr string
}

func (e *e2e) stanch(env []string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.dir,
		"AWS_ENDPOINT_URL=" + e.url,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=" + sandbox.ResponderKeyID,
		"AWS_SECRET_ACCESS_KEY=" + sandbox.ResponderSecret,
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
	}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
		}
	default:
		require.NoError(e.t, err)
	}
	return r
}

var runIDPattern = regexp.MustCompile(`run_[0-9a-z]{26}`)

func (e *e2e) example(path string) string { return filepath.Join(e.root, "examples", path) }

// runContain runs the containment steps of the example playbook.
func (e *e2e) runContain(env ...string) result {
	return e.stanch(env, "run", "--playbook", "testdata/contain.yaml", "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
}

func (e *e2e) runCount() int {
	res := e.stanch(nil, "runs", "list", "--json", "--database", e.db)
	if res.code == exitFailed && strings.Contains(res.stderr, "no store at ") {
		return 0 // nothing has made the store: nothing ran
	}
	require.Equal(e.t, 0, res.code, res.stderr)
	var runs []map[string]any
	require.NoError(e.t, json.Unmarshal([]byte(res.stdout), &runs), res.stdout)
	return len(runs)
}

func (e *e2e) requireContained() {
	e.t.Helper()
	status, ok := e.sb.KeyStatus(account, leakedKey)
	require.True(e.t, ok)
	require.Equal(e.t, "Inactive", status)
	status, ok = e.sb.KeyStatus(account, otherKey)
	require.True(e.t, ok)
	require.Equal(e.t, "Active", status, "only the leaked key is touched")
	require.Equal(e.t, 1, e.sb.EffectiveCount("UpdateAccessKey"), "exactly one effective UpdateAccessKey")
	require.Equal(e.t, 1, e.runCount(), "exactly one run for the alert")
}

func TestRunContainsLeakedKey(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.runContain()
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "✓ identify")
	require.Contains(t, res.stdout, "✓ deactivate")
	require.Contains(t, res.stdout, "succeeded")
	e.requireContained()

	again := e.runContain()
	require.Equal(t, 0, again.code, again.stderr)
	require.Contains(t, again.stdout, "already has run")
	require.Contains(t, again.stdout, "no second run started")
	e.requireContained()

	runID := runIDPattern.FindString(res.stdout)
	require.NotEmpty(t, runID, res.stdout)
	show := e.stanch(nil, "runs", "show", runID, "--database", e.db)
	require.Equal(t, 0, show.code, show.stderr)
	require.Contains(t, show.stdout, "step_succeeded")
	require.NotContains(t, show.stdout+res.stdout+res.stderr, sandbox.ResponderSecret)
}

// TestCrashAnywhereLosesNothingAndRepeatsNothing kills stanch with SIGKILL
// at every step boundary and in the middle of steps, then runs the same
// command again: the run completes, with one effective UpdateAccessKey and
// one run.
func TestCrashAnywhereLosesNothingAndRepeatsNothing(t *testing.T) {
	t.Parallel()
	points := []string{
		"submitted",         // alert and run committed, job not enqueued
		"before:identify",   // job running, nothing done
		"done:identify",     // reads done, not journalled
		"after:identify",    // step boundary
		"before:deactivate", // step boundary
		"done:deactivate",   // key deactivated, journal does not know
		"after:deactivate",  // last step journalled, run not finished
	}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			e := newE2E(t)
			crashed := e.runContain("STANCH_CRASHPOINT=" + point)
			require.True(t, crashed.killed, "want SIGKILL at %s; exit %d\n%s%s", point, crashed.code, crashed.stdout, crashed.stderr)

			resumed := e.runContain()
			require.Equal(t, 0, resumed.code, "stdout:\n%s\nstderr:\n%s", resumed.stdout, resumed.stderr)
			require.Contains(t, resumed.stdout, "already has run")
			require.Contains(t, resumed.stdout, "succeeded")
			e.requireContained()
		})
	}
}

// TestCrashDuringAPICall kills stanch while its UpdateAccessKey request is in
// flight at the sandbox.
func TestCrashDuringAPICall(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.sb.SetLatency(3 * time.Second)
	cmd := exec.Command(e.bin, "run", "--playbook", "testdata/contain.yaml", "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+e.url, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID="+sandbox.ResponderKeyID, "AWS_SECRET_ACCESS_KEY="+sandbox.ResponderSecret,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "HOME="+e.dir)
	require.NoError(t, cmd.Start())
	// UpdateAccessKey has reached the sandbox and waits out its 3 s
	// latency there: kill inside it.
	deadline := time.Now().Add(60 * time.Second)
	for e.sb.Arrived("UpdateAccessKey") == 0 {
		require.True(t, time.Now().Before(deadline), "stanch never sent UpdateAccessKey")
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	e.sb.SetLatency(0)
	resumed := e.runContain()
	require.Equal(t, 0, resumed.code, "stdout:\n%s\nstderr:\n%s", resumed.stdout, resumed.stderr)
	e.requireContained()
}

func TestApprovalEndToEnd(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	waiting := e.stanch(nil, "run", "--playbook", "testdata/approve-deactivate.yaml", "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	require.Equal(t, 3, waiting.code, "stdout:\n%s\nstderr:\n%s", waiting.stdout, waiting.stderr)
	require.Contains(t, waiting.stdout, "waiting for approval")
	idx := strings.Index(waiting.stdout, "stanch approve ")
	require.GreaterOrEqual(t, idx, 0, waiting.stdout)
	fields := strings.Fields(waiting.stdout[idx:])
	runID, step := fields[2], fields[3]
	require.Equal(t, "deactivate", step)
	status, _ := e.sb.KeyStatus(account, leakedKey)
	require.Equal(t, "Active", status, "nothing happens before approval")

	refused := e.stanch(nil, "approve", runID, step, "--by", "mallory", "--database", e.db)
	require.Equal(t, 1, refused.code)
	require.Contains(t, refused.stderr, "not an approver")

	approved := e.stanch(nil, "approve", runID, step, "--by", "alice", "--database", e.db)
	require.Equal(t, 0, approved.code, "stdout:\n%s\nstderr:\n%s", approved.stdout, approved.stderr)
	require.Contains(t, approved.stdout, "approved by alice")
	e.requireContained()

	twice := e.stanch(nil, "approve", runID, step, "--by", "alice", "--deny", "--database", e.db)
	require.Equal(t, 1, twice.code, "a denial after the approval is not what happened")
	require.Contains(t, twice.stdout, "already approved by alice")
	same := e.stanch(nil, "approve", runID, step, "--by", "alice", "--database", e.db)
	require.Equal(t, 0, same.code, "the same decision again is no failure")
}

func TestValidateAndPlan(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	ok := e.stanch(nil, "validate", e.example("playbooks/aws-key-leaked.yaml"), e.example("playbooks/aws-key-leaked-second-sweep.yaml"), e.example("playbooks/aws-role-credentials-exfiltrated.yaml"), "testdata/approve-deactivate.yaml", "testdata/contain.yaml", "testdata/rotate.yaml")
	require.Equal(t, 0, ok.code, ok.stdout+ok.stderr)
	require.Equal(t, "ok\n", ok.stdout)

	bad := e.stanch(nil, "validate", "testdata/broken.yaml")
	require.Equal(t, 1, bad.code)
	require.Contains(t, bad.stdout, "testdata/broken.yaml:4:")
	require.Contains(t, bad.stdout, "aws.deactivate_key")

	usage := e.stanch(nil, "run", "--playbook", "x.yaml")
	require.Equal(t, 2, usage.code)

	plan := e.stanch(nil, "plan", "--playbook", e.example("playbooks/aws-key-leaked.yaml"), "--alert", e.example("alerts/manual-aws-key.json"))
	require.Equal(t, 0, plan.code, plan.stdout+plan.stderr)
	require.Contains(t, plan.stdout, "UpdateAccessKey")
	require.Contains(t, plan.stdout, leakedKey)
	require.Zero(t, e.sb.Count("UpdateAccessKey"), "plan changes nothing")
	status, _ := e.sb.KeyStatus(account, leakedKey)
	require.Equal(t, "Active", status)
}

func TestActionsListsEveryAction(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.stanch(nil, "actions")
	require.Equal(t, 0, res.code, res.stderr)
	for _, want := range []string{"aws.identify_key", "aws.deactivate_key", "iam:UpdateAccessKey", "sts:GetAccessKeyInfo", "access_key_id"} {
		require.Contains(t, res.stdout, want)
	}
}

func TestRunRecognisesRawPayloads(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	for _, payload := range []string{"health-credentials-exposed.json", "gitleaks.json"} {
		res := e.stanch(nil, "run", "--playbook", "testdata/contain.yaml", "--alert", filepath.Join(e.root, "triggers/testdata", payload), "--database", e.db)
		require.Contains(t, []int{0, 3}, res.code, "%s\nstdout:\n%s\nstderr:\n%s", payload, res.stdout, res.stderr)
		require.Contains(t, res.stdout, "✓ deactivate", payload)
	}
	status, _ := e.sb.KeyStatus(account, leakedKey)
	require.Equal(t, "Inactive", status)
	require.Equal(t, 1, e.sb.EffectiveCount("UpdateAccessKey"), "the second alert about the same key finds it already inactive")

	sample := e.stanch(nil, "run", "--playbook", e.example("playbooks/aws-key-leaked.yaml"), "--alert", filepath.Join(e.root, "triggers/testdata/guardduty-sample.json"), "--database", e.db)
	require.Equal(t, 0, sample.code, sample.stdout+sample.stderr)
	require.Contains(t, sample.stdout, "does not apply", "the example playbook ignores sample findings")
}

func TestIngestScannerReports(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.stanch(nil, "ingest", "--format", "gitleaks", "--playbooks", e.example("playbooks/aws-key-leaked.yaml"), "--database", e.db, filepath.Join(e.root, "triggers/testdata/gitleaks.json"))
	require.Contains(t, []int{0, 3}, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "access_key AKIAIOSFODNN7EXAMPLE at deploy/settings.py:12: 1 run(s) started")
	require.Contains(t, res.stdout, "0 run(s) started, 0 already existed, 0 joined an open run, 1 playbook(s) did not apply", "the generic API key matches no AWS playbook")
	status, _ := e.sb.KeyStatus(account, leakedKey)
	require.Equal(t, "Inactive", status)

	bad := e.stanch(nil, "ingest", "--format", "csv", "--playbooks", e.example("playbooks/aws-key-leaked.yaml"), "--database", e.db, "-")
	require.Equal(t, 2, bad.code, bad.stderr)
}

// TestRoleCredentialsExfiltrated runs the GuardDuty playbook: instance
// credentials (ASIA…) used outside AWS are contained by revoking the role's
// sessions.
func TestRoleCredentialsExfiltrated(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.stanch(nil, "run", "--playbook", e.example("playbooks/aws-role-credentials-exfiltrated.yaml"),
		"--alert", filepath.Join(e.root, "triggers/testdata/guardduty-instance-exfiltration.json"), "--database", e.db)
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "✓ revoke_sessions")
	require.Contains(t, res.stdout, "role/app-server")
	require.Equal(t, 1, e.sb.EffectiveCount("PutRolePolicy"))
	require.Zero(t, e.sb.Count("UpdateAccessKey"), "there is no key to deactivate")
}

// stanch version names the commit it was built from (make build stamps it)
// and the Go version; stanch serve logs the same at start.
func TestVersionNamesTheCommit(t *testing.T) {
	t.Parallel()
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "stanch")
	out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, args := range [][]string{{"version"}, {"--version"}} {
		got, err := exec.Command(bin, args...).Output()
		require.NoError(t, err)
		require.Contains(t, string(got), "commit "+strings.TrimSpace(string(head)), args)
		require.Contains(t, string(got), "go1.", args)
	}
	js, err := exec.Command(bin, "version", "--json").Output()
	require.NoError(t, err)
	var b buildInfo
	require.NoError(t, json.Unmarshal(js, &b))
	require.Equal(t, strings.TrimSpace(string(head)), b.Commit)
}

// An unknown command is a usage error (exit 2) at every level.
func TestUnknownCommandsAreUsageErrors(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	for _, args := range [][]string{{"nosuch"}, {"runs", "nosuch"}, {"alerts", "nosuch"}} {
		res := e.stanch(nil, args...)
		require.Equal(t, exitUsage, res.code, "%v: %s%s", args, res.stdout, res.stderr)
		require.Contains(t, res.stderr, `unknown command "nosuch"`, args)
	}
	help := e.stanch(nil, "runs")
	require.Equal(t, exitOK, help.code, "a group without a subcommand shows its help")
	require.Contains(t, help.stdout, "Available Commands")
}
