package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Azure Key Vault secrets (the data plane azsecrets speaks), one HTTPS
// listener per seeded vault: the vault URL is https://127.0.0.1:PORT/ (see
// azure_tls.go for the test CA and the listeners).
//   - PUT /secrets/{name} (SecretSet): a new version, every call.
//   - GET /secrets/{name}[/{version}] (SecretGet): a version, with its value.
//   - GET /secrets/{name}/versions (SecretListVersions): paged, no values.
//   - PATCH /secrets/{name}/{version} (SecretUpdate): tags, content type,
//     enabled, exp and nbf; never the value.
//
// Authentication is Key Vault's bearer challenge: a request without a
// token (the client's first one, sent without its body) is answered 401
// with WWW-Authenticate naming the tenant and the resource; the client then
// asks its credential for a token and sends the request again with
// Authorization: Bearer. A token the seed does not name is 401 too; an
// identity without the permission or the vault is 403. Errors are
// {"error":{"code","message"}}. Any api-version is accepted.
//
// The call log names vault, secret, version, tags and the identity (and
// the token's fingerprint), never a value.

const (
	azureService = "azurekeyvault"
	// azureDefaultTenant is the tenant the challenge names when the seed
	// names none.
	azureDefaultTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	// azureResource is what the challenge names as the resource: the token's
	// scope is azureResource + "/.default".
	azureResource = "https://vault.azure.net"
	// azureMaxResults is the largest (and default) page of a list.
	azureMaxResults = 25
	azureMaxTags    = 15
)

// SeedAzure is Azure Key Vault: the identities that may call it and the
// vaults with their secrets.
type SeedAzure struct {
	// TenantID is the Entra ID tenant the bearer challenge names.
	TenantID   string              `yaml:"tenant_id" json:"tenant_id"`
	Identities []SeedAzureIdentity `yaml:"identities" json:"identities"`
	Vaults     []SeedAzureVault    `yaml:"vaults" json:"vaults"`
}

// SeedAzureIdentity is a service principal or managed identity, known by
// the access token it presents (the sandbox checks no JWT: the token is
// matched as it is).
type SeedAzureIdentity struct {
	Name  string `yaml:"name" json:"name"`
	Token string `yaml:"token" json:"token"`
	// Permissions are secret permissions of its access policy: get, list,
	// set (default: all three).
	Permissions []string `yaml:"permissions" json:"permissions"`
	// Vaults are the vaults it may use (default: every vault).
	Vaults []string `yaml:"vaults" json:"vaults"`
}

// SeedAzureVault is a key vault and its secrets.
type SeedAzureVault struct {
	Name    string            `yaml:"name" json:"name"`
	Secrets []SeedAzureSecret `yaml:"secrets" json:"secrets"`
}

// SeedAzureSecret is a secret with its versions, oldest first: the last is
// the current one.
type SeedAzureSecret struct {
	Name     string                   `yaml:"name" json:"name"`
	Versions []SeedAzureSecretVersion `yaml:"versions" json:"versions"`
}

// SeedAzureSecretVersion is one version of a secret.
type SeedAzureSecretVersion struct {
	// Version is 32 lower-case hex digits (default: made up).
	Version     string            `yaml:"version" json:"version"`
	Value       string            `yaml:"value" json:"value"`
	ContentType string            `yaml:"content_type" json:"content_type"`
	Tags        map[string]string `yaml:"tags" json:"tags"`
	// Enabled defaults to true.
	Enabled *bool     `yaml:"enabled" json:"enabled"`
	Created time.Time `yaml:"created" json:"created"`
}

var (
	azureVaultName  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)
	azureSecretName = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	azureVersionID  = regexp.MustCompile(`^[0-9a-f]{32}$`)
	azurePerms      = []string{"get", "list", "set"}
)

