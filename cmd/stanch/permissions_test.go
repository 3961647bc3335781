package main

import (
	"encoding/json"
	"os"
	"path/filepath"
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
	run := e.runExample()
	require.Equal(t, 0, run.code, run.stdout+run.stderr)

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
