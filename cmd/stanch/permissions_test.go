package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
		Steps []struct {
			StepID string `json:"step_id"`
			Status string `json:"status"`
		}
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
	calls := e.sb.Calls()
	require.NotEmpty(t, calls)
	var secretCalls int
	for _, c := range calls {
		resource := "*"
		if c.Service == "secretsmanager" {
			// As IAM evaluates it: the secret's ARN, with the six random
			// characters Secrets Manager appends to its name.
			resource = "arn:aws:secretsmanager:" + c.Region + ":" + c.Account + ":secret:" + c.Params["SecretId"] + "-AbCdEf"
			secretCalls++
		}
		require.True(t, policyAllows(doc, c.Service+":"+c.Action, resource), "%s:%s on %s was called but the policy does not allow it", c.Service, c.Action, resource)
	}
	require.Positive(t, secretCalls, "the rotation's calls were evaluated with their resources")
	require.False(t, policyAllows(doc, "secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:"+account+":secret:prod/database-AbCdEf"),
		"the responder reads no secret outside the playbooks' prefix")
}

// policyAllows evaluates Allow statements as IAM does for one action on
// one resource: action names and resource ARNs match with * and ?.
func policyAllows(doc policyDocument, action, resource string) bool {
	for _, st := range doc.Statement {
		if st.Effect != "Allow" || !slices.ContainsFunc(st.Action, func(a string) bool { return iamMatch(a, action) }) {
			continue
		}
		switch r := st.Resource.(type) {
		case string:
			if iamMatch(r, resource) {
				return true
			}
		case []any:
			for _, one := range r {
				if s, ok := one.(string); ok && iamMatch(s, resource) {
					return true
				}
			}
		}
	}
	return false
}

func iamMatch(pattern, s string) bool {
	re := regexp.QuoteMeta(pattern)
	re = strings.ReplaceAll(strings.ReplaceAll(re, `\*`, ".*"), `\?`, ".")
	return regexp.MustCompile("^(?i:" + re + ")$").MatchString(s)
}

// A secret that depends on the alert cannot narrow the grant: it stays
// broad, and stanch says why.
func TestPermissionsSayWhatStaysBroad(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	pb := e.writeFile("by-repo.yaml", `name: by-repo
steps:
  - id: identify
    action: aws.identify_key
    with: {access_key_id: "${{ alert.credential.id }}"}
  - id: rotate
    action: aws.rotate_key
    with:
      secret_id: ${{ alert.location.repo }}
`)
	res := e.stanch(nil, "permissions", "--playbook", pb)
	require.Equal(t, 0, res.code, res.stderr)
	var doc policyDocument
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &doc))
	require.True(t, policyAllows(doc, "secretsmanager:PutSecretValue", "arn:aws:secretsmanager:eu-west-1:1:secret:anything-AbCdEf"))
	require.Contains(t, res.stderr, "secretsmanager:PutSecretValue: step rotate of by-repo: secret_id is known only at run time")

	globbed := e.stanch(nil, "permissions", "--playbook", e.example("playbooks/*.yaml"))
	require.Equal(t, 0, globbed.code, globbed.stderr)
	want, err := os.ReadFile("../../examples/iam/responder-policy.json")
	require.NoError(t, err)
	require.JSONEq(t, string(want), globbed.stdout, "--playbook takes a glob, as its help says")
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
	require.Len(t, doc.Statement, 3)
	last := doc.Statement[len(doc.Statement)-1]
	require.Equal(t, []string{"sts:AssumeRole"}, last.Action)
	require.Equal(t, []any{"arn:aws:iam::*:role/stanch-responder"}, last.Resource)
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