func (a *SeedAzure) validate() error {
	if a == nil {
		return nil
	}
	vaults := map[string]bool{}
	for i, v := range a.Vaults {
		if !azureVaultName.MatchString(v.Name) || vaults[v.Name] {
			return &seedPathError{fmt.Sprintf("$.azure.vaults[%d].name", i), fmt.Errorf("azure: vault name %q is repeated or not 3 to 24 letters, digits and dashes, starting with a letter", v.Name)}
		}
		vaults[v.Name] = true
		secrets := map[string]bool{}
		for j, s := range v.Secrets {
			at := fmt.Sprintf("$.azure.vaults[%d].secrets[%d]", i, j)
			if !azureSecretName.MatchString(s.Name) || secrets[s.Name] {
				return &seedPathError{at + ".name", fmt.Errorf("azure: vault %s: secret name %q is repeated or not 1 to 127 letters, digits and dashes", v.Name, s.Name)}
			}
			secrets[s.Name] = true
			if len(s.Versions) == 0 {
				return &seedPathError{at, fmt.Errorf("azure: vault %s: secret %s needs at least one version", v.Name, s.Name)}
			}
			ids := map[string]bool{}
			for k, ver := range s.Versions {
				if ver.Version != "" && (!azureVersionID.MatchString(ver.Version) || ids[ver.Version]) {
					return &seedPathError{fmt.Sprintf("%s.versions[%d].version", at, k), fmt.Errorf("azure: secret %s: version %q is repeated or not 32 lower-case hex digits", s.Name, ver.Version)}
				}
				ids[ver.Version] = true
				if len(ver.Tags) > azureMaxTags {
					return &seedPathError{fmt.Sprintf("%s.versions[%d].tags", at, k), fmt.Errorf("azure: secret %s: %d tags; Key Vault allows %d", s.Name, len(ver.Tags), azureMaxTags)}
				}
			}
		}
	}
	tokens := map[string]bool{}
	for i, id := range a.Identities {
		at := fmt.Sprintf("$.azure.identities[%d]", i)
		if id.Name == "" || id.Token == "" || tokens[id.Token] {
			return &seedPathError{at, fmt.Errorf("azure: identity %q needs a name and a token of its own", id.Name)}
		}
		tokens[id.Token] = true
		for _, p := range id.Permissions {
			if !slices.Contains(azurePerms, p) {
				return &seedPathError{at + ".permissions", fmt.Errorf("azure: identity %s: permission %q is not one of %s", id.Name, p, strings.Join(azurePerms, ", "))}
			}
		}
		for _, v := range id.Vaults {
			if !vaults[v] {
				return &seedPathError{at + ".vaults", fmt.Errorf("azure: identity %s: vault %q is not seeded", id.Name, v)}
			}
		}
	}
	return nil
}

type azureState struct {
	tenant     string
	identities map[string]*azureIdentity // by token
	vaults     map[string]*azureVault
	order      []string // vault names in seed order
	ca         *azureCA
	urls       map[string]string // vault name → URL, once StartAzure serves it
	firstToken string            // the first identity's, which `stanch sandbox` prints
}

type azureIdentity struct {
	name   string
	perms  []string
	vaults []string // empty: all
}

type azureVault struct {
	name    string
	secrets map[string]*azureSecret
}

type azureSecret struct {
	name     string
	versions []*azureVersion // oldest first
}

type azureVersion struct {
	id          string
	value       string
	contentType string
	tags        map[string]string
	enabled     bool
	created     time.Time
	updated     time.Time
	exp, nbf    *time.Time
}

