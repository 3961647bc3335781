package npm

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/leaked"
	"github.com/stanchhq/stanch/sandbox"
)

// Leaked npm tokens made of planted secrets, so that planted.RequireNone
// finds any trace of them.
var (
	publishToken = "npm_" + planted.InPath[:36]
	unseen       = "npm_" + planted.InTitle[:36]
)

func seedYAML() string {
	var b strings.Builder
	b.WriteString(`
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
tokens:
  - {provider: npm, value: ` + unseen + `, owner: bob}
`)
	// alice has many tokens: the leaked one is found past the first page.
	for i := range 130 {
		fmt.Fprintf(&b, "  - {provider: npm, value: npm_Other%031d, owner: alice, readonly: true}\n", i)
	}
	b.WriteString("  - {provider: npm, value: " + publishToken + ", owner: alice, cidr_whitelist: [192.0.2.0/24]}\n")
	return b.String()
}

func setup(t *testing.T) (*testkit.Fixture, actions.Action, actions.Env, *bytes.Buffer) {
	t.Helper()
	sb, env, logs := testkit.SandboxEnv(t, seedYAML(), "run-npm")
	return sb, revokeToken(Options{RegistryURL: sb.URL + "/npm/"}), env, logs
}

func TestRevokeNPMTokenPlanDoAndAgain(t *testing.T) {
	t.Parallel()
	sb, act, env, logs := setup(t)
	with := map[string]any{"credential": leaked.Process.Remember(publishToken)}

	plan, err := testkit.PlanAction(t, act, env, with)
	require.NoError(t, err)
	require.Len(t, plan.Calls, 4)
	require.True(t, plan.Calls[2].Mutates)
	require.Equal(t, "alice", plan.Outputs["username"])
	require.True(t, sb.TokenActive(publishToken), "a plan revokes nothing")

	res, err := testkit.RunAction(t, act, env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	require.Equal(t, "alice", res.Outputs["username"])
	require.Equal(t, []string{"192.0.2.0/24"}, res.Outputs["cidr_whitelist"])
	require.Contains(t, res.Outputs["impact"], "no usage history")
	require.False(t, sb.TokenActive(publishToken))
	lists := 0
	for _, c := range sb.Calls() {
		if c.Service == "npm" && strings.Contains(c.Action, "List") {
			lists++
		}
	}
	require.GreaterOrEqual(t, lists, 2, "the token is found past the first page: %v", sb.Calls())

	again, err := testkit.RunAction(t, act, env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome)
	planted.RequireNone(t, "plans, results, logs and the call log", plan, res, again, logs.String(), sb.Calls())
}

func TestRevokeNPMTokenUnseen(t *testing.T) {
	t.Parallel()
	sb, act, env, _ := setup(t)
	_, err := testkit.RunAction(t, act, env, map[string]any{"credential": alert.Fingerprint(unseen)})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Contains(t, err.Error(), "stanch never stores token values")
	require.True(t, sb.TokenActive(unseen))
	planted.RequireNone(t, "errors", err)
}
