package sandbox

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
)

func TestSlackTokenAuthTestAndRevoke(t *testing.T) {
	t.Parallel()
	sb, url := tokenSandbox(t)
	ctx := context.Background()
	api := slack.New(planted.SlackBot, slack.OptionAPIURL(url+"/slack/api/"))

	who, err := api.AuthTestContext(ctx)
	require.NoError(t, err)
	require.Equal(t, "deploy-bot", who.User)
	require.Equal(t, "T0ACME", who.TeamID)
	require.Equal(t, "U0DEPLOY", who.UserID)
	require.Equal(t, "B0DEPLOY", who.BotID)
	require.Equal(t, "chat:write,channels:read", who.Header.Get("X-OAuth-Scopes"))

	// A dry run (test=1) revokes nothing.
	res, body := doRequest(t, http.MethodPost, url+"/slack/api/auth.revoke", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer " + planted.SlackBot}, "test=1")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, map[string]any{"ok": true, "revoked": false}, body)
	require.True(t, sb.TokenActive(planted.SlackBot))

	rev, err := api.SendAuthRevokeContext(ctx, "")
	require.NoError(t, err)
	require.True(t, rev.Revoked)
	require.False(t, sb.TokenActive(planted.SlackBot))
	require.True(t, sb.TokenActive(planted.SlackUser))

	_, err = api.AuthTestContext(ctx)
	require.EqualError(t, err, "token_revoked")
	_, err = api.SendAuthRevokeContext(ctx, "")
	require.EqualError(t, err, "token_revoked")
	_, err = slack.New("xoxb-0000000000-unknown", slack.OptionAPIURL(url+"/slack/api/")).AuthTestContext(ctx)
	require.EqualError(t, err, "invalid_auth")

	revokes := tokenCalls(sb, "slack", "auth.revoke")
	require.Len(t, revokes, 3)
	require.Equal(t, []bool{false, true, false}, []bool{revokes[0].Effective, revokes[1].Effective, revokes[2].Effective})
	require.Equal(t, alert.Fingerprint(planted.SlackBot), revokes[1].Token)
	requireNoTokenInLog(t, sb, url)
}

func TestSlackTokenFaults(t *testing.T) {
	t.Parallel()
	sb, url := tokenSandbox(t)
	sb.SetFault("slack", Fault{ThrottleRate: 1})
	api := slack.New(planted.SlackUser, slack.OptionAPIURL(url+"/slack/api/"))
	_, err := api.SendAuthRevokeContext(context.Background(), "")
	var limited *slack.RateLimitedError
	require.ErrorAs(t, err, &limited)
	require.True(t, sb.TokenActive(planted.SlackUser))
	require.Equal(t, alert.Fingerprint(planted.SlackUser), tokenCalls(sb, "slack", "auth.revoke")[0].Token)
	requireNoTokenInLog(t, sb, url)
}

func vaultClient(t *testing.T, url, token string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = url + "/vault"
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	require.NoError(t, err)
	c.SetToken(token)
	return c
}

func requireVaultError(t *testing.T, err error, status int, msg string) {
	t.Helper()
	var re *vault.ResponseError
	require.ErrorAs(t, err, &re)
	require.Equal(t, status, re.StatusCode)
	require.Equal(t, []string{msg}, re.Errors)
}

func TestVaultTokenLookupAndRevokeSelf(t *testing.T) {
	t.Parallel()
	sb, url := tokenSandbox(t)
	ctx := context.Background()
	c := vaultClient(t, url, planted.VaultService)

	secret, err := c.Auth().Token().LookupSelfWithContext(ctx)
	require.NoError(t, err)
	require.Equal(t, "ci-accessor-0123456789ab", secret.Data["accessor"])
	require.Equal(t, "token-ci", secret.Data["display_name"])
	require.Equal(t, []any{"ci", "default"}, secret.Data["policies"])
	require.Equal(t, map[string]any{"team": "platform"}, secret.Data["meta"])
	require.Equal(t, "7d2e3a12-entity", secret.Data["entity_id"])
	require.Equal(t, false, secret.Data["orphan"])
	require.Equal(t, "service", secret.Data["type"])
	ttl, err := secret.TokenTTL()
	require.NoError(t, err)
	require.Greater(t, ttl, 24*time.Hour)
	policies, err := secret.TokenPolicies()
	require.NoError(t, err)
	require.Equal(t, []string{"ci", "default"}, policies)

	require.NoError(t, c.Auth().Token().RevokeSelfWithContext(ctx, ""))
	require.False(t, sb.TokenActive(planted.VaultService))
	_, err = c.Auth().Token().LookupSelfWithContext(ctx)
	requireVaultError(t, err, http.StatusForbidden, "permission denied")
	err = c.Auth().Token().RevokeSelfWithContext(ctx, "")
	requireVaultError(t, err, http.StatusForbidden, "permission denied")

	// Batch tokens cannot be revoked.
	err = vaultClient(t, url, planted.VaultBatch).Auth().Token().RevokeSelfWithContext(ctx, "")
	requireVaultError(t, err, http.StatusBadRequest, "batch tokens cannot be revoked")

	calls := tokenCalls(sb, "vault", "RevokeSelf")
	require.Len(t, calls, 3)
	require.Equal(t, http.StatusNoContent, calls[0].Status)
	require.True(t, calls[0].Effective)
	require.Equal(t, alert.Fingerprint(planted.VaultService), calls[0].Token)
	require.Equal(t, http.StatusForbidden, calls[1].Status)
	requireNoTokenInLog(t, sb, url)
}

func TestVaultTokenByAccessorWithAnOperatorToken(t *testing.T) {
	t.Parallel()
	sb, url := tokenSandbox(t)
	ctx := context.Background()
	operator := vaultClient(t, url, plantedVaultRoot)

	secret, err := operator.Auth().Token().LookupAccessorWithContext(ctx, "legacy-accessor-0123456789")
	require.NoError(t, err)
	require.Equal(t, "token-legacy", secret.Data["display_name"])
	require.Equal(t, "", secret.Data["id"], "a lookup by accessor does not give the token")

	// Only an operator (the root policy here) may act by accessor.
	_, err = vaultClient(t, url, planted.VaultService).Auth().Token().LookupAccessorWithContext(ctx, "legacy-accessor-0123456789")
	requireVaultError(t, err, http.StatusForbidden, "permission denied")
	err = vaultClient(t, url, planted.VaultService).Auth().Token().RevokeAccessorWithContext(ctx, "legacy-accessor-0123456789")
	requireVaultError(t, err, http.StatusForbidden, "permission denied")

	require.NoError(t, operator.Auth().Token().RevokeAccessorWithContext(ctx, "legacy-accessor-0123456789"))
	require.False(t, sb.TokenActive(planted.VaultLegacyService))
	_, err = vaultClient(t, url, planted.VaultLegacyService).Auth().Token().LookupSelfWithContext(ctx)
	requireVaultError(t, err, http.StatusForbidden, "permission denied")
	// The accessor went with the token.
	err = operator.Auth().Token().RevokeAccessorWithContext(ctx, "legacy-accessor-0123456789")
	requireVaultError(t, err, http.StatusBadRequest, "invalid accessor")

	calls := tokenCalls(sb, "vault", "RevokeAccessor")
	require.Len(t, calls, 3)
	require.Equal(t, map[string]string{"accessor": "legacy-accessor-0123456789", "caller": alert.Fingerprint(plantedVaultRoot)}, calls[1].Params)
	require.Equal(t, alert.Fingerprint(planted.VaultLegacyService), calls[1].Token)
	require.True(t, calls[1].Effective)
	requireNoTokenInLog(t, sb, url)
}

func TestVaultTokenFaults(t *testing.T) {
	t.Parallel()
	sb, url := tokenSandbox(t)
	ctx := context.Background()
	c := vaultClient(t, url, planted.VaultService)
	sb.SetFault("vault", Fault{ErrorRate: 1})
	err := c.Auth().Token().RevokeSelfWithContext(ctx, "")
	requireVaultError(t, err, http.StatusServiceUnavailable, "injected by the sandbox: service unavailable")
	sb.SetFault("vault", Fault{ThrottleRate: 1})
	_, err = c.Auth().Token().LookupSelfWithContext(ctx)
	var re *vault.ResponseError
	require.ErrorAs(t, err, &re)
	require.Equal(t, http.StatusTooManyRequests, re.StatusCode)
	sb.SetFault("vault", Fault{Latency: 30 * time.Millisecond})
	start := time.Now()
	_, err = c.Auth().Token().LookupSelfWithContext(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	require.True(t, sb.TokenActive(planted.VaultService))
	requireNoTokenInLog(t, sb, url)
}

func TestGitLabTokenSelf(t *testing.T) {
	t.Parallel()
	sb, url := tokenSandbox(t)
	self := url + "/gitlab/api/v4/personal_access_tokens/self"

	res, body := doRequest(t, http.MethodGet, self, map[string]string{"PRIVATE-TOKEN": planted.GitLabPAT}, "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, float64(42), body["id"])
	require.Equal(t, "ci", body["name"])
	require.Equal(t, []any{"api", "read_repository"}, body["scopes"])
	require.Equal(t, float64(7), body["user_id"])
	require.Equal(t, true, body["active"])
	require.Equal(t, false, body["revoked"])
	require.Equal(t, "2099-12-31", body["expires_at"])

	res, _ = doRequest(t, http.MethodDelete, self, map[string]string{"Authorization": "Bearer " + planted.GitLabPAT}, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.False(t, sb.TokenActive(planted.GitLabPAT))
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		res, body = doRequest(t, method, self, map[string]string{"PRIVATE-TOKEN": planted.GitLabPAT}, "")
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		require.Equal(t, map[string]any{"message": "401 Unauthorized"}, body)
	}

	// A project access token (its bot user's) identifies and revokes itself the same way.
	res, body = doRequest(t, http.MethodGet, self, map[string]string{"PRIVATE-TOKEN": plantedGitLabProject}, "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, []any{"read_api"}, body["scopes"])
	require.Nil(t, body["expires_at"])
	res, _ = doRequest(t, http.MethodDelete, self, map[string]string{"PRIVATE-TOKEN": plantedGitLabProject}, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.False(t, sb.TokenActive(plantedGitLabProject))

	sb.SetFault("gitlab", Fault{ThrottleRate: 1})
	res, _ = doRequest(t, http.MethodGet, self, map[string]string{"PRIVATE-TOKEN": plantedGitLabProject}, "")
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.Equal(t, "1", res.Header.Get("Retry-After"))

	calls := tokenCalls(sb, "gitlab", "RevokePersonalAccessTokenSelf")
	require.Len(t, calls, 3)
	require.Equal(t, []int{204, 401, 204}, []int{calls[0].Status, calls[1].Status, calls[2].Status})
	require.Equal(t, "project", calls[2].Params["kind"])
	requireNoTokenInLog(t, sb, url)
}

func TestNPMTokens(t *testing.T) {
	t.Parallel()
	sb, base := tokenSandbox(t)
	registry := base + "/npm/"
	auth := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	res, body := doRequest(t, http.MethodGet, registry+"-/whoami", auth(planted.NPM), "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, map[string]any{"username": "alice"}, body)

	res, body = doRequest(t, http.MethodGet, registry+"-/npm/v1/tokens?perPage=1", auth(planted.NPM), "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, float64(2), body["total"])
	objects := body["objects"].([]any)
	require.Len(t, objects, 1)
	first := objects[0].(map[string]any)
	require.Equal(t, NPMTokenKey(planted.NPM), first["key"])
	require.Equal(t, planted.NPM[:6], first["token"])
	require.Equal(t, []any{"10.0.0.0/8"}, first["cidr_whitelist"])
	require.Contains(t, body["urls"].(map[string]any)["next"], "page=1")

	// Deleted by key, with the other token of the same user.
	res, _ = doRequest(t, http.MethodDelete, registry+"-/npm/v1/tokens/token/"+NPMTokenKey(planted.NPM), auth(plantedNPMSecond), "")
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.False(t, sb.TokenActive(planted.NPM))
	res, _ = doRequest(t, http.MethodGet, registry+"-/whoami", auth(planted.NPM), "")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	res, body = doRequest(t, http.MethodGet, registry+"-/npm/v1/tokens", auth(plantedNPMSecond), "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, float64(1), body["total"])

	// Deleted by the raw token, as the npm CLI sends a full token; the
	// path holds the token, the call log does not.
	res, _ = doRequest(t, http.MethodDelete, registry+"-/npm/v1/tokens/token/"+url.PathEscape(plantedNPMSecond), auth(plantedNPMSecond), "")
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.False(t, sb.TokenActive(plantedNPMSecond))
	res, _ = doRequest(t, http.MethodDelete, registry+"-/npm/v1/tokens/token/"+url.PathEscape(plantedNPMSecond), auth(plantedNPMSecond), "")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)

	calls := tokenCalls(sb, "npm", "DeleteToken")
	require.Len(t, calls, 3)
	require.Equal(t, map[string]string{"target": alert.Fingerprint(planted.NPM), "by": "key"}, calls[0].Params)
	require.Equal(t, map[string]string{"target": alert.Fingerprint(plantedNPMSecond), "by": "token"}, calls[1].Params)
	require.Equal(t, []bool{true, true, false}, []bool{calls[0].Effective, calls[1].Effective, calls[2].Effective})

	sb.SetFault("npm", Fault{ErrorRate: 1})
	res, _ = doRequest(t, http.MethodGet, registry+"-/whoami", auth(planted.NPM), "")
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	requireNoTokenInLog(t, sb, base)
}
