package sandbox

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GitHub's endpoints for a leaked token, under /api/v3/ like the rest of
// the sandbox's GitHub:
//   - GET /user with the token itself: the owner, and X-OAuth-Scopes for a
//     classic token; 401 Bad credentials once it is revoked or expired.
//   - POST /credentials/revoke, unauthenticated, {"credentials": […]} of at
//     most 1,000 tokens: 202 Accepted; 60 requests an hour per client
//     address (SetGitHubRevokeLimit, seed token_limits:), then 403 with
//     X-RateLimit-Remaining: 0 as GitHub's primary rate limit answers.
//   - GET /orgs/{org}/audit-log?phrase=hashed_token:"…": the events seeded
//     for the token, newest first, paged with per_page and after/before
//     cursors in Link headers.

const (
	maxRevokeCredentials = 1000
	githubDocs           = "https://docs.github.com/rest"
	githubRateLimitDocs  = "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"
)

// serveGitHubToken answers the token endpoints; it returns false for any
// other path. s.mu is held.
func (s *Sandbox) serveGitHubToken(c *githubCall, parts []string) bool {
	r := c.r
	switch {
	case len(parts) == 1 && parts[0] == "user" && r.Method == http.MethodGet:
		c.call.action = "GetAuthenticatedUser"
		s.githubUser(c)
	case len(parts) == 2 && parts[0] == "credentials" && parts[1] == "revoke" && r.Method == http.MethodPost:
		c.call.action = "RevokeCredentials"
		s.revokeGitHubCredentials(c)
	case len(parts) == 3 && parts[0] == "orgs" && parts[2] == "audit-log" && r.Method == http.MethodGet:
		c.call.action = "GetAuditLog"
		s.githubAuditLog(c, parts[1])
	default:
		return false
	}
	return true
}

func (s *Sandbox) githubUser(c *githubCall) {
	value := bearer(c.r.Header)
	c.call.token = fingerprintOf(value)
	if t := s.tokens.lookup(ProviderGitHub, value); t != nil {
		switch {
		case !t.usable(time.Now()), strings.HasPrefix(t.Value, "ghr_"): // a refresh token is no API token
			c.fail(http.StatusUnauthorized, "Bad credentials")
		case strings.HasPrefix(t.Value, "ghs_"):
			c.fail(http.StatusForbidden, "Resource not accessible by integration")
		default:
			h := c.w.Header()
			if githubClassic(t.Value) {
				h.Set("X-OAuth-Scopes", strings.Join(t.Scopes, ", "))
			}
			h.Set("X-Accepted-OAuth-Scopes", "")
			if !t.Expires.IsZero() {
				h.Set("GitHub-Authentication-Token-Expiration", t.Expires.UTC().Format("2006-01-02 15:04:05 MST"))
			}
			c.answer(http.StatusOK, false, githubUserJSON(c.api(), t.Owner, t.Created))
		}
		return
	}
	login, ok := s.github.caller(c.r.Header.Get("Authorization"))
	switch {
	case !ok:
		c.fail(http.StatusUnauthorized, "Bad credentials")
	case strings.HasSuffix(login, "[bot]"):
		c.fail(http.StatusForbidden, "Resource not accessible by integration")
	default:
		c.answer(http.StatusOK, false, githubUserJSON(c.api(), login, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)))
	}
}

// githubClassic reports whether a token has OAuth scopes: classic personal
// access tokens and OAuth App tokens. Fine-grained and App tokens have
// permissions instead, which GitHub does not list in a header.
func githubClassic(value string) bool {
	return strings.HasPrefix(value, "ghp_") || strings.HasPrefix(value, "gho_")
}

func githubUserJSON(api, login string, created time.Time) map[string]any {
	return map[string]any{
		"login": login, "id": githubNumericID(login), "node_id": "U_sandbox" + login, "type": "User", "site_admin": false,
		"url": api + "/users/" + login, "html_url": "https://github.com/" + login, "name": login,
		"created_at": created.UTC().Format(time.RFC3339), "updated_at": created.UTC().Format(time.RFC3339),
	}
}

// githubNumericID is a stable id for a name.
func githubNumericID(name string) int64 {
	var h int64 = 1000
	for _, r := range name {
		h = (h*31 + int64(r)) % 100_000_000
	}
	return h + 1
}

