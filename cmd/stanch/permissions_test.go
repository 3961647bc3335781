package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// examplePlaybooks are the playbooks examples/iam/responder-policy.json is
// generated from.
func examplePlaybooks(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("../../examples/playbooks/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	return paths
}

func permissionsArgs(paths []string) []string {
	args := []string{"permissions"}
	for _, p := range paths {
		args = append(args, "--playbook", p)
	}
	return args
}

func TestResponderPolicyIsUpToDate(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.stanch(nil, permissionsArgs(examplePlaybooks(t))...)
	require.Equal(t, 0, res.code, res.stderr)
	want, err := os.ReadFile("../../examples/iam/responder-policy.json")
	require.NoError(t, err)
	require.JSONEq(t, string(want), res.stdout, "regenerate with: stanch permissions --playbook examples/playbooks/*.yaml > examples/iam/responder-policy.json")
}

// TestResponderPolicyCoversEveryCall runs the example and checks that every
// AWS API the actions called is allowed by the generated policy.
func TestResponderPolicyCoversEveryCall(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	run := e.runToEnd(t, e.example("playbooks/aws-key-leaked.yaml"))
	require.Equal(t, 0, run.code, run.stdout+run.stderr)
	show := e.stanch(nil, "runs", "show", runIDPattern.FindString(run.stdout), "--json", "--database", e.db)
	require.Equal(t, 0, show.code, show.stderr)
	var shown struct {
		Steps []struct{ StepID, Status string }
	}
	require.NoError(t, json.Unmarshal([]byte(show.stdout), &shown))
	statuses := map[string]string{}
	for _, s := range shown.Steps {
		statuses[s.StepID] = s.Status
	}
	for _, step := range []string{"identify", "deactivate", "revoke_sessions", "impact", "rotate", "delete", "contain_derived"} {
		require.Contains(t, []string{"succeeded", "skipped"}, statuses[step], "step %s", step)
	}
	require.Equal(t, "succeeded", statuses["rotate"])

	res := e.stanch(nil, permissionsArgs(examplePlaybooks(t))...)
	require.Equal(t, 0, res.code, res.stderr)
	var doc policyDocument
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &doc))
	allowed := map[string]bool{}
	for _, st := range doc.Statement {
		for _, a := range st.Action {
			allowed[a] = true
		}
	}
	calls := e.sb.Calls()
	require.NotEmpty(t, calls)
	for _, c := range calls {
		require.True(t, allowed[c.Service+":"+c.Action], "%s:%s was called but the policy does not allow it", c.Service, c.Action)
	}
}

func TestPermissionsAddsAssumeRoleForResponseRoles(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	cfg := filepath.Join(e.dir, "stanch.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("aws:\n  response_roles:\n    arn: arn:aws:iam::{account}:role/stanch-responder\n    external_id: ext\n"), 0o600))
	res := e.stanch(nil, append(permissionsArgs(examplePlaybooks(t)), "--config", cfg)...)
	require.Equal(t, 0, res.code, res.stderr)
	var doc policyDocument
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &doc))
	require.Len(t, doc.Statement, 2)
	require.Equal(t, []string{"sts:AssumeRole"}, doc.Statement[1].Action)
	require.Equal(t, []any{"arn:aws:iam::*:role/stanch-responder"}, doc.Statement[1].Resource)
}

// runToEnd runs a playbook and approves every step that waits, as
// security-oncall, until the run ends; it returns the last result.
func (e *e2e) runToEnd(t *testing.T, playbook string, env ...string) result {
	t.Helper()
	res := e.stanch(env, "run", "--playbook", playbook, "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	for range 10 {
		if res.code != 3 {
			return res
		}
		idx := strings.Index(res.stdout, "stanch approve ")
		require.GreaterOrEqual(t, idx, 0, res.stdout)
		fields := strings.Fields(res.stdout[idx:])
		res = e.stanch(env, "approve", fields[2], fields[3], "--by", "security-oncall", "--database", e.db)
	}
	t.Fatalf("the run kept waiting:\n%s", res.stdout)
	return res
}
