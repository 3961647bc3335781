package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HashiCorp Vault's KV secrets engine, version 2, under /vault/v1/<mount>/
// beside the token endpoints of tokens_vault.go (serveVaultKV in
// vault_kv_http.go answers it). The mounts and their secrets come from the
// seed's vault: section; every call needs a live seeded Vault token, and
// when the seed has vault.policies, a policy of the token must grant the
// capability on the path, as Vault's ACLs do. The call log and the state
// name mounts, paths and versions, never a secret's data.

// SeedVault is the seed's HashiCorp Vault: KV version 2 mounts, their
// secrets and the policies Vault tokens (tokens: with provider vault, whose
// scopes are policy names) are checked against.
type SeedVault struct {
	// Mounts are KV v2 mounts with their configuration; a mount a KV entry
	// names is mounted even when it is not listed here.
	Mounts []SeedVaultMount `yaml:"mounts" json:"mounts"`
	// KV are secrets, each with its versions.
	KV []SeedVaultKV `yaml:"kv" json:"kv"`
	// Policies are ACL policies. With none, any live Vault token may do
	// anything on the KV mounts; with some, a token needs a policy that
	// grants the capability (the root policy grants all).
	Policies []SeedVaultPolicy `yaml:"policies" json:"policies"`
}

// SeedVaultMount is a KV v2 mount and its configuration.
type SeedVaultMount struct {
	Path string `yaml:"path" json:"path"` // such as secret or team/kv
	// CASRequired makes every write of the mount give options.cas.
	CASRequired bool `yaml:"cas_required" json:"cas_required"`
	// MaxVersions is how many versions of a key are kept (default 10).
	MaxVersions int `yaml:"max_versions" json:"max_versions"`
}

// SeedVaultKV is a secret of a KV v2 mount.
type SeedVaultKV struct {
	Mount string `yaml:"mount" json:"mount"`
	Path  string `yaml:"path" json:"path"`
	// Data is the current version's data; Versions, instead, are the data
	// of every version from 1 on.
	Data     map[string]any   `yaml:"data" json:"data"`
	Versions []map[string]any `yaml:"versions" json:"versions"`
	// CustomMetadata, CASRequired and MaxVersions are the key's metadata.
	CustomMetadata map[string]string `yaml:"custom_metadata" json:"custom_metadata"`
	CASRequired    bool              `yaml:"cas_required" json:"cas_required"`
	MaxVersions    int               `yaml:"max_versions" json:"max_versions"`
}

// SeedVaultPolicy is a Vault ACL policy, as its HCL says it: paths (globs
// with a trailing * and + for one segment) and their capabilities.
type SeedVaultPolicy struct {
	Name  string                `yaml:"name" json:"name"`
	Paths []SeedVaultPolicyPath `yaml:"paths" json:"paths"`
}

// SeedVaultPolicyPath is a path stanza of a policy.
type SeedVaultPolicyPath struct {
	Path         string   `yaml:"path" json:"path"` // such as secret/data/ci/*
	Capabilities []string `yaml:"capabilities" json:"capabilities"`
}

var vaultCapabilities = []string{"create", "read", "update", "patch", "delete", "list", "sudo", "deny"}

const vaultKVDefaultMaxVersions = 10