func (s *Sandbox) revokeGitHubCredentials(c *githubCall) {
	if c.r.Header.Get("Authorization") != "" {
		// github.com refuses this endpoint to authenticated callers.
		c.fail(http.StatusForbidden, "This endpoint must be called without authentication")
		return
	}
	now := time.Now()
	client := clientAddress(c.r)
	b := s.tokens.revokeBudgets[client]
	if b == nil || !now.Before(b.reset) {
		b = &revokeBudget{reset: now.Add(s.tokens.revokeWindow)}
		s.tokens.revokeBudgets[client] = b
	}
	h := c.w.Header()
	limited := b.used >= s.tokens.revokeLimit
	if !limited {
		b.used++
	}
	h.Set("X-RateLimit-Limit", strconv.Itoa(s.tokens.revokeLimit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(s.tokens.revokeLimit-b.used))
	h.Set("X-RateLimit-Used", strconv.Itoa(b.used))
	// Rounded up, so that a client that waits until then finds a new window.
	h.Set("X-RateLimit-Reset", strconv.FormatInt(b.reset.Add(time.Second-1).Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
	if limited {
		c.call.params["rate_limited"] = "true"
		c.answer(http.StatusForbidden, false, map[string]string{
			"message":           fmt.Sprintf("API rate limit exceeded for %s. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)", client),
			"documentation_url": githubRateLimitDocs,
		})
		return
	}
	var in struct {
		Credentials []string `json:"credentials"`
	}
	if !c.decode(&in) {
		return
	}
	c.call.params["credentials"] = strconv.Itoa(len(in.Credentials))
	switch {
	case len(in.Credentials) == 0:
		c.invalid("Credentials", "credentials", "credentials must hold at least one token")
		return
	case len(in.Credentials) > maxRevokeCredentials:
		c.invalid("Credentials", "credentials", fmt.Sprintf("credentials holds %d tokens; at most %d are allowed", len(in.Credentials), maxRevokeCredentials))
		return
	}
	revoked := 0
	for _, v := range in.Credentials {
		// Any token of the listed kinds is accepted; a token GitHub does
		// not know is accepted too, and nothing happens to it.
		if t := s.tokens.lookup(ProviderGitHub, strings.TrimSpace(v)); t != nil && !strings.HasPrefix(t.Value, "ghs_") && t.revoke(now, "RevokeCredentials") {
			revoked++
		}
	}
	c.call.params["revoked"] = strconv.Itoa(revoked)
	s.tokens.revokeSizes = append(s.tokens.revokeSizes, len(in.Credentials))
	s.recordLocked(c.call, http.StatusAccepted, revoked > 0)
	c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.w.WriteHeader(http.StatusAccepted)
	_, _ = c.w.Write([]byte("{}\n"))
}

// clientAddress is the address a request came from, without its port.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

var hashedTokenTerm = regexp.MustCompile(`hashed_token:"([^"]*)"`)

// auditEvent is one event of an organisation's audit log.
type auditEvent struct {
	at    time.Time
	id    string
	token *token
	event SeedTokenEvent
}

// auditEvents are the events of org done with the token whose hashed_token
// is hash (padded or not), oldest first.
func (st *tokenState) auditEvents(org, hash string) []auditEvent {
	hash = strings.TrimRight(hash, "=")
	var out []auditEvent
	for _, t := range st.order {
		if t.Provider != ProviderGitHub || !strings.EqualFold(t.Org, org) || strings.TrimRight(t.hashedToken, "=") != hash {
			continue
		}
		for i, e := range t.Events {
			at := e.At
			if at.IsZero() {
				ago := time.Duration(len(t.Events)-i) * time.Minute
				if d, err := time.ParseDuration(e.Ago); err == nil {
					ago = d
				}
				at = st.started.Add(-ago)
			}
			id := strings.TrimPrefix(t.fingerprint, "sha256:") + "-" + strconv.Itoa(i)
			out = append(out, auditEvent{at: at.UTC(), id: id, token: t, event: e})
		}
	}
	slices.SortStableFunc(out, func(a, b auditEvent) int { return a.at.Compare(b.at) })
	return out
}

func (s *Sandbox) githubAuditLog(c *githubCall, org string) {
	login, ok := s.github.caller(c.r.Header.Get("Authorization"))
	if !ok {
		c.fail(http.StatusUnauthorized, "Bad credentials")
		return
	}
	c.login = login
	q := c.r.URL.Query()
	phrase := q.Get("phrase")
	include := q.Get("include")
	if include == "" {
		include = "web"
	}
	order := q.Get("order")
	if order == "" {
		order = "desc"
	}
	perPage := 30
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			c.invalid("AuditLog", "per_page", fmt.Sprintf("per_page %q is not a number from 1 to 100", v))
			return
		}
		perPage = min(n, 100)
	}
	if include != "web" && include != "git" && include != "all" {
		c.invalid("AuditLog", "include", fmt.Sprintf("include %q is not web, git or all", include))
		return
	}
	if order != "desc" && order != "asc" {
		c.invalid("AuditLog", "order", fmt.Sprintf("order %q is not desc or asc", order))
		return
	}
	// The phrase names a hash, not a token: it may go in the log.
	c.call.params["org"], c.call.params["phrase"], c.call.params["include"] = org, phrase, include
	var events []auditEvent
	if m := hashedTokenTerm.FindStringSubmatch(phrase); m != nil {
		for _, e := range s.tokens.auditEvents(org, m[1]) {
			git := strings.HasPrefix(e.event.Action, "git.")
			if (git && include == "web") || (!git && include == "git") {
				continue
			}
			if a := phraseTerm(phrase, "action"); a != "" && e.event.Action != a {
				continue
			}
			if r := phraseTerm(phrase, "repo"); r != "" && e.event.Repo != r {
				continue
			}
			events = append(events, e)
		}
	}
	if order == "desc" {
		slices.Reverse(events)
	}
	// Cursors are positions in the ordered list: after=N starts at N,
	// before=N ends just before N.
	var start, end int
	if v := q.Get("after"); v != "" {
		n, ok := decodeAuditCursor(v)
		if !ok {
			c.invalid("AuditLog", "after", "after is not a cursor this audit log gave")
			return
		}
		start = min(n, len(events))
		end = min(start+perPage, len(events))
	} else if v := q.Get("before"); v != "" {
		n, ok := decodeAuditCursor(v)
		if !ok {
			c.invalid("AuditLog", "before", "before is not a cursor this audit log gave")
			return
		}
		end = min(n, len(events))
		start = max(end-perPage, 0)
	} else {
		end = min(perPage, len(events))
	}
	page := events[start:end]
	var links []string
	link := func(param string, n int, rel string) {
		lq := url.Values{}
		for k, v := range q {
			if k != "after" && k != "before" {
				lq[k] = v
			}
		}
		lq.Set(param, encodeAuditCursor(n))
		links = append(links, fmt.Sprintf("<%s/orgs/%s/audit-log?%s>; rel=%q", c.api(), org, lq.Encode(), rel))
	}
	if end < len(events) {
		link("after", end, "next")
	}
	if start > 0 {
		link("before", start, "prev")
	}
	if len(links) > 0 {
		c.w.Header().Set("Link", strings.Join(links, ", "))
	}
	out := make([]map[string]any, 0, len(page))
	for _, e := range page {
		out = append(out, e.view(org))
	}
	c.answer(http.StatusOK, false, out)
}

// phraseTerm is the value of a name:value term of an audit-log phrase.
func phraseTerm(phrase, name string) string {
	for f := range strings.FieldsSeq(phrase) {
		if v, ok := strings.CutPrefix(f, name+":"); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func encodeAuditCursor(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("sandbox:" + strconv.Itoa(n)))
}

func decodeAuditCursor(v string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "sandbox:"))
	return n, err == nil && n >= 0 && strings.HasPrefix(string(b), "sandbox:")
}

