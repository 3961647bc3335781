package sandbox

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
)

func githubClientFor(t *testing.T, url, token string) *github.Client {
	t.Helper()
	c := github.NewClient(nil)
	if token != "" {
		c = c.WithAuthToken(token)
	}
	c, err := c.WithEnterpriseURLs(url+"/api/v3/", url+"/api/v3/")
	require.NoError(t, err)
	return c
}

// revokeGitHub sends POST /credentials/revoke as go-github v60 can (it has
// no method for it before v80); 202 comes back as *github.AcceptedError.
func revokeGitHub(t *testing.T, c *github.Client, creds ...string) (*github.Response, error) {
	t.Helper()
	req, err := c.NewRequest(http.MethodPost, "credentials/revoke", map[string][]string{"credentials": creds})
	require.NoError(t, err)
	return c.Do(context.Background(), req, nil)
}

func TestGitHubTokenIdentifyRevokeVerify(t *testing.T) {
	t.Parallel()
	sb, url := tokenSandbox(t)
	ctx := context.Background()

	user, res, err := githubClientFor(t, url, planted.GitHubPAT).Users.Get(ctx, "")
	require.NoError(t, err)
	require.Equal(t, "octocat", user.GetLogin())
	require.Equal(t, "repo, read:org", res.Header.Get("X-OAuth-Scopes"))
	require.Equal(t, 2099, res.TokenExpiration.UTC().Year())

	// A fine-grained token has permissions, not scopes: no X-OAuth-Scopes.
	user, res, err = githubClientFor(t, url, planted.GitHubFineGrainedPAT).Users.Get(ctx, "")
	require.NoError(t, err)
	require.Equal(t, "octocat", user.GetLogin())
	require.NotContains(t, res.Header, "X-Oauth-Scopes")

	// The endpoint is for anonymous callers only.
	_, err = revokeGitHub(t, githubClientFor(t, url, "ghp_seeded"), planted.GitHubPAT)
	var refused *github.ErrorResponse
	require.ErrorAs(t, err, &refused)
	require.Equal(t, http.StatusForbidden, refused.Response.StatusCode)
	require.True(t, sb.TokenActive(planted.GitHubPAT))

	anon := githubClientFor(t, url, "")
	res, err = revokeGitHub(t, anon, planted.GitHubPAT, planted.GitHubFineGrainedPAT, "ghp_"+strings.Repeat("0", 36))
	var accepted *github.AcceptedError
	require.ErrorAs(t, err, &accepted)
	require.Equal(t, http.StatusAccepted, res.StatusCode)
	require.Equal(t, "60", res.Header.Get("X-RateLimit-Limit"))
	require.Equal(t, "59", res.Header.Get("X-RateLimit-Remaining"))
	require.Equal(t, "core", res.Header.Get("X-RateLimit-Resource"))
	require.False(t, sb.TokenActive(planted.GitHubPAT))
	require.False(t, sb.TokenActive(planted.GitHubFineGrainedPAT))
	require.True(t, sb.TokenActive(plantedGitHubOther))

	// Revoked: GET /user refuses the token as GitHub does.
	_, _, err = githubClientFor(t, url, planted.GitHubPAT).Users.Get(ctx, "")
	require.ErrorAs(t, err, &refused)
	require.Equal(t, http.StatusUnauthorized, refused.Response.StatusCode)
	require.Equal(t, "Bad credentials", refused.Message)

	// Submitting a revoked token again is accepted and changes nothing.
	_, err = revokeGitHub(t, anon, planted.GitHubPAT)
	require.ErrorAs(t, err, &accepted)
	require.Equal(t, []int{3, 1}, sb.GitHubRevokeRequests())

	calls := tokenCalls(sb, "github", "RevokeCredentials")
	require.Len(t, calls, 3)
	require.Equal(t, http.StatusForbidden, calls[0].Status)
	require.Equal(t, map[string]string{"path": "/api/v3/credentials/revoke", "credentials": "3", "revoked": "2"}, calls[1].Params)
	require.True(t, calls[1].Effective)
	require.Equal(t, "1", calls[2].Params["credentials"])
	require.False(t, calls[2].Effective)
	users := tokenCalls(sb, "github", "GetAuthenticatedUser")
	require.Len(t, users, 3)
	require.Equal(t, alert.Fingerprint(planted.GitHubPAT), users[0].Token)
	require.Equal(t, http.StatusUnauthorized, users[2].Status)
	requireNoTokenInLog(t, sb, url)
}