func (v *SeedVault) validate() error {
	if v == nil {
		return nil
	}
	at := func(path, format string, args ...any) error {
		return &seedPathError{path, fmt.Errorf("vault: "+format, args...)}
	}
	mounts := map[string]bool{}
	for i, m := range v.Mounts {
		if !validVaultPath(m.Path) || mounts[m.Path] {
			return at(fmt.Sprintf("$.vault.mounts[%d].path", i), "mount path %q is empty, repeated, or starts or ends with /", m.Path)
		}
		mounts[m.Path] = true
		if m.MaxVersions < 0 {
			return at(fmt.Sprintf("$.vault.mounts[%d].max_versions", i), "max_versions %d is negative", m.MaxVersions)
		}
	}
	keys := map[string]bool{}
	for i, kv := range v.KV {
		where := fmt.Sprintf("$.vault.kv[%d]", i)
		if !validVaultPath(kv.Mount) {
			return at(where+".mount", "kv[%d]: mount %q is empty or starts or ends with /", i, kv.Mount)
		}
		if !validVaultPath(kv.Path) {
			return at(where+".path", "kv[%d]: path %q is empty or starts or ends with /", i, kv.Path)
		}
		if keys[kv.Mount+"/"+kv.Path] {
			return at(where+".path", "kv[%d]: %s/%s is repeated", i, kv.Mount, kv.Path)
		}
		keys[kv.Mount+"/"+kv.Path] = true
		if kv.Data != nil && kv.Versions != nil {
			return at(where+".versions", "kv[%d]: give data (one version) or versions, not both", i)
		}
		if kv.MaxVersions < 0 {
			return at(where+".max_versions", "kv[%d]: max_versions %d is negative", i, kv.MaxVersions)
		}
		for j, d := range kv.versions() {
			// Never the data in the error: it may be a real secret by mistake.
			if _, err := normalizeKVData(d); err != nil {
				return at(where, "kv[%d]: version %d's data is not a JSON object", i, j+1)
			}
		}
	}
	names := map[string]bool{}
	for i, p := range v.Policies {
		if p.Name == "" || names[p.Name] {
			return at(fmt.Sprintf("$.vault.policies[%d].name", i), "policy name %q is empty or repeated", p.Name)
		}
		names[p.Name] = true
		for j, rule := range p.Paths {
			if rule.Path == "" || strings.Contains(strings.TrimSuffix(rule.Path, "*"), "*") {
				return at(fmt.Sprintf("$.vault.policies[%d].paths[%d].path", i, j), "policy %s: path %q is empty or has * other than at its end", p.Name, rule.Path)
			}
			for _, c := range rule.Capabilities {
				if !slices.Contains(vaultCapabilities, c) {
					return at(fmt.Sprintf("$.vault.policies[%d].paths[%d].capabilities", i, j), "policy %s: capability %q is not one of %s", p.Name, c, strings.Join(vaultCapabilities, ", "))
				}
			}
		}
	}
	return nil
}

func validVaultPath(p string) bool {
	// auth/, sys/ and identity/ are Vault's own (the token endpoints).
	first, _, _ := strings.Cut(p, "/")
	if first == "auth" || first == "sys" || first == "identity" {
		return false
	}
	return p != "" && !strings.HasPrefix(p, "/") && !strings.HasSuffix(p, "/") && !strings.Contains(p, "//")
}

func (kv SeedVaultKV) versions() []map[string]any {
	if kv.Versions != nil {
		return kv.Versions
	}
	if kv.Data != nil {
		return []map[string]any{kv.Data}
	}
	return nil
}

// normalizeKVData is data as JSON reads it back (numbers as json.Number),
// a deep copy that no caller shares.
func normalizeKVData(d any) (map[string]any, error) {
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return decodeKVObject(raw)
}

func decodeKVObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return out, nil
}

// vaultKVState is every KV v2 mount's secrets, guarded by Sandbox.mu.
type vaultKVState struct {
	mounts map[string]*kvMount // by path; fixed after New
	// policies are the seeded ACL policies by name; nil: no checks.
	policies map[string]SeedVaultPolicy
}

type kvMount struct {
	path        string
	casRequired bool
	maxVersions int
	keys        map[string]*kvKey
}

type kvKey struct {
	created, updated   time.Time
	currentVersion     int
	casRequired        bool
	maxVersions        int
	deleteVersionAfter time.Duration
	customMetadata     map[string]string
	versions           []*kvVersion // by number, oldest kept first
	// writes are the versions made through the API, in order.
	writes []int
}

type kvVersion struct {
	number    int
	data      map[string]any // nil once destroyed
	created   time.Time
	deleted   time.Time
	destroyed bool
}

