package gitlab

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

// Leaked GitLab tokens made of planted secrets, so that
// planted.RequireNone finds any trace of them.
var (
	personal = "glpat-" + planted.InPath
	project  = "glpat-" + planted.InTitle
	unseen   = "glpat-" + planted.AfterKeyID
)

const seedYAML = `
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
tokens:
  - {provider: gitlab, value: ` + "glpat-" + planted.InPath + `, owner: alice, scopes: [api, read_repository], id: 4242, name: laptop}
  - {provider: gitlab, value: ` + "glpat-" + planted.InTitle + `, owner: project_7_bot, kind: project, project_id: 7, scopes: [read_api]}
  - {provider: gitlab, value: ` + "glpat-" + planted.AfterKeyID + `, owner: bob}
`

func setup(t *testing.T) (*testkit.Fixture, actions.Action, actions.Env, *bytes.Buffer) {
	t.Helper()
	sb, env, logs := testkit.SandboxEnv(t, seedYAML, "run-gitlab")
	return sb, revokeToken(Options{BaseURL: sb.URL + "/gitlab/api/v4"}), env, logs
}

func TestRevokeGitLabTokenPlanDoAndAgain(t *testing.T) {
	t.Parallel()
	sb, act, env, logs := setup(t)
	with := map[string]any{"credential": leaked.Process.Remember(personal)}

	plan, err := testkit.PlanAction(t, act, env, with)
	require.NoError(t, err)
	require.Len(t, plan.Calls, 3)
	require.Equal(t, "DELETE /personal_access_tokens/self", plan.Calls[1].Operation)
	require.True(t, sb.TokenActive(personal), "a plan revokes nothing")

	res, err := testkit.RunAction(t, act, env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	require.Equal(t, int64(4242), res.Outputs["token_id"])
	require.Equal(t, []string{"api", "read_repository"}, res.Outputs["scopes"])
	require.Contains(t, res.Outputs["impact"], "no usage history")
	require.False(t, sb.TokenActive(personal))

	again, err := testkit.RunAction(t, act, env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome)
	planted.RequireNone(t, "plans, results, logs and the call log", plan, res, again, logs.String(), sb.Calls())
}

func TestRevokeGitLabProjectToken(t *testing.T) {
	t.Parallel()
	sb, act, env, _ := setup(t)
	res, err := testkit.RunAction(t, act, env, map[string]any{"credential": leaked.Process.Remember(project)})
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	require.False(t, sb.TokenActive(project))
}

func TestRevokeGitLabTokenUnseen(t *testing.T) {
	t.Parallel()
	sb, act, env, _ := setup(t)
	_, err := testkit.RunAction(t, act, env, map[string]any{"credential": alert.Fingerprint(unseen)})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Contains(t, err.Error(), "stanch never stores token values")
	require.True(t, sb.TokenActive(unseen))
	planted.RequireNone(t, "errors", err)
}
