package sandbox

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// GitLab's personal and project access tokens (SeedToken with provider
// gitlab), under /gitlab/api/v4/: a client's base URL is the sandbox's URL
// + "/gitlab/api/v4". A project access token is a token of the project's
// bot user, so it identifies and revokes itself through the same self
// endpoints:
//   - GET /personal_access_tokens/self: the token (id, name, scopes,
//     user_id, active, revoked, created_at, expires_at, …).
//   - DELETE /personal_access_tokens/self: 204, and 401 afterwards.
//
// The token goes in PRIVATE-TOKEN or Authorization: Bearer; a revoked,
// expired or unknown token is 401 {"message":"401 Unauthorized"}.

const gitlabPrefix = "/gitlab/"

func (s *Sandbox) serveGitLab(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, gitlabPrefix), "/")
	value := r.Header.Get("PRIVATE-TOKEN")
	if value == "" {
		value = bearer(r.Header)
	}
	req := &request{service: "gitlab", action: r.Method + " /" + path, params: map[string]string{}, token: fingerprintOf(value)}
	route := ""
	if path == "api/v4/personal_access_tokens/self" {
		switch r.Method {
		case http.MethodGet:
			route = "GetPersonalAccessTokenSelf"
		case http.MethodDelete:
			route = "RevokePersonalAccessTokenSelf"
		}
	}
	if route != "" {
		req.action = route
	}
	failure, ok := s.faultFor(r, req)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	answer := func(status int, effective bool, v any) {
		s.recordLocked(req, status, effective)
		writeStatusJSON(w, status, v)
	}
	if failure != nil {
		if failure.code == "Throttling" {
			w.Header().Set("Retry-After", "1")
			answer(http.StatusTooManyRequests, false, map[string]string{"message": "429 Too Many Requests"})
		} else {
			answer(http.StatusServiceUnavailable, false, map[string]string{"message": "503 Service Unavailable"})
		}
		return
	}
	if route == "" {
		answer(http.StatusNotFound, false, map[string]string{"error": "404 Not Found"})
		return
	}
	now := time.Now()
	t := s.tokens.lookup(ProviderGitLab, value)
	if t == nil || !t.usable(now) {
		answer(http.StatusUnauthorized, false, map[string]string{"message": "401 Unauthorized"})
		return
	}
	req.params["kind"] = t.Kind
	if route == "GetPersonalAccessTokenSelf" {
		answer(http.StatusOK, false, t.gitlabView(now))
		return
	}
	t.revoke(now, route)
	answer(http.StatusNoContent, true, nil)
}

// gitlabView is the personal access token as GitLab's API shows it.
func (t *token) gitlabView(now time.Time) map[string]any {
	var expires any
	if !t.Expires.IsZero() {
		expires = t.Expires.UTC().Format(time.DateOnly)
	}
	userID, err := strconv.ParseInt(t.UserID, 10, 64)
	if err != nil {
		userID = githubNumericID(t.Owner)
	}
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	v := map[string]any{
		"id": t.ID, "name": t.Name, "revoked": !t.active, "created_at": t.Created.UTC().Format("2006-01-02T15:04:05.000Z"),
		"description": "", "scopes": scopes, "user_id": userID, "last_used_at": now.UTC().Format("2006-01-02T15:04:05.000Z"),
		"active": t.usable(now), "expires_at": expires,
	}
	if t.Kind == "project" {
		v["access_level"] = 40 // Maintainer, GitLab's default for project access tokens
	}
	return v
}