func newVaultKVState(seed *SeedVault) *vaultKVState {
	st := &vaultKVState{mounts: map[string]*kvMount{}}
	if seed == nil {
		return st
	}
	mount := func(path string) *kvMount {
		m := st.mounts[path]
		if m == nil {
			m = &kvMount{path: path, keys: map[string]*kvKey{}}
			st.mounts[path] = m
		}
		return m
	}
	for _, sm := range seed.Mounts {
		m := mount(sm.Path)
		m.casRequired, m.maxVersions = sm.CASRequired, sm.MaxVersions
	}
	now := time.Now().UTC()
	for _, skv := range seed.KV {
		m := mount(skv.Mount)
		k := &kvKey{created: now, updated: now, casRequired: skv.CASRequired, maxVersions: skv.MaxVersions, customMetadata: maps.Clone(skv.CustomMetadata)}
		for _, d := range skv.versions() {
			data, _ := normalizeKVData(d) // validated
			k.addVersion(data, now, m)
		}
		m.keys[skv.Path] = k
	}
	if len(seed.Policies) > 0 {
		st.policies = map[string]SeedVaultPolicy{}
		for _, p := range seed.Policies {
			st.policies[p.Name] = p
		}
	}
	return st
}

// mountOf finds the mount a path under v1/ is in (the longest that
// matches) and the rest of the path after it.
func (st *vaultKVState) mountOf(path string) (*kvMount, string) {
	var best *kvMount
	for p, m := range st.mounts {
		if strings.HasPrefix(path, p+"/") && (best == nil || len(p) > len(best.path)) {
			best = m
		}
	}
	if best == nil {
		return nil, ""
	}
	return best, strings.TrimPrefix(path, best.path+"/")
}

// addVersion adds a version of data and drops the oldest beyond the
// versions to keep; it returns the new version's number.
func (k *kvKey) addVersion(data map[string]any, now time.Time, m *kvMount) int {
	k.currentVersion++
	k.versions = append(k.versions, &kvVersion{number: k.currentVersion, data: data, created: now})
	k.updated = now
	keep := k.maxVersions
	if keep == 0 || (m.maxVersions > 0 && m.maxVersions < keep) {
		keep = m.maxVersions
	}
	if keep == 0 {
		keep = vaultKVDefaultMaxVersions
	}
	if len(k.versions) > keep {
		k.versions = slices.Clone(k.versions[len(k.versions)-keep:])
	}
	return k.currentVersion
}

func (k *kvKey) version(n int) *kvVersion {
	for _, v := range k.versions {
		if v.number == n {
			return v
		}
	}
	return nil
}

func (k *kvKey) oldestVersion() int {
	if len(k.versions) == 0 {
		return 0
	}
	return k.versions[0].number
}

// allowed reports whether a token with policies may use capability on
// path (the path under v1/, such as secret/data/ci/aws).
func (st *vaultKVState) allowed(policies []string, path, capability string) bool {
	if st.policies == nil || slices.Contains(policies, "root") {
		return true
	}
	// Vault merges the stanzas of a token's policies by path, then the
	// most specific path that matches decides.
	merged := map[string][]string{}
	for _, name := range policies {
		for _, rule := range st.policies[name].Paths {
			merged[rule.Path] = append(merged[rule.Path], rule.Capabilities...)
		}
	}
	best := ""
	found := false
	for pattern := range merged {
		if vaultPolicyMatch(pattern, path) && (!found || vaultMoreSpecific(pattern, best)) {
			best, found = pattern, true
		}
	}
	if !found || slices.Contains(merged[best], "deny") {
		return false
	}
	return slices.Contains(merged[best], capability)
}