// view is the event as the audit-log API gives it: the common fields, the
// token's (hashed_token, programmatic_access_type, token_id, token_scopes)
// and the action's own fields at the top level.
func (e auditEvent) view(org string) map[string]any {
	ms := e.at.UnixMilli()
	v := map[string]any{}
	for k, val := range e.event.Data {
		v[k] = val
	}
	t := e.token
	maps := map[string]any{
		"@timestamp": ms, "created_at": ms, "_document_id": e.id, "action": e.event.Action,
		"actor": t.Owner, "actor_id": githubNumericID(t.Owner), "actor_location": map[string]any{"country_code": "US"},
		"org": org, "org_id": githubNumericID(org), "user_agent": "git/2.47.0",
		"hashed_token": t.hashedToken, "programmatic_access_type": githubAccessType(t.Value),
		"token_id": githubNumericID(t.fingerprint), "operation_type": githubOperationType(e.event.Action),
	}
	if githubClassic(t.Value) && len(t.Scopes) > 0 {
		maps["token_scopes"] = strings.Join(t.Scopes, ",")
	}
	if e.event.Repo != "" {
		maps["repo"] = e.event.Repo
	}
	for k, val := range maps {
		v[k] = val
	}
	return v
}

func githubAccessType(value string) string {
	switch {
	case strings.HasPrefix(value, "ghp_"):
		return "Personal access token (classic)"
	case strings.HasPrefix(value, "github_pat_"):
		return "Fine-grained personal access token"
	case strings.HasPrefix(value, "gho_"):
		return "OAuth access token"
	case strings.HasPrefix(value, "ghu_"):
		return "GitHub App user-to-server token"
	case strings.HasPrefix(value, "ghs_"):
		return "GitHub App server-to-server token"
	}
	return "Token"
}

// githubOperationType is the audit log's operation_type of an action.
func githubOperationType(action string) string {
	_, verb, _ := strings.Cut(action, ".")
	switch {
	case action == "git.clone" || action == "git.fetch" || strings.Contains(verb, "read") || strings.Contains(verb, "view") || strings.Contains(verb, "download"):
		return "access"
	case strings.Contains(verb, "create") || action == "git.push" || strings.Contains(verb, "add"):
		return "create"
	case strings.Contains(verb, "destroy") || strings.Contains(verb, "delete") || strings.Contains(verb, "remove"):
		return "remove"
	}
	return "modify"
}
