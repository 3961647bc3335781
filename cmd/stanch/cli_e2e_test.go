package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
)

// The commands that only read the store never make one: a missing store is
// an error that says what to do, and the file is still absent afterwards.
// So are the commands that change a run, which cannot exist in it.
func TestReadingCommandsNeverCreateAStore(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	missing := filepath.Join(e.dir, "nothing-here", "stanch.db")
	for _, args := range [][]string{
		{"runs", "list"}, {"runs", "list", "--json"}, {"runs", "show", "run_x"}, {"runs", "show", "run_x", "--json"}, {"alerts", "list"},
		{"runs", "cancel", "run_x"}, {"runs", "retry", "run_x"}, {"runs", "close", "run_x", "--note", "n"}, {"approve", "run_x", "step", "--by", "alice"},
	} {
		res := e.stanch(nil, append(args, "--database", "file:"+missing)...)
		require.Equal(t, exitFailed, res.code, "%v: %s%s", args, res.stdout, res.stderr)
		require.Contains(t, res.stderr, "no store at file:"+missing+": nothing has run with this store yet; name the one stanch serve or stanch run used (--database, $STANCH_DATABASE or database: in the configuration file)", args)
		require.NoDirExists(t, filepath.Dir(missing), "%v made the store's directory", args)
	}
	// The default store, and one named by the environment, are named so.
	res := e.stanch(nil, "runs", "list")
	require.Equal(t, exitFailed, res.code, res.stderr)
	require.Contains(t, res.stderr, "no store at file:"+filepath.Join(e.dir, ".local", "state", "stanch", "stanch.db")+" (the default): ")
	res = e.stanch([]string{"STANCH_DATABASE=file:" + missing}, "alerts", "list")
	require.Equal(t, exitFailed, res.code, res.stderr)
	require.Contains(t, res.stderr, "no store at file:"+missing+" (from $STANCH_DATABASE): ")
	require.NoDirExists(t, filepath.Dir(missing))

	// A store something has run with is read.
	run := e.runContain()
	require.Equal(t, exitOK, run.code, run.stdout+run.stderr)
	runID := runIDPattern.FindString(run.stdout)
	for _, args := range [][]string{{"runs", "list"}, {"runs", "show", runID}, {"runs", "list", "--status", "succeeded"}} {
		res := e.stanch(nil, append(args, "--database", e.db)...)
		require.Equal(t, exitOK, res.code, "%v: %s%s", args, res.stdout, res.stderr)
		require.Contains(t, res.stdout, runID, args)
	}
	alerts := e.stanch(nil, "alerts", "list", "--database", e.db)
	require.Equal(t, exitOK, alerts.code, alerts.stderr)
	require.Contains(t, alerts.stdout, "stanch could act on every alert it received")
	list := e.stanch(nil, "runs", "list", "--database", e.db)
	require.Regexp(t, `(?m)^RUN +PLAYBOOK +STATUS`, list.stdout, "the header is a table row, not escaped tabs")
}

// An unknown --status is a usage error that lists the statuses there are.
func TestRunsListRefusesAnUnknownStatus(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.stanch(nil, "runs", "list", "--status", "done", "--database", e.db)
	require.Equal(t, exitUsage, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stderr, `--status "done": want one of pending, running, waiting_approval, succeeded, failed, cancelled`)
	require.NoFileExists(t, strings.TrimPrefix(e.db, "file:"), "a usage error opens nothing")
}

