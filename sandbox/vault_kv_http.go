package sandbox

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The KV v2 endpoints, under /vault/v1/<mount>/ (the Vault client adds
// /v1/ to the address <sandbox>/vault):
//   - GET <mount>/data/<path>[?version=N]: the version's data and metadata;
//     a soft-deleted or destroyed version is 404 with its metadata and null
//     data, a missing one 404 {"errors":[]}.
//   - POST|PUT <mount>/data/<path> {"data":{…},"options":{"cas":N}}: a new
//     version; cas 0 writes only when there is none, cas N only when the
//     current version is N (else 400 and Vault's check-and-set message).
//   - PATCH <mount>/data/<path> (application/merge-patch+json): a new
//     version, the current one's data merged with the body's (RFC 7386).
//   - DELETE <mount>/data/<path>: soft-deletes the current version.
//   - GET|POST|PUT|PATCH|DELETE <mount>/metadata/<path>, and LIST (or GET
//     ?list=true) of a folder.
//   - POST|PUT <mount>/delete|undelete|destroy/<path> {"versions":[…]}.

// kvCapability is the ACL capability each action needs; "" when it
// depends on whether the key exists (create or update).
var kvCapability = map[string]string{
	"KVGet": "read", "KVPut": "", "KVPatch": "patch", "KVDelete": "delete",
	"KVGetMetadata": "read", "KVPutMetadata": "", "KVPatchMetadata": "patch", "KVDeleteMetadata": "delete", "KVList": "list",
	"KVDeleteVersions": "update", "KVUndelete": "update", "KVDestroy": "update",
}

// kvAction is the action of a request to op/key of a mount, or "" and the
// status to answer.
func kvAction(r *http.Request, op, key string) (string, int) {
	list := r.Method == "LIST" || (r.Method == http.MethodGet && r.URL.Query().Get("list") == "true")
	write := r.Method == http.MethodPost || r.Method == http.MethodPut
	byMethod := func(actions map[string]string) (string, int) {
		if a, ok := actions[r.Method]; ok {
			return a, 0
		}
		return "", http.StatusMethodNotAllowed
	}
	switch {
	case op == "metadata" && list:
		return "KVList", 0
	case key == "" || strings.HasSuffix(key, "/"):
		return "", http.StatusNotFound
	case op == "data":
		return byMethod(map[string]string{http.MethodGet: "KVGet", http.MethodPost: "KVPut", http.MethodPut: "KVPut", http.MethodPatch: "KVPatch", http.MethodDelete: "KVDelete"})
	case op == "metadata":
		return byMethod(map[string]string{http.MethodGet: "KVGetMetadata", http.MethodPost: "KVPutMetadata", http.MethodPut: "KVPutMetadata", http.MethodPatch: "KVPatchMetadata", http.MethodDelete: "KVDeleteMetadata"})
	case op == "delete" || op == "undelete" || op == "destroy":
		if !write {
			return "", http.StatusMethodNotAllowed
		}
		return map[string]string{"delete": "KVDeleteVersions", "undelete": "KVUndelete", "destroy": "KVDestroy"}[op], 0
	}
	return "", http.StatusNotFound
}

// serveVaultKV answers a request for path (under /vault/, such as
// v1/secret/data/ci/aws) when it is in a seeded KV v2 mount, and reports
// whether it did.
func (s *Sandbox) serveVaultKV(w http.ResponseWriter, r *http.Request, path string) bool {
	rest, ok := strings.CutPrefix(path, "v1/")
	if !ok {
		return false
	}
	m, sub := s.vaultKV.mountOf(rest) // mounts are fixed after New
	if m == nil {
		return false
	}
	op, key, _ := strings.Cut(sub, "/")
	value := r.Header.Get("X-Vault-Token")
	if value == "" {
		value = bearer(r.Header)
	}
	action, status := kvAction(r, op, key)
	req := &request{service: "vault", action: action, params: map[string]string{"mount": m.path, "path": key}, token: fingerprintOf(value)}
	if action == "" {
		req.action = r.Method + " /" + path
		s.mu.Lock()
		s.recordLocked(req, status, false)
		s.mu.Unlock()
		msg := "unsupported operation"
		if status == http.StatusNotFound {
			msg = "unsupported path"
		}
		writeStatusJSON(w, status, vaultErrors(msg))
		return true
	}
	if v := r.URL.Query().Get("version"); v != "" && action == "KVGet" {
		req.params["version"] = v
	}
	if action == "KVPatch" || action == "KVPatchMetadata" {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/merge-patch+json") {
			s.mu.Lock()
			s.recordLocked(req, http.StatusUnsupportedMediaType, false)
			s.mu.Unlock()
			writeStatusJSON(w, http.StatusUnsupportedMediaType, vaultErrors("PATCH requires Content-Type application/merge-patch+json"))
			return true
		}
	}
	var body map[string]any
	if r.Method != http.MethodGet && r.Method != http.MethodDelete && action != "KVList" {
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err == nil && strings.TrimSpace(string(data)) != "" {
			body, err = decodeKVObject(data)
		}
		if err != nil {
			s.mu.Lock()
			s.recordLocked(req, http.StatusBadRequest, false)
			s.mu.Unlock()
			// The decoder's message quotes at most a character of the body.
			writeStatusJSON(w, http.StatusBadRequest, vaultErrors("failed to parse JSON input: "+err.Error()))
			return true
		}
	}
	failure, ok := s.faultFor(r, req)
	if !ok {
		return true
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
			answer(http.StatusTooManyRequests, false, vaultErrors("request path \""+rest+"\": rate limit quota exceeded"))
		} else {
			answer(http.StatusServiceUnavailable, false, vaultErrors("injected by the sandbox: service unavailable"))
		}
		return true
	}
	now := time.Now().UTC()
	caller := s.tokens.lookup(ProviderVault, value)
	if caller == nil || !caller.usable(now) {
		answer(http.StatusForbidden, false, vaultErrors("permission denied"))
		return true
	}
	k := m.keys[key]
	capability := kvCapability[action]
	if capability == "" {
		capability = "update"
		if k == nil {
			capability = "create"
		}
	}
	aclPath := rest
	if action == "KVList" && !strings.HasSuffix(aclPath, "/") {
		aclPath += "/" // Vault lists a folder: secret/metadata/ci/
	}
	if !s.vaultKV.allowed(caller.Scopes, aclPath, capability) {
		answer(http.StatusForbidden, false, vaultErrors("permission denied"))
		return true
	}
	// Vault's 404 for what is not there: {"errors":[]}.
	notFound := func() { answer(http.StatusNotFound, false, map[string][]string{"errors": {}}) }
	badRequest := func(msg string) { answer(http.StatusBadRequest, false, vaultErrors(msg)) }
	switch action {
	case "KVGet":
		n := 0
		if v := r.URL.Query().Get("version"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 0 {
				badRequest("invalid version " + strconv.Quote(v))
				return true
			}
		}
		if k == nil || k.currentVersion == 0 {
			notFound()
			return true
		}
		if n == 0 {
			n = k.currentVersion
		}
		req.params["version"] = strconv.Itoa(n)
		v := k.version(n)
		if v == nil {
			notFound()
			return true
		}
		if !v.deleted.IsZero() || v.destroyed {
			answer(http.StatusNotFound, false, kvEnvelope(map[string]any{"data": nil, "metadata": k.versionMeta(v)}))
			return true
		}
		answer(http.StatusOK, false, kvEnvelope(map[string]any{"data": v.data, "metadata": k.versionMeta(v)}))
	case "KVPut", "KVPatch":
		data, isObject := body["data"].(map[string]any)
		if !isObject {
			badRequest("no data provided")
			return true
		}
		req.params["data_keys"] = strings.Join(slices.Sorted(maps.Keys(data)), ",")
		if action == "KVPatch" {
			if k == nil || k.currentVersion == 0 {
				notFound()
				return true
			}
			cur := k.version(k.currentVersion)
			if cur == nil || !cur.deleted.IsZero() || cur.destroyed {
				notFound()
				return true
			}
			data = mergePatchJSON(cur.data, data)
		}
		current := 0
		if k != nil {
			current = k.currentVersion
		}
		options, _ := body["options"].(map[string]any)
		casRaw, casGiven := options["cas"]
		if casGiven {
			req.params["cas"] = strings.TrimSpace(toJSONString(casRaw))
		}
		if !casGiven && (m.casRequired || (k != nil && k.casRequired)) {
			badRequest("check-and-set parameter required for this call")
			return true
		}
		if casGiven {
			cas, ok := kvInt(casRaw)
			if !ok || cas < 0 {
				badRequest("invalid check-and-set parameter")
				return true
			}
			if cas != current {
				badRequest("check-and-set parameter did not match the current version")
				return true
			}
		}
		if k == nil {
			k = &kvKey{created: now}
			m.keys[key] = k
		}
		n := k.addVersion(data, now, m)
		k.writes = append(k.writes, n)
		req.params["version"] = strconv.Itoa(n)
		answer(http.StatusOK, true, kvEnvelope(k.versionMeta(k.version(n))))
	case "KVDelete":
		if k == nil {
			answer(http.StatusNoContent, false, nil)
			return true
		}
		req.params["version"] = strconv.Itoa(k.currentVersion)
		v := k.version(k.currentVersion)
		if v == nil || !v.deleted.IsZero() || v.destroyed {
			answer(http.StatusNoContent, false, nil)
			return true
		}
		v.deleted, k.updated = now, now
		answer(http.StatusNoContent, true, nil)
	case "KVGetMetadata":
		if k == nil {
			notFound()
			return true
		}
		answer(http.StatusOK, false, kvEnvelope(k.metadata()))
	case "KVPutMetadata", "KVPatchMetadata":
		if k == nil && action == "KVPatchMetadata" {
			notFound()
			return true
		}
		next := &kvKey{}
		if k != nil {
			*next = *k
			next.customMetadata = maps.Clone(k.customMetadata)
		} else {
			next.created = now
		}
		if msg := next.applyMetadata(body, action == "KVPatchMetadata"); msg != "" {
			badRequest(msg)
			return true
		}
		req.params["custom_metadata_keys"] = strings.Join(slices.Sorted(maps.Keys(next.customMetadata)), ",")
		next.updated = now
		if k != nil {
			*k = *next
		} else {
			m.keys[key] = next
		}
		answer(http.StatusNoContent, true, nil)
	case "KVDeleteMetadata":
		if k == nil {
			answer(http.StatusNoContent, false, nil)
			return true
		}
		delete(m.keys, key)
		answer(http.StatusNoContent, true, nil)
	case "KVList":
		prefix := key
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		seen := map[string]bool{}
		for p := range m.keys {
			if child, ok := strings.CutPrefix(p, prefix); ok {
				if i := strings.Index(child, "/"); i >= 0 {
					child = child[:i+1]
				}
				seen[child] = true
			}
		}
		if len(seen) == 0 {
			notFound()
			return true
		}
		answer(http.StatusOK, false, kvEnvelope(map[string]any{"keys": sortedKeys(seen)}))
	default: // KVDeleteVersions, KVUndelete, KVDestroy
		raw, _ := body["versions"].([]any)
		var numbers []int
		for _, x := range raw {
			n, ok := kvInt(x)
			if !ok {
				badRequest("invalid version " + toJSONString(x))
				return true
			}
			numbers = append(numbers, n)
		}
		if len(numbers) == 0 {
			badRequest("no version number provided")
			return true
		}
		req.params["versions"] = strings.Trim(toJSONString(numbers), "[]")
		if k == nil {
			answer(http.StatusNoContent, false, nil)
			return true
		}
		changed := false
		for _, n := range numbers {
			v := k.version(n)
			if v == nil || v.destroyed {
				continue
			}
			switch action {
			case "KVDeleteVersions":
				if v.deleted.IsZero() {
					v.deleted, changed = now, true
				}
			case "KVUndelete":
				if !v.deleted.IsZero() {
					v.deleted, changed = time.Time{}, true
				}
			case "KVDestroy":
				v.destroyed, v.data, changed = true, nil, true
			}
		}
		if changed {
			k.updated = now
		}
		answer(http.StatusNoContent, changed, nil)
	}
	return true
}