func newAzureState(seed *SeedAzure) (*azureState, error) {
	if seed == nil {
		return nil, nil
	}
	st := &azureState{tenant: seed.TenantID, identities: map[string]*azureIdentity{}, vaults: map[string]*azureVault{}, urls: map[string]string{}}
	if st.tenant == "" {
		st.tenant = azureDefaultTenant
	}
	for i, id := range seed.Identities {
		if i == 0 {
			st.firstToken = id.Token
		}
		perms := id.Permissions
		if len(perms) == 0 {
			perms = azurePerms
		}
		st.identities[id.Token] = &azureIdentity{name: id.Name, perms: perms, vaults: id.Vaults}
	}
	epoch := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, sv := range seed.Vaults {
		v := &azureVault{name: sv.Name, secrets: map[string]*azureSecret{}}
		st.vaults[v.name] = v
		st.order = append(st.order, v.name)
		for _, ss := range sv.Secrets {
			sec := &azureSecret{name: ss.Name}
			for _, sver := range ss.Versions {
				ver := &azureVersion{id: sver.Version, value: sver.Value, contentType: sver.ContentType, tags: copyTags(sver.Tags), enabled: true, created: sver.Created}
				if ver.id == "" {
					ver.id = newAzureVersion()
				}
				if sver.Enabled != nil {
					ver.enabled = *sver.Enabled
				}
				if ver.created.IsZero() {
					ver.created = epoch
				}
				ver.updated = ver.created
				sec.versions = append(sec.versions, ver)
			}
			v.secrets[sec.name] = sec
		}
	}
	ca, err := newAzureCA()
	if err != nil {
		return nil, err
	}
	st.ca = ca
	return st, nil
}

func copyTags(tags map[string]string) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		out[k] = v
	}
	return out
}

// newAzureVersion makes up a version id in Key Vault's shape.
func newAzureVersion() string {
	return strings.ReplaceAll(newRequestID(), "-", "") // 16 random bytes in hex
}

func (id *azureIdentity) may(perm, vault string) bool {
	return slices.Contains(id.perms, perm) && (len(id.vaults) == 0 || slices.Contains(id.vaults, vault))
}

// azureErrorBody is Key Vault's error shape.
func azureErrorBody(code, msg string, inner string) map[string]any {
	e := map[string]any{"code": code, "message": msg}
	if inner != "" {
		e["innererror"] = map[string]string{"code": inner}
	}
	return map[string]any{"error": e}
}

func writeAzure(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Ms-Request-Id", newRequestID())
	w.Header().Set("X-Ms-Keyvault-Service-Version", "1.9.2000.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// azureHandler serves one vault.
func (s *Sandbox) azureHandler(vault string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveAzure(w, r, vault) })
}