// stanch runs show --json: one naming style (snake_case) in every key of
// stanch's own, and the run's alert in it, redacted.
func TestRunsShowJSONIsSnakeCaseWithTheRedactedAlert(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	doc, err := json.Marshal(map[string]any{
		"source": "manual", "kind": "credential_exposed", "dedup_key": "manual:planted-show",
		"title":      "key AKIAIOSFODNN7EXAMPLE leaked with its secret " + planted.InTitle,
		"credential": map[string]any{"provider": "aws", "kind": "access_key", "id": leakedKey, "account": account},
		"location":   map[string]any{"repo": "acme/payments-service", "path": "deploy/settings.py", "line": 12, "url": "https://example.com/x?AWS_SECRET_ACCESS_KEY=" + strings.ReplaceAll(planted.InURL, "/", "%2F")},
		"raw":        map[string]any{"AccessKeyId": leakedKey, "SecretAccessKey": planted.Random},
	})
	require.NoError(t, err)
	alertPath := filepath.Join(e.dir, "alert.json")
	require.NoError(t, os.WriteFile(alertPath, doc, 0o600))
	waiting := e.stanch(nil, "run", "--playbook", "testdata/approve-deactivate.yaml", "--alert", alertPath, "--database", e.db)
	require.Equal(t, exitWaiting, waiting.code, waiting.stdout+waiting.stderr)
	runID := runIDPattern.FindString(waiting.stdout)
	approved := e.stanch(nil, "approve", runID, "deactivate", "--by", "alice", "--database", e.db)
	require.Equal(t, exitOK, approved.code, approved.stdout+approved.stderr)

	res := e.stanch(nil, "runs", "show", runID, "--json", "--database", e.db)
	require.Equal(t, exitOK, res.code, res.stderr)
	planted.RequireNone(t, "stanch runs show --json", res.stdout)
	var shown map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &shown))
	for _, part := range []string{"run", "alert", "steps", "approvals", "journal"} {
		require.NotEmpty(t, shown[part], "runs show --json has %s:\n%s", part, res.stdout)
	}
	var keys []string
	walkKeys(shown, "", func(path, key string) {
		// alert.raw is the sender's document, as it sent it: its keys are
		// the sender's, not stanch's.
		if !strings.HasPrefix(path, ".alert.raw.") {
			keys = append(keys, path)
		}
		if !strings.HasPrefix(path, ".alert.raw.") && !snakeCase.MatchString(key) {
			t.Errorf("key %s is not snake_case", path)
		}
	})
	for _, want := range []string{".run.status", ".alert.credential.id", ".alert.title", ".steps[].step_id", ".steps[].ended_at",
		".approvals[].step_id", ".approvals[].decided_by", ".approvals[].effects[].description", ".journal[].event", ".journal[].step_id"} {
		require.Contains(t, keys, want, res.stdout)
	}
	alert := shown["alert"].(map[string]any)
	require.Equal(t, leakedKey, alert["credential"].(map[string]any)["id"])
	require.Contains(t, alert["title"], "key AKIAIOSFODNN7EXAMPLE leaked with its secret [REDACTED]")
	require.Contains(t, alert["raw"], "AccessKeyId", "the sender's document is kept, less its secret")
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// walkKeys calls fn with the path (.a.b[].c) and name of every object key
// in v.
func walkKeys(v any, path string, fn func(path, key string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			fn(path+"."+k, k)
			walkKeys(child, path+"."+k, fn)
		}
	case []any:
		for _, child := range v {
			walkKeys(child, path+"[]", fn)
		}
	}
}

// stanch run --detach returns once the run is committed, saying how to
// follow it; the process that works the store (here a stanch serve
// started afterwards) runs it to the end, and one already working the
// store is named.
func TestRunDetachLeavesTheRunToTheProcessThatWorksTheStore(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.stanch(nil, "run", "--detach", "--playbook", "testdata/contain.yaml", "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	runID := runIDPattern.FindString(res.stdout)
	require.NotEmpty(t, runID, res.stdout)
	require.Contains(t, res.stdout, "no stanch process works this store now: the run starts when one does")
	require.Contains(t, res.stdout, "To follow it:\n  stanch runs show "+runID+" --database "+e.db+"\n", "the hint repeats --database")
	require.Equal(t, string(runner.RunPending), e.runStatus(t, runID), "committed, and not worked by the command that returned")
	require.Zero(t, e.sb.Count("UpdateAccessKey"))

	_, serveCmd, serveLog := e.startServeWith(t, "testdata/contain.yaml", "eb-secret")
	e.waitRunStatus(t, runID, string(runner.RunSucceeded), serveLog)
	status, _ := e.sb.KeyStatus(account, leakedKey)
	require.Equal(t, "Inactive", status)

	// Beside serve: it is named, and it runs the run.
	doc, err := json.Marshal(map[string]any{"source": "manual", "dedup_key": "manual:detached-second", "credential": map[string]any{"id": otherKey, "account": account}})
	require.NoError(t, err)
	second := filepath.Join(e.dir, "second.json")
	require.NoError(t, os.WriteFile(second, doc, 0o600))
	res = e.stanch(nil, "run", "--detach", "--playbook", "testdata/contain.yaml", "--alert", second, "--database", e.db)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, fmt.Sprintf("stored; stanch process %d (it holds ", serveCmd.Process.Pid))
	e.waitRunStatus(t, runIDPattern.FindString(res.stdout), string(runner.RunSucceeded), serveLog)
	status, _ = e.sb.KeyStatus(account, otherKey)
	require.Equal(t, "Inactive", status)
}

