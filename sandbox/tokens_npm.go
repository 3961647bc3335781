package sandbox

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The npm registry's token endpoints (SeedToken with provider npm), under
// /npm/: a client's registry URL is the sandbox's URL + "/npm/".
//   - GET /-/whoami: {"username": …}.
//   - GET /-/npm/v1/tokens[?perPage=N&page=P]: the caller's user's active
//     tokens, each with its key (the hex SHA-512 of the token) and the
//     token's first characters only.
//   - DELETE /-/npm/v1/tokens/token/{key or token}: 204; the token is
//     refused (401) afterwards.
//
// Every call needs Authorization: Bearer with an active token; a revoked,
// expired or unknown one is 401. The path of a DELETE may hold a token, so
// the call log names the target by its fingerprint, never by the path.

const npmPrefix = "/npm/"

func (s *Sandbox) serveNPM(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, npmPrefix)
	value := bearer(r.Header)
	req := &request{service: "npm", action: "unknown", params: map[string]string{}, token: fingerprintOf(value)}
	var target string
	switch {
	case path == "-/whoami" && r.Method == http.MethodGet:
		req.action = "Whoami"
	case path == "-/npm/v1/tokens" && r.Method == http.MethodGet:
		req.action = "ListTokens"
	case strings.HasPrefix(path, "-/npm/v1/tokens/token/") && r.Method == http.MethodDelete:
		req.action = "DeleteToken"
		target = strings.TrimPrefix(path, "-/npm/v1/tokens/token/")
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
			answer(http.StatusTooManyRequests, false, map[string]string{"error": "Too Many Requests"})
		} else {
			answer(http.StatusServiceUnavailable, false, map[string]string{"error": "Service Unavailable"})
		}
		return
	}
	if req.action == "unknown" {
		answer(http.StatusNotFound, false, map[string]string{"error": "Not found"})
		return
	}
	now := time.Now()
	caller := s.tokens.lookup(ProviderNPM, value)
	if caller == nil || !caller.usable(now) {
		answer(http.StatusUnauthorized, false, map[string]string{"error": "Unauthorized", "message": "You must be logged in with a valid token"})
		return
	}
	switch req.action {
	case "Whoami":
		answer(http.StatusOK, false, map[string]string{"username": caller.Owner})
	case "ListTokens":
		s.listNPMTokens(answer, r, caller, now)
	default:
		var found *token
		for _, t := range s.tokens.order {
			if t.Provider == ProviderNPM && t.Owner == caller.Owner && t.usable(now) && (target == t.npmKey || target == t.Value) {
				found = t
			}
		}
		if found == nil {
			req.params["target"] = "unknown"
			answer(http.StatusNotFound, false, map[string]string{"error": "Not found"})
			return
		}
		req.params["target"] = found.fingerprint
		if target == found.Value {
			req.params["by"] = "token"
		} else {
			req.params["by"] = "key"
		}
		found.revoke(now, "DeleteToken")
		answer(http.StatusNoContent, true, nil)
	}
}

func (s *Sandbox) listNPMTokens(answer func(int, bool, any), r *http.Request, caller *token, now time.Time) {
	q := r.URL.Query()
	perPage, page := 10, 0
	if n, err := strconv.Atoi(q.Get("perPage")); err == nil && n > 0 {
		perPage = min(n, 100)
	}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n >= 0 {
		page = n
	}
	var mine []*token
	for _, t := range s.tokens.order {
		if t.Provider == ProviderNPM && t.Owner == caller.Owner && t.usable(now) {
			mine = append(mine, t)
		}
	}
	objects := []map[string]any{}
	for i := page * perPage; i < min((page+1)*perPage, len(mine)); i++ {
		t := mine[i]
		var cidr any
		if len(t.CIDR) > 0 {
			cidr = t.CIDR
		}
		created := t.Created.UTC().Format("2006-01-02T15:04:05.000Z")
		objects = append(objects, map[string]any{"token": t.Value[:6], "key": t.npmKey, "cidr_whitelist": cidr,
			"created": created, "updated": created, "readonly": t.ReadOnly})
	}
	urls := map[string]string{}
	base := "http://" + r.Host + npmPrefix + "-/npm/v1/tokens"
	if (page+1)*perPage < len(mine) {
		urls["next"] = base + "?perPage=" + strconv.Itoa(perPage) + "&page=" + strconv.Itoa(page+1)
	}
	if page > 0 {
		urls["prev"] = base + "?perPage=" + strconv.Itoa(perPage) + "&page=" + strconv.Itoa(page-1)
	}
	answer(http.StatusOK, false, map[string]any{"objects": objects, "total": len(mine), "urls": urls})
}