func (s *Sandbox) serveAzure(w http.ResponseWriter, r *http.Request, vault string) {
	token := bearer(r.Header)
	req := &request{service: azureService, action: r.Method + " " + r.URL.Path, params: map[string]string{"vault": vault}, token: fingerprintOf(token), host: r.Host}
	// /secrets/{name}, /secrets/{name}/, /secrets/{name}/{version}, /secrets/{name}/versions
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	var name, version, perm string
	if len(parts) >= 2 && len(parts) <= 3 && parts[0] == "secrets" && parts[1] != "" {
		name = parts[1]
		if len(parts) == 3 {
			version = parts[2]
		}
		switch {
		case r.Method == http.MethodPut && len(parts) == 2:
			req.action, perm = "SecretSet", "set"
		case r.Method == http.MethodGet && version == "versions":
			req.action, perm, version = "SecretListVersions", "list", ""
		case r.Method == http.MethodGet:
			req.action, perm = "SecretGet", "get"
		case r.Method == http.MethodPatch:
			req.action, perm = "SecretUpdate", "set"
		}
	}
	if perm != "" {
		req.params["name"] = name
		if version != "" {
			req.params["version"] = version
		}
	}
	var body []byte
	if r.Method == http.MethodPut || r.Method == http.MethodPatch {
		var err error
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
			s.mu.Lock()
			s.recordLocked(req, http.StatusRequestEntityTooLarge, false)
			s.mu.Unlock()
			writeAzure(w, http.StatusRequestEntityTooLarge, azureErrorBody("BadParameter", "The request body is too large.", ""))
			return
		}
	}
	failure, ok := s.faultFor(r, req)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	answer := func(status int, effective bool, v any) {
		s.recordLocked(req, status, effective)
		writeAzure(w, status, v)
	}
	if failure != nil {
		if failure.code == "Throttling" {
			w.Header().Set("Retry-After", "1")
			answer(http.StatusTooManyRequests, false, azureErrorBody("Throttled", "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached", ""))
		} else {
			answer(http.StatusServiceUnavailable, false, azureErrorBody("ServiceUnavailable", "injected by the sandbox: service unavailable", ""))
		}
		return
	}
	st := s.azure
	challenge := fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="%s"`, st.tenant, azureResource)
	if token == "" {
		w.Header().Set("WWW-Authenticate", challenge)
		answer(http.StatusUnauthorized, false, azureErrorBody("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", ""))
		return
	}
	caller := st.identities[token]
	if caller == nil {
		w.Header().Set("WWW-Authenticate", challenge)
		answer(http.StatusUnauthorized, false, azureErrorBody("Unauthorized", "AKV10032: Invalid issuer. The token is not one the sandbox's seed gives an identity.", ""))
		return
	}
	req.params["identity"] = caller.name
	if perm == "" {
		answer(http.StatusNotFound, false, azureErrorBody("NotFound", fmt.Sprintf("The sandbox's Key Vault serves no %s %s.", r.Method, r.URL.Path), ""))
		return
	}
	if api := r.URL.Query().Get("api-version"); api == "" {
		answer(http.StatusBadRequest, false, azureErrorBody("BadParameter", "The 'api-version' query parameter is missing.", ""))
		return
	} else {
		req.params["api_version"] = api
	}
	if !caller.may(perm, vault) {
		answer(http.StatusForbidden, false, azureErrorBody("Forbidden", fmt.Sprintf("The user, group or application 'name=%s' does not have secrets %s permission on key vault '%s'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287", caller.name, perm, vault), "AccessDenied"))
		return
	}
	if !azureSecretName.MatchString(name) {
		answer(http.StatusBadRequest, false, azureErrorBody("BadParameter", "The request URI contains an invalid name: "+name, ""))
		return
	}
	v := st.vaults[vault]
	sec := v.secrets[name]
	notFound := func(what string) {
		answer(http.StatusNotFound, false, azureErrorBody("SecretNotFound", fmt.Sprintf("A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", what), ""))
	}
	// find returns the version asked for (the current one for "").
	find := func() *azureVersion {
		if sec == nil {
			return nil
		}
		if version == "" {
			return sec.versions[len(sec.versions)-1]
		}
		for _, ver := range sec.versions {
			if ver.id == version {
				return ver
			}
		}
		return nil
	}
	now := time.Now().UTC().Truncate(time.Second)
	switch req.action {
	case "SecretSet":
		var in struct {
			Value       *string            `json:"value"`
			ContentType string             `json:"contentType"`
			Tags        map[string]*string `json:"tags"`
			Attributes  *azureAttrsIn      `json:"attributes"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.Value == nil {
			answer(http.StatusBadRequest, false, azureErrorBody("BadParameter", "Property value is required and must be a string.", ""))
			return
		}
		tags, msg := azureTags(in.Tags)
		if msg != "" {
			answer(http.StatusBadRequest, false, azureErrorBody("BadParameter", msg, ""))
			return
		}
		ver := &azureVersion{id: newAzureVersion(), value: *in.Value, contentType: in.ContentType, tags: tags, enabled: true, created: now, updated: now}
		in.Attributes.apply(ver)
		if sec == nil {
			sec = &azureSecret{name: name}
			v.secrets[name] = sec
		}
		sec.versions = append(sec.versions, ver)
		req.params["version"] = ver.id
		azureLogProps(req, ver)
		answer(http.StatusOK, true, azureBundle(r.Host, name, ver, true))
	case "SecretGet":
		ver := find()
		if ver == nil {
			notFound(strings.TrimSuffix(name+"/"+version, "/"))
			return
		}
		req.params["version"] = ver.id
		if !ver.enabled {
			answer(http.StatusForbidden, false, azureErrorBody("Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled"))
			return
		}
		azureLogProps(req, ver)
		answer(http.StatusOK, false, azureBundle(r.Host, name, ver, true))
	case "SecretListVersions":
		if sec == nil {
			notFound(name)
			return
		}
		q := r.URL.Query()
		size := azureMaxResults
		if m := q.Get("maxresults"); m != "" {
			n, err := strconv.Atoi(m)
			if err != nil || n < 1 || n > azureMaxResults {
				answer(http.StatusBadRequest, false, azureErrorBody("BadParameter", fmt.Sprintf("maxresults must be between 1 and %d.", azureMaxResults), ""))
				return
			}
			size = n
		}
		start := 0
		if tok := q.Get("$skiptoken"); tok != "" {
			raw, err := base64.RawURLEncoding.DecodeString(tok)
			n, err2 := strconv.Atoi(strings.TrimPrefix(string(raw), "skip:"))
			if err != nil || err2 != nil || n < 0 || n > len(sec.versions) {
				answer(http.StatusBadRequest, false, azureErrorBody("BadParameter", "The $skiptoken is not valid.", ""))
				return
			}
			start = n
		}
		end := min(start+size, len(sec.versions))
		items := []any{}
		var listed []string
		for _, ver := range sec.versions[start:end] {
			items = append(items, azureBundle(r.Host, name, ver, false))
			listed = append(listed, ver.id)
		}
		req.params["versions"] = strings.Join(listed, ",")
		var next any
		if end < len(sec.versions) {
			nq := url.Values{}
			nq.Set("api-version", q.Get("api-version"))
			nq.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte("skip:"+strconv.Itoa(end))))
			nq.Set("maxresults", strconv.Itoa(size))
			next = "https://" + r.Host + "/secrets/" + name + "/versions?" + nq.Encode()
		}
		answer(http.StatusOK, false, map[string]any{"value": items, "nextLink": next})
	case "SecretUpdate":
		ver := find()
		if ver == nil {
			notFound(strings.TrimSuffix(name+"/"+version, "/"))
			return
		}
		req.params["version"] = ver.id
		var in struct {
			ContentType *string            `json:"contentType"`
			Tags        map[string]*string `json:"tags"`
			Attributes  *azureAttrsIn      `json:"attributes"`
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := json.Unmarshal(body, &in); err != nil {
				answer(http.StatusBadRequest, false, azureErrorBody("BadParameter", "The request body is not valid JSON.", ""))
				return
			}
		}
		var tags map[string]string
		if in.Tags != nil {
			var msg string
			if tags, msg = azureTags(in.Tags); msg != "" {
				answer(http.StatusBadRequest, false, azureErrorBody("BadParameter", msg, ""))
				return
			}
			ver.tags = tags
		}
		if in.ContentType != nil {
			ver.contentType = *in.ContentType
		}
		in.Attributes.apply(ver)
		ver.updated = now
		azureLogProps(req, ver)
		answer(http.StatusOK, true, azureBundle(r.Host, name, ver, false))
	}
}