func TestGitHubRevokeValidatesTheBatch(t *testing.T) {
	t.Parallel()
	sb, url := tokenSandbox(t)
	anon := githubClientFor(t, url, "")
	var invalid *github.ErrorResponse
	_, err := revokeGitHub(t, anon)
	require.ErrorAs(t, err, &invalid)
	require.Equal(t, http.StatusUnprocessableEntity, invalid.Response.StatusCode)

	// 1,001 credentials are one too many; 1,000 are fine.
	many := make([]string, 1001)
	for i := range many {
		many[i] = "ghp_" + strings.Repeat("x", 30) + strconv.Itoa(100000+i)
	}
	_, err = revokeGitHub(t, anon, many...)
	require.ErrorAs(t, err, &invalid)
	require.Equal(t, http.StatusUnprocessableEntity, invalid.Response.StatusCode)
	require.Equal(t, "Validation Failed", invalid.Message)
	many[999] = planted.GitHubPAT
	_, err = revokeGitHub(t, anon, many[:1000]...)
	var accepted *github.AcceptedError
	require.ErrorAs(t, err, &accepted)
	require.False(t, sb.TokenActive(planted.GitHubPAT))
	require.Equal(t, []int{1000}, sb.GitHubRevokeRequests())
	requireNoTokenInLog(t, sb, url)
}

func TestGitHubRevokeRateLimitPerClient(t *testing.T) {
	t.Parallel()
	seed := tokenSeed(t)
	seed.TokenLimits = SeedTokenLimits{GitHubRevokePerHour: 2, GitHubRevokeWindow: "1h"}
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	srv := newTestServer(t, sb)
	anon := githubClientFor(t, srv, "")
	var accepted *github.AcceptedError
	for range 2 {
		_, err := revokeGitHub(t, anon, plantedGitHubOther)
		require.ErrorAs(t, err, &accepted)
	}
	// The budget is spent: GitHub's primary rate limit answer, 403 with
	// X-RateLimit-Remaining: 0, which go-github reads as a RateLimitError.
	res, body := doRequest(t, http.MethodPost, srv+"/api/v3/credentials/revoke", nil, `{"credentials":["`+planted.GitHubPAT+`"]}`)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	require.Equal(t, "0", res.Header.Get("X-RateLimit-Remaining"))
	require.Equal(t, "2", res.Header.Get("X-RateLimit-Used"))
	reset, err := strconv.ParseInt(res.Header.Get("X-RateLimit-Reset"), 10, 64)
	require.NoError(t, err)
	require.InDelta(t, time.Now().Add(time.Hour).Unix(), reset, 5)
	require.Contains(t, body["message"], "API rate limit exceeded for 127.0.0.1.")
	require.True(t, sb.TokenActive(planted.GitHubPAT), "a refused request revokes nothing")
	_, err = revokeGitHub(t, githubClientFor(t, srv, ""), planted.GitHubPAT)
	var limited *github.RateLimitError
	require.ErrorAs(t, err, &limited)
	require.Equal(t, 0, limited.Rate.Remaining)

	// A shorter window (the knob tests use) opens a new budget.
	sb.SetGitHubRevokeLimit(1, 50*time.Millisecond)
	_, err = revokeGitHub(t, githubClientFor(t, srv, ""), planted.GitHubPAT)
	require.ErrorAs(t, err, &accepted)
	res, _ = doRequest(t, http.MethodPost, srv+"/api/v3/credentials/revoke", nil, `{"credentials":["`+planted.GitHubPAT+`"]}`)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	time.Sleep(60 * time.Millisecond)
	res, _ = doRequest(t, http.MethodPost, srv+"/api/v3/credentials/revoke", nil, `{"credentials":["`+planted.GitHubPAT+`"]}`)
	require.Equal(t, http.StatusAccepted, res.StatusCode)
	require.False(t, sb.TokenActive(planted.GitHubPAT))
	require.Equal(t, []int{1, 1, 1, 1}, sb.GitHubRevokeRequests())
	limitedCalls := 0
	for _, c := range tokenCalls(sb, "github", "RevokeCredentials") {
		if c.Params["rate_limited"] == "true" {
			limitedCalls++
		}
	}
	require.Equal(t, 3, limitedCalls)
	requireNoTokenInLog(t, sb, srv)
}

func TestGitHubRevokeFaults(t *testing.T) {
	t.Parallel()
	sb, url := tokenSandbox(t)
	sb.SetFault("github", Fault{ErrorRate: 1})
	res, _ := doRequest(t, http.MethodPost, url+"/api/v3/credentials/revoke", nil, `{"credentials":["`+planted.GitHubPAT+`"]}`)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	sb.SetFault("github", Fault{ThrottleRate: 1})
	res, _ = doRequest(t, http.MethodGet, url+"/api/v3/user", map[string]string{"Authorization": "token " + planted.GitHubPAT}, "")
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	sb.SetFault("github", Fault{})
	require.True(t, sb.TokenActive(planted.GitHubPAT))
	require.Empty(t, sb.GitHubRevokeRequests())
	requireNoTokenInLog(t, sb, url)
}

