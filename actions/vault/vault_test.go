package vault

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/leaked"
	"github.com/stanchhq/stanch/sandbox"
)

// Leaked Vault tokens made of planted secrets, so that planted.RequireNone
// finds any trace of them.
var (
	leakedToken1 = "hvs." + planted.InPath
	leakedToken2 = "hvs." + planted.InTitle
	unseenToken  = "hvs." + planted.AfterKeyID
	batchToken   = "hvb." + planted.InURL[:38]
	operator     = "hvs.operatorTokenForStanchTests000000"
)

const seedYAML = `
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
tokens:
  - {provider: vault, value: ` + "hvs." + planted.InPath + `, owner: github-octocat, scopes: [default, payments-read], accessor: acc1payments0000000000000, expires: 2099-01-01T00:00:00Z}
  - {provider: vault, value: ` + "hvs." + planted.InTitle + `, owner: approle-ci, scopes: [deploy], orphan: true}
  - {provider: vault, value: ` + "hvs." + planted.AfterKeyID + `, owner: ci}
  - {provider: vault, value: ` + "hvb." + "kWZPxsVXfFwWvuhjJHvEqkRmVcudCqmhKvmIOP" + `, owner: batch-ci}
  - {provider: vault, value: hvs.operatorTokenForStanchTests000000, owner: stanch-operator, scopes: [root]}
`

func setup(t *testing.T, opts Options) (*testkit.Fixture, actions.Action, actions.Env, *bytes.Buffer) {
	t.Helper()
	sb, env, logs := testkit.SandboxEnv(t, seedYAML, "run-vault")
	opts.Address = sb.URL + "/vault"
	return sb, revokeToken(opts), env, logs
}

func TestRevokeVaultTokenPlanDoAndAgain(t *testing.T) {
	t.Parallel()
	sb, act, env, logs := setup(t, Options{})
	with := map[string]any{"credential": leaked.Process.Remember(leakedToken1)}

	plan, err := testkit.PlanAction(t, act, env, with)
	require.NoError(t, err)
	require.Len(t, plan.Calls, 3)
	require.Equal(t, "PUT /v1/auth/token/revoke-self", plan.Calls[1].Operation)
	require.True(t, sb.TokenActive(leakedToken1), "a plan revokes nothing")

	res, err := testkit.RunAction(t, act, env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	require.Equal(t, []string{"default", "payments-read"}, res.Outputs["policies"])
	require.Equal(t, "acc1payments0000000000000", res.Outputs["accessor"])
	require.Equal(t, "service", res.Outputs["token_type"])
	require.Positive(t, res.Outputs["ttl_seconds"])
	require.Contains(t, res.Outputs["impact"], "payments-read")
	require.False(t, sb.TokenActive(leakedToken1))

	again, err := testkit.RunAction(t, act, env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome)
	planted.RequireNone(t, "plans, results, logs and the call log", plan, res, again, logs.String(), sb.Calls())
}

func TestRevokeVaultTokenByAccessorWithTheOperatorToken(t *testing.T) {
	t.Parallel()
	sb, act, env, _ := setup(t, Options{OperatorToken: func() (string, error) { return operator, nil }})
	with := map[string]any{"credential": leaked.Process.Remember(leakedToken2), "method": "accessor"}
	res, err := testkit.RunAction(t, act, env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	require.Equal(t, true, res.Outputs["orphan"])
	require.False(t, sb.TokenActive(leakedToken2))
	views := sb.Tokens()
	for _, v := range views {
		if v.Fingerprint == alert.Fingerprint(leakedToken2) {
			require.Equal(t, "RevokeAccessor", v.RevokedBy)
		}
	}

	_, _, env2, _ := setup(t, Options{})
	_, err = testkit.RunAction(t, revokeToken(Options{}), env2, with)
	require.ErrorContains(t, err, "needs an operator token")
}

func TestRevokeVaultTokenRefusals(t *testing.T) {
	t.Parallel()
	sb, act, env, _ := setup(t, Options{})
	_, err := testkit.RunAction(t, act, env, map[string]any{"credential": alert.Fingerprint(unseenToken)})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Contains(t, err.Error(), "stanch never stores token values")
	require.True(t, sb.TokenActive(unseenToken))

	_, berr := testkit.RunAction(t, act, env, map[string]any{"credential": leaked.Process.Remember(batchToken)})
	require.ErrorContains(t, berr, "batch token")
	require.Equal(t, actions.KindPermanent, actions.KindOf(berr))
	planted.RequireNone(t, "errors", err, berr)
}
