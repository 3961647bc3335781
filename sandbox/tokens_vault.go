package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// HashiCorp Vault's token auth method for leaked tokens (SeedToken with
// provider vault), under /vault/v1/: point the Vault client at the
// sandbox's URL + "/vault" (api.Config.Address, VAULT_ADDR).
//   - GET /v1/auth/token/lookup-self and POST|PUT /v1/auth/token/revoke-self
//     with the token itself (X-Vault-Token, or Authorization: Bearer).
//   - POST /v1/auth/token/lookup-accessor and POST|PUT
//     /v1/auth/token/revoke-accessor with {"accessor": …}, called with an
//     operator token: a seeded Vault token with the root policy.
//
// Errors are {"errors": […]}; a revoked, expired or unknown token is 403
// {"errors":["permission denied"]}, as Vault answers; revocations are 204.

const vaultPrefix = "/vault/"

// newVaultAccessor makes up an accessor in Vault's shape (24 characters).
func newVaultAccessor() string {
	return strings.ToLower(newID("", 24))
}

func vaultErrors(msgs ...string) map[string][]string { return map[string][]string{"errors": msgs} }

func (s *Sandbox) serveVault(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, vaultPrefix)
	if s.serveVaultKV(w, r, path) { // a KV v2 mount's path (vault_kv_http.go)
		return
	}
	value := r.Header.Get("X-Vault-Token")
	if value == "" {
		value = bearer(r.Header)
	}
	req := &request{service: "vault", action: r.Method + " /" + path, params: map[string]string{}, token: fingerprintOf(value)}
	write := r.Method == http.MethodPost || r.Method == http.MethodPut
	var route string
	switch {
	case path == "v1/auth/token/lookup-self" && (r.Method == http.MethodGet || write):
		route = "LookupSelf"
	case path == "v1/auth/token/revoke-self" && write:
		route = "RevokeSelf"
	case path == "v1/auth/token/lookup-accessor" && write:
		route = "LookupAccessor"
	case path == "v1/auth/token/revoke-accessor" && write:
		route = "RevokeAccessor"
	}
	if route != "" {
		req.action = route
	}
	var body struct {
		Accessor string `json:"accessor"`
	}
	if route == "LookupAccessor" || route == "RevokeAccessor" {
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err == nil && len(strings.TrimSpace(string(data))) > 0 {
			err = json.Unmarshal(data, &body)
		}
		if err != nil {
			s.mu.Lock()
			s.recordLocked(req, http.StatusBadRequest, false)
			s.mu.Unlock()
			writeStatusJSON(w, http.StatusBadRequest, vaultErrors("failed to parse JSON input: "+err.Error()))
			return
		}
		req.params["accessor"] = body.Accessor
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
			answer(http.StatusTooManyRequests, false, vaultErrors("request path \"auth/token\": rate limit quota exceeded"))
		} else {
			answer(http.StatusServiceUnavailable, false, vaultErrors("injected by the sandbox: service unavailable"))
		}
		return
	}
	if route == "" {
		answer(http.StatusNotFound, false, vaultErrors("no handler for route \""+strings.TrimPrefix(path, "v1/")+"\". route entry not found."))
		return
	}
	now := time.Now()
	caller := s.tokens.lookup(ProviderVault, value)
	if caller == nil || !caller.usable(now) {
		answer(http.StatusForbidden, false, vaultErrors("permission denied"))
		return
	}
	switch route {
	case "LookupSelf":
		answer(http.StatusOK, false, vaultSecret(caller.vaultLookup(now, true)))
	case "RevokeSelf":
		if caller.vaultBatch() {
			answer(http.StatusBadRequest, false, vaultErrors("batch tokens cannot be revoked"))
			return
		}
		caller.revoke(now, route)
		answer(http.StatusNoContent, true, nil)
	default:
		if !slices.Contains(caller.Scopes, "root") {
			answer(http.StatusForbidden, false, vaultErrors("permission denied"))
			return
		}
		var target *token
		for _, t := range s.tokens.order {
			if t.Provider == ProviderVault && body.Accessor != "" && t.Accessor == body.Accessor && t.usable(now) {
				target = t
			}
		}
		if target == nil {
			// A revoked token's accessor is gone with it.
			answer(http.StatusBadRequest, false, vaultErrors("invalid accessor"))
			return
		}
		req.token = target.fingerprint
		req.params["caller"] = caller.fingerprint
		if route == "LookupAccessor" {
			answer(http.StatusOK, false, vaultSecret(target.vaultLookup(now, false)))
			return
		}
		if target.vaultBatch() {
			answer(http.StatusBadRequest, false, vaultErrors("batch tokens cannot be revoked"))
			return
		}
		target.revoke(now, route)
		answer(http.StatusNoContent, true, nil)
	}
}

func (t *token) vaultBatch() bool {
	return strings.HasPrefix(t.Value, "hvb.") || strings.HasPrefix(t.Value, "b.")
}

// vaultLookup is the data of a token lookup; self says whether the caller
// looks itself up, which is when Vault returns the token's id.
func (t *token) vaultLookup(now time.Time, self bool) map[string]any {
	id := ""
	if self {
		id = t.Value
	}
	typ := "service"
	if t.vaultBatch() {
		typ = "batch"
	}
	var meta any
	if len(t.Meta) > 0 {
		meta = t.Meta
	}
	var expire any
	ttl := int64(0)
	if !t.Expires.IsZero() {
		expire = t.Expires.UTC().Format(time.RFC3339Nano)
		ttl = int64(t.Expires.Sub(now).Seconds())
	}
	// Vault keeps policies sorted.
	policies := slices.Sorted(slices.Values(t.Scopes))
	if policies == nil {
		policies = []string{"default"}
	}
	return map[string]any{
		"accessor": t.Accessor, "creation_time": t.Created.Unix(), "creation_ttl": int64(t.ttl.Seconds()),
		"display_name": t.Owner, "entity_id": t.EntityID, "expire_time": expire, "explicit_max_ttl": 0,
		"id": id, "issue_time": t.Created.UTC().Format(time.RFC3339Nano), "meta": meta, "num_uses": t.NumUses,
		"orphan": t.Orphan, "path": "auth/token/create", "policies": policies, "renewable": typ == "service" && ttl > 0,
		"ttl": ttl, "type": typ,
	}
}

// vaultSecret is Vault's response envelope around data.
func vaultSecret(data map[string]any) map[string]any {
	return map[string]any{"request_id": newRequestID(), "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": data, "wrap_info": nil, "warnings": nil, "auth": nil, "mount_type": "token"}
}