// azureAttrsIn is the attributes a set or an update may give.
type azureAttrsIn struct {
	Enabled *bool  `json:"enabled"`
	Exp     *int64 `json:"exp"`
	Nbf     *int64 `json:"nbf"`
}

func (a *azureAttrsIn) apply(ver *azureVersion) {
	if a == nil {
		return
	}
	if a.Enabled != nil {
		ver.enabled = *a.Enabled
	}
	if a.Exp != nil {
		t := time.Unix(*a.Exp, 0).UTC()
		ver.exp = &t
	}
	if a.Nbf != nil {
		t := time.Unix(*a.Nbf, 0).UTC()
		ver.nbf = &t
	}
}

// azureTags checks tags as Key Vault does, or says what is wrong.
func azureTags(in map[string]*string) (map[string]string, string) {
	if len(in) > azureMaxTags {
		return nil, fmt.Sprintf("A secret may have at most %d tags; got %d.", azureMaxTags, len(in))
	}
	out := map[string]string{}
	for k, v := range in {
		val := ""
		if v != nil {
			val = *v
		}
		if k == "" || len(k) > 512 || len(val) > 256 {
			return nil, "Tag names must be 1 to 512 characters and values at most 256."
		}
		out[k] = val
	}
	return out, ""
}

// azureLogProps puts what the call log may say of a version: its tags and
// content type, never its value.
func azureLogProps(req *request, ver *azureVersion) {
	if len(ver.tags) > 0 {
		data, _ := json.Marshal(ver.tags) // map keys sorted
		req.params["tags"] = string(data)
	}
	if ver.contentType != "" {
		req.params["content_type"] = ver.contentType
	}
}

