package slack

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

// Leaked Slack tokens made of planted secrets, so that planted.RequireNone
// finds any trace of them.
var (
	leakedBot  = "xoxb-" + planted.InPath
	leakedUser = "xoxp-" + planted.InTitle
	unseenBot  = "xoxb-" + planted.AfterKeyID
)

const tokenSeedYAML = `
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
tokens:
  - {provider: slack, value: ` + "xoxb-" + planted.InPath + `, owner: deploy-bot, scopes: ["chat:write", "channels:read"]}
  - {provider: slack, value: ` + "xoxp-" + planted.InTitle + `, owner: alice, active: false}
  - {provider: slack, value: ` + "xoxb-" + planted.AfterKeyID + `, owner: ci-bot}
`

func setupRevoke(t *testing.T) (*testkit.Fixture, actions.Action, actions.Env, *bytes.Buffer) {
	t.Helper()
	sb, env, logs := testkit.SandboxEnv(t, tokenSeedYAML, "run-slack-tok")
	return sb, revokeToken(TokenOptions{APIURL: sb.SlackAPI()}), env, logs
}

func TestRevokeSlackTokenPlanDoAndAgain(t *testing.T) {
	t.Parallel()
	sb, act, env, logs := setupRevoke(t)
	with := map[string]any{"credential": leaked.Process.Remember(leakedBot)}

	plan, err := testkit.PlanAction(t, act, env, with)
	require.NoError(t, err)
	require.Len(t, plan.Calls, 3)
	require.Equal(t, "auth.revoke", plan.Calls[1].Operation)
	require.True(t, sb.TokenActive(leakedBot), "a plan revokes nothing")

	res, err := testkit.RunAction(t, act, env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	require.Equal(t, "deploy-bot", res.Outputs["user"])
	require.NotEmpty(t, res.Outputs["bot_id"])
	require.Equal(t, "chat:write,channels:read", res.Outputs["scopes"])
	require.Contains(t, res.Outputs["impact"], "no usage history")
	require.False(t, sb.TokenActive(leakedBot))

	again, err := testkit.RunAction(t, act, env, with)
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome)
	revokes := 0
	for _, c := range sb.Calls() {
		if c.Action == "auth.revoke" {
			revokes++
		}
	}
	require.Equal(t, 1, revokes, "a refused token is not revoked again")
	planted.RequireNone(t, "plans, results, logs and the call log", plan, res, again, logs.String(), sb.Calls())
}

func TestRevokeSlackTokenRevokedBeforeIsAlready(t *testing.T) {
	t.Parallel()
	_, act, env, _ := setupRevoke(t)
	res, err := testkit.RunAction(t, act, env, map[string]any{"credential": leaked.Process.Remember(leakedUser)})
	require.NoError(t, err)
	require.Equal(t, actions.Already, res.Outcome)
	require.Equal(t, true, res.Outputs["revoked"])
}

func TestRevokeSlackTokenUnseenSaysHowToRevokeByHand(t *testing.T) {
	t.Parallel()
	sb, act, env, _ := setupRevoke(t)
	_, err := testkit.RunAction(t, act, env, map[string]any{"credential": alert.Fingerprint(unseenBot)})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Contains(t, err.Error(), "stanch never stores token values")
	require.Contains(t, err.Error(), "https://api.slack.com/apps")
	require.True(t, sb.TokenActive(unseenBot))
	planted.RequireNone(t, "errors", err)
}