// The way the sandbox's help documents to run it in the background works
// in a real shell: eval "$(stanch sandbox … --detach)" returns, and the
// variables it sets point at a live sandbox.
func TestSandboxDetachInAShell(t *testing.T) {
	t.Parallel()
	bin := stanchBinary(t)
	help, err := exec.Command(bin, "sandbox", "--help").Output()
	require.NoError(t, err)
	documented := regexp.MustCompile(`eval "\$\((stanch sandbox [^)]*--detach)\)"`).FindStringSubmatch(string(help))
	require.NotNil(t, documented, "stanch sandbox --help shows eval \"$(stanch sandbox … --detach)\":\n%s", help)
	// The documented line, on a free port rather than the default one.
	line := `eval "$(` + strings.Replace(documented[1], "stanch", `"$STANCH"`, 1) + ` --listen 127.0.0.1:0)"`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shell := exec.CommandContext(ctx, "bash", "-c", line+` && printf '%s\n%s\n%s\n' "$AWS_ENDPOINT_URL" "$AWS_ACCESS_KEY_ID" "$STANCH_SANDBOX_PID"`)
	shell.Dir = "../.." // the help's paths are the repository's
	shell.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "STANCH=" + bin}
	out, err := shell.Output()
	require.NoError(t, ctx.Err(), "the shell did not return: the detached sandbox holds its output open")
	require.NoError(t, err, string(out))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 3, string(out))
	url, key := lines[0], lines[1]
	pid, err := strconv.Atoi(lines[2])
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGTERM) })
	require.Equal(t, sandbox.ResponderKeyID, key, "the responder's key of the seed")

	resp, err := http.Get(url + "/_sandbox/state")
	require.NoError(t, err, "the sandbox serves once the shell has returned")
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var state struct {
		Accounts []struct {
			ID string `json:"id"`
		} `json:"accounts"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&state))
	require.Equal(t, account, state.Accounts[0].ID)
}

// A run that sleeps until a step's delay is over is not followed for the
// length of the delay: the command says until when and exits 3, and the
// run is left, asleep, to the process that works the store.
func TestRunStopsFollowingARunThatSleeps(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	playbook := filepath.Join(e.dir, "sweep-later.yaml")
	require.NoError(t, os.WriteFile(playbook, []byte(`name: sweep-later
description: Contain now, look again in twenty minutes.
on:
  providers: [aws]
steps:
  - id: identify
    action: aws.identify_key
    with:
      access_key_id: ${{ alert.credential.id }}
  - id: again
    action: aws.identify_key
    delay: 20m
    with:
      access_key_id: ${{ alert.credential.id }}
`), 0o600))
	res := e.stanch(nil, "run", "--playbook", playbook, "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	require.Equal(t, exitWaiting, res.code, res.stdout+res.stderr)
	runID := runIDPattern.FindString(res.stdout)
	require.Regexp(t, regexp.QuoteMeta(runID)+` sleeps until \S+ \(a step's delay\); the process that works this store continues it then`, res.stdout)
	require.Equal(t, string(runner.RunRunning), e.runStatus(t, runID))
	show := e.stanch(nil, "runs", "show", runID, "--database", e.db)
	require.Contains(t, show.stdout, "step_delayed")
}