// azureBundle is Key Vault's SecretBundle (withValue) or SecretItem.
func azureBundle(host, name string, ver *azureVersion, withValue bool) map[string]any {
	attrs := map[string]any{"enabled": ver.enabled, "created": ver.created.Unix(), "updated": ver.updated.Unix(), "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}
	if ver.exp != nil {
		attrs["exp"] = ver.exp.Unix()
	}
	if ver.nbf != nil {
		attrs["nbf"] = ver.nbf.Unix()
	}
	out := map[string]any{"id": "https://" + host + "/secrets/" + name + "/" + ver.id, "attributes": attrs}
	if withValue {
		out["value"] = ver.value
	}
	if ver.contentType != "" {
		out["contentType"] = ver.contentType
	}
	if len(ver.tags) > 0 {
		out["tags"] = ver.tags
	}
	return out
}

// AzureSecretVersion is one version of a Key Vault secret, with its value:
// for tests only (State and the call log never hold a value).
type AzureSecretVersion struct {
	Version     string
	Value       string
	ContentType string
	Tags        map[string]string
	Enabled     bool
	Created     time.Time
	Updated     time.Time
}

// AzureSecret returns the versions of a Key Vault secret, oldest first,
// with their values (for tests), or nil when there is no such secret.
func (s *Sandbox) AzureSecret(vault, name string) []AzureSecretVersion {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.azure == nil || s.azure.vaults[vault] == nil || s.azure.vaults[vault].secrets[name] == nil {
		return nil
	}
	var out []AzureSecretVersion
	for _, ver := range s.azure.vaults[vault].secrets[name].versions {
		out = append(out, AzureSecretVersion{Version: ver.id, Value: ver.value, ContentType: ver.contentType, Tags: copyTags(ver.tags), Enabled: ver.enabled, Created: ver.created, Updated: ver.updated})
	}
	return out
}

// AzureVaultView is a key vault in the state: secrets and versions,
// never values.
type AzureVaultView struct {
	Name    string            `json:"name"`
	URL     string            `json:"url,omitempty"`
	Secrets []AzureSecretView `json:"secrets"`
}

// AzureSecretView is a secret's versions, oldest first.
type AzureSecretView struct {
	Name     string             `json:"name"`
	Versions []AzureVersionView `json:"versions"`
}

// AzureVersionView is a version without its value.
type AzureVersionView struct {
	Version     string            `json:"version"`
	ContentType string            `json:"content_type,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Enabled     bool              `json:"enabled"`
	Created     time.Time         `json:"created"`
	Updated     time.Time         `json:"updated"`
}

// azureViewLocked is the Key Vault part of State; s.mu is held.
func (s *Sandbox) azureViewLocked() []AzureVaultView {
	if s.azure == nil {
		return nil
	}
	var out []AzureVaultView
	for _, name := range s.azure.order {
		v := s.azure.vaults[name]
		vv := AzureVaultView{Name: name, URL: s.azure.urls[name], Secrets: []AzureSecretView{}}
		for _, sn := range sortedKeys(v.secrets) {
			sv := AzureSecretView{Name: sn}
			for _, ver := range v.secrets[sn].versions {
				sv.Versions = append(sv.Versions, AzureVersionView{Version: ver.id, ContentType: ver.contentType, Tags: copyTags(ver.tags), Enabled: ver.enabled, Created: ver.created, Updated: ver.updated})
			}
			vv.Secrets = append(vv.Secrets, sv)
		}
		out = append(out, vv)
	}
	return out
}