func vaultPolicyMatch(pattern, path string) bool {
	glob := strings.HasSuffix(pattern, "*")
	var b strings.Builder
	b.WriteString("^")
	for i, seg := range strings.Split(strings.TrimSuffix(pattern, "*"), "/") {
		if i > 0 {
			b.WriteString("/")
		}
		if seg == "+" {
			b.WriteString("[^/]+")
		} else {
			b.WriteString(regexp.QuoteMeta(seg))
		}
	}
	if glob {
		b.WriteString(".*")
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	return err == nil && re.MatchString(path)
}

// vaultMoreSpecific reports whether policy path a takes priority over b,
// by Vault's rules: the later the first wildcard, the higher; a trailing *
// lower; more + segments lower; shorter lower; then lexical order.
func vaultMoreSpecific(a, b string) bool {
	firstWild := func(p string) int {
		i := strings.IndexAny(p, "+*")
		if i < 0 {
			return len(p) + 1
		}
		return i
	}
	if fa, fb := firstWild(a), firstWild(b); fa != fb {
		return fa > fb
	}
	if ga, gb := strings.HasSuffix(a, "*"), strings.HasSuffix(b, "*"); ga != gb {
		return !ga
	}
	if pa, pb := strings.Count(a, "+"), strings.Count(b, "+"); pa != pb {
		return pa < pb
	}
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

// VaultMountView is a KV mount's secrets: paths and versions, never data.
type VaultMountView struct {
	Mount   string        `json:"mount"`
	Secrets []VaultKVView `json:"secrets"`
}

// VaultKVView is a secret's path and versions.
type VaultKVView struct {
	Path           string               `json:"path"`
	CurrentVersion int                  `json:"current_version"`
	Versions       []VaultKVVersionView `json:"versions"`
}

// VaultKVVersionView is a version's number and whether it was deleted or
// destroyed.
type VaultKVVersionView struct {
	Version   int  `json:"version"`
	Deleted   bool `json:"deleted,omitempty"`
	Destroyed bool `json:"destroyed,omitempty"`
}

func (st *vaultKVState) viewLocked() []VaultMountView {
	var out []VaultMountView
	for _, mp := range sortedKeys(st.mounts) {
		m := st.mounts[mp]
		mv := VaultMountView{Mount: mp, Secrets: []VaultKVView{}}
		for _, p := range sortedKeys(m.keys) {
			k := m.keys[p]
			kv := VaultKVView{Path: p, CurrentVersion: k.currentVersion, Versions: []VaultKVVersionView{}}
			for _, v := range k.versions {
				kv.Versions = append(kv.Versions, VaultKVVersionView{Version: v.number, Deleted: !v.deleted.IsZero(), Destroyed: v.destroyed})
			}
			mv.Secrets = append(mv.Secrets, kv)
		}
		out = append(out, mv)
	}
	return out
}

// VaultKVSecret is a KV v2 secret with the data of its versions: for
// tests that must read a written value back, never for logs or views.
type VaultKVSecret struct {
	Mount, Path    string
	CurrentVersion int
	OldestVersion  int
	CASRequired    bool
	MaxVersions    int
	CustomMetadata map[string]string
	Versions       []VaultKVVersion // oldest first
}

// VaultKVVersion is a version of a secret, with its data (nil once
// destroyed).
type VaultKVVersion struct {
	Version   int
	Data      map[string]any
	Created   time.Time
	Deleted   time.Time // zero unless soft-deleted
	Destroyed bool
}

// VaultKV returns the secret at path of a KV v2 mount, with the data of
// every version kept: test-only, since it holds secret values.
func (s *Sandbox) VaultKV(mount, path string) (VaultKVSecret, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.vaultKV.mounts[mount]
	if m == nil || m.keys[path] == nil {
		return VaultKVSecret{}, false
	}
	k := m.keys[path]
	out := VaultKVSecret{Mount: mount, Path: path, CurrentVersion: k.currentVersion, OldestVersion: k.oldestVersion(),
		CASRequired: k.casRequired, MaxVersions: k.maxVersions, CustomMetadata: maps.Clone(k.customMetadata)}
	for _, v := range k.versions {
		var data map[string]any
		if v.data != nil {
			data, _ = normalizeKVData(v.data)
		}
		out.Versions = append(out.Versions, VaultKVVersion{Version: v.number, Data: data, Created: v.created, Deleted: v.deleted, Destroyed: v.destroyed})
	}
	return out, true
}

// VaultKVWrites returns the versions that writes through the API (POST,
// PUT or PATCH of <mount>/data/<path>) created at path, in order: a
// rotation that adds one version shows one.
func (s *Sandbox) VaultKVWrites(mount, path string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.vaultKV.mounts[mount]
	if m == nil || m.keys[path] == nil {
		return nil
	}
	return slices.Clone(m.keys[path].writes)
}

// kvInt reads an integer option or field the way Vault's framework does:
// a JSON number or a string of one.
func kvInt(v any) (int, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.Atoi(n.String())
		return i, err == nil
	case string:
		i, err := strconv.Atoi(n)
		return i, err == nil
	case float64:
		return int(n), n == float64(int(n))
	}
	return 0, false
}