func TestGitHubAuditLogByHashedToken(t *testing.T) {
	t.Parallel()
	sb, url := tokenSandbox(t)
	ctx := context.Background()
	org := githubClientFor(t, url, "ghp_seeded")
	hash := GitHubHashedToken(planted.GitHubPAT)
	require.Len(t, hash, 44)

	var actions []string
	opts := &github.GetAuditLogOptions{Phrase: github.String(`hashed_token:"` + hash + `"`), Include: github.String("all"), ListCursorOptions: github.ListCursorOptions{PerPage: 2}}
	pages := 0
	for {
		entries, res, err := org.Organizations.GetAuditLog(ctx, "acme", opts)
		require.NoError(t, err)
		pages++
		for _, e := range entries {
			actions = append(actions, e.GetAction())
			require.Equal(t, hash, e.GetHashedToken())
			require.Equal(t, "octocat", e.GetActor())
			require.Equal(t, "repo,read:org", e.GetTokenScopes())
			require.Equal(t, "Personal access token (classic)", e.AdditionalFields["programmatic_access_type"])
		}
		if res.After == "" {
			break
		}
		opts.After = res.After
	}
	require.Equal(t, 3, pages)
	require.Equal(t, []string{"org.update_member", "repo.update", "secret_scanning_alert.resolve", "repo.download_zip", "git.clone"}, actions)

	// Without include, web events only; the hash unpadded finds the same; an
	// action: term narrows it.
	entries, _, err := org.Organizations.GetAuditLog(ctx, "acme", &github.GetAuditLogOptions{Phrase: github.String(`hashed_token:"` + strings.TrimRight(hash, "=") + `" action:org.update_member`)})
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "mallory", entries[0].GetUser())
	require.Equal(t, "admin", entries[0].AdditionalFields["permission"])
	entries, _, err = org.Organizations.GetAuditLog(ctx, "acme", &github.GetAuditLogOptions{Phrase: github.String(`hashed_token:"` + hash + `"`), Order: github.String("asc")})
	require.NoError(t, err)
	require.Len(t, entries, 4)
	require.Equal(t, "repo.download_zip", entries[0].GetAction())
	require.True(t, entries[0].CreatedAt.Before(entries[3].CreatedAt.Time))

	// Another org, another token, or no token: nothing.
	for _, phrase := range []string{`hashed_token:"` + GitHubHashedToken(plantedGitHubOther) + `"`, "action:repo.update"} {
		entries, _, err = org.Organizations.GetAuditLog(ctx, "acme", &github.GetAuditLogOptions{Phrase: github.String(phrase)})
		require.NoError(t, err)
		require.Empty(t, entries)
	}
	entries, _, err = org.Organizations.GetAuditLog(ctx, "other", &github.GetAuditLogOptions{Phrase: github.String(`hashed_token:"` + hash + `"`)})
	require.NoError(t, err)
	require.Empty(t, entries)

	// The audit log needs an org owner's token; the leaked one is not.
	_, _, err = githubClientFor(t, url, "ghp_wrong").Organizations.GetAuditLog(ctx, "acme", opts)
	var refused *github.ErrorResponse
	require.ErrorAs(t, err, &refused)
	require.Equal(t, http.StatusUnauthorized, refused.Response.StatusCode)

	calls := tokenCalls(sb, "github", "GetAuditLog")
	require.Len(t, calls, 9)
	require.Equal(t, "acme", calls[0].Params["org"])
	require.Equal(t, `hashed_token:"`+hash+`"`, calls[0].Params["phrase"])
	requireNoTokenInLog(t, sb, url)
}

func TestGitHubAuditLogLinkHeader(t *testing.T) {
	t.Parallel()
	_, url := tokenSandbox(t)
	q := url + "/api/v3/orgs/acme/audit-log?include=all&per_page=2&phrase=" + urlQueryEscape(`hashed_token:"`+GitHubHashedToken(planted.GitHubPAT)+`"`)
	res, _ := doRequest(t, http.MethodGet, q, map[string]string{"Authorization": "Bearer ghp_seeded"}, "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	link := res.Header.Get("Link")
	require.Contains(t, link, `rel="next"`)
	require.Contains(t, link, "after=")
	require.NotContains(t, link, `rel="prev"`)
	next := strings.TrimPrefix(strings.Split(link, ">;")[0], "<")
	res, _ = doRequest(t, http.MethodGet, next, map[string]string{"Authorization": "Bearer ghp_seeded"}, "")
	require.Contains(t, res.Header.Get("Link"), `rel="prev"`)
	require.Contains(t, res.Header.Get("Link"), "before=")
	res, _ = doRequest(t, http.MethodGet, q+"&after=bogus", map[string]string{"Authorization": "Bearer ghp_seeded"}, "")
	require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func newTestServer(t *testing.T, sb *Sandbox) string {
	t.Helper()
	srv := httptestServer(sb)
	t.Cleanup(srv.Close)
	return srv.URL
}