// applyMetadata applies a metadata write's fields to k: those present
// (all of them for a POST, as the Go client's PutMetadata sends) replace
// the key's; in a patch, custom_metadata is merged, a null value removing
// its key. It returns Vault's complaint, or "".
func (k *kvKey) applyMetadata(body map[string]any, patch bool) string {
	if v, ok := body["max_versions"]; ok {
		n, ok := kvInt(v)
		if v == nil {
			n, ok = 0, true
		}
		if !ok || n < 0 {
			return "max_versions must be a non-negative integer"
		}
		k.maxVersions = n
	}
	if v, ok := body["cas_required"]; ok {
		switch b := v.(type) {
		case bool:
			k.casRequired = b
		case nil:
			k.casRequired = false
		case string:
			parsed, err := strconv.ParseBool(b)
			if err != nil {
				return "cas_required must be a boolean"
			}
			k.casRequired = parsed
		default:
			return "cas_required must be a boolean"
		}
	}
	if v, ok := body["delete_version_after"]; ok {
		var d time.Duration
		switch x := v.(type) {
		case nil:
		case string:
			parsed, err := time.ParseDuration(x)
			if err != nil {
				if secs, ok := kvInt(x); ok {
					parsed, err = time.Duration(secs)*time.Second, nil
				}
			}
			if err != nil {
				return "delete_version_after must be a duration"
			}
			d = parsed
		default:
			secs, ok := kvInt(x)
			if !ok {
				return "delete_version_after must be a duration"
			}
			d = time.Duration(secs) * time.Second
		}
		if d < 0 {
			return "delete_version_after cannot be negative"
		}
		k.deleteVersionAfter = d
	}
	if v, ok := body["custom_metadata"]; ok {
		cm, isMap := v.(map[string]any)
		if v != nil && !isMap {
			return "custom_metadata must be a map of strings"
		}
		next := map[string]string{}
		if patch {
			next = maps.Clone(k.customMetadata)
			if next == nil {
				next = map[string]string{}
			}
		}
		for name, val := range cm {
			switch s := val.(type) {
			case string:
				next[name] = s
			case nil:
				if !patch {
					return "custom_metadata must be a map of strings"
				}
				delete(next, name)
			default:
				return "custom_metadata must be a map of strings"
			}
		}
		if len(next) > 64 {
			return "custom_metadata may hold at most 64 keys"
		}
		for name, val := range next {
			if len(name) > 128 || len(val) > 512 {
				return "custom_metadata keys may have 128 characters and values 512"
			}
		}
		k.customMetadata = next
	}
	return ""
}

func kvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// customMetadataJSON is custom_metadata as Vault answers it: null when
// there is none.
func (k *kvKey) customMetadataJSON() any {
	if len(k.customMetadata) == 0 {
		return nil
	}
	return maps.Clone(k.customMetadata)
}

// versionMeta is a version's metadata as data reads and writes answer it.
func (k *kvKey) versionMeta(v *kvVersion) map[string]any {
	return map[string]any{"created_time": kvTime(v.created), "custom_metadata": k.customMetadataJSON(),
		"deletion_time": kvTime(v.deleted), "destroyed": v.destroyed, "version": v.number}
}

// metadata is the key's metadata as GET <mount>/metadata/<path> answers it.
func (k *kvKey) metadata() map[string]any {
	versions := map[string]any{}
	for _, v := range k.versions {
		versions[strconv.Itoa(v.number)] = map[string]any{"created_time": kvTime(v.created), "deletion_time": kvTime(v.deleted), "destroyed": v.destroyed}
	}
	return map[string]any{
		"cas_required": k.casRequired, "created_time": kvTime(k.created), "current_version": k.currentVersion,
		"custom_metadata": k.customMetadataJSON(), "delete_version_after": k.deleteVersionAfter.String(),
		"max_versions": k.maxVersions, "oldest_version": k.oldestVersion(), "updated_time": kvTime(k.updated),
		"versions": versions,
	}
}

// kvEnvelope is Vault's response envelope around a KV mount's data.
func kvEnvelope(data map[string]any) map[string]any {
	return map[string]any{"request_id": newRequestID(), "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": data, "wrap_info": nil, "warnings": nil, "auth": nil, "mount_type": "kv"}
}

// mergePatchJSON applies an RFC 7386 merge patch to a copy of target.
func mergePatchJSON(target, patch map[string]any) map[string]any {
	out := maps.Clone(target)
	if out == nil {
		out = map[string]any{}
	}
	for name, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, name)
		case map[string]any:
			tv, _ := out[name].(map[string]any)
			out[name] = mergePatchJSON(tv, pv)
		default:
			out[name] = v
		}
	}
	return out
}

func toJSONString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
