package sandbox

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
)

var (
	plantedVaultKVRoot     = "hvs." + planted.NoDigit[:35] // policy root
	plantedVaultKVReadOnly = "hvs." + planted.InPath       // policy readonly
	plantedVaultKVRevoked  = "hvs." + planted.AfterKeyID   // policy ci, revoked
	plantedVaultKVOther    = "hvs." + planted.InURL[:38]   // not seeded
)

const vaultKVSeedYAML = `
accounts:
  - id: "111122223333"
    users: [` + ResponderSeedUser + `]
tokens:
  - {provider: vault, value: VAULT_CI, owner: token-ci, scopes: [default, ci]}
  - {provider: vault, value: VAULT_ROOT, owner: operator, scopes: [root]}
  - {provider: vault, value: VAULT_READONLY, owner: reader, scopes: [readonly]}
  - {provider: vault, value: VAULT_REVOKED, owner: old-ci, scopes: [ci], active: false}
vault:
  mounts:
    - {path: secret}
    - {path: team/strict, cas_required: true}
  kv:
    - mount: secret
      path: ci/aws
      data: {aws_access_key_id: AKIAOLDOLDOLDOLDOLD1, aws_secret_access_key: SECRET_OLD}
      custom_metadata: {owner: platform}
    - mount: secret
      path: ci/history
      versions: [{n: 1}, {n: 2}, {n: 3}]
      max_versions: 3
    - {mount: team/strict, path: app, data: {password: SECRET_OLD}}
  policies:
    - name: ci
      paths:
        - {path: "secret/data/ci/*", capabilities: [create, read, update, patch, delete]}
        - {path: "secret/metadata/ci/*", capabilities: [create, read, update, patch, list, delete]}
        - {path: "secret/+/ci/*", capabilities: [update]}
        - {path: "secret/+/shared/app", capabilities: [create, read, update]}
        - {path: "secret/data/ci/locked", capabilities: [deny]}
        - {path: "team/strict/data/*", capabilities: [create, read, update]}
    - name: readonly
      paths:
        - {path: "secret/data/*", capabilities: [read]}
        - {path: "secret/metadata/*", capabilities: [read, list]}
`

func vaultKVSandbox(t *testing.T) (*Sandbox, string) {
	t.Helper()
	yaml := strings.NewReplacer("VAULT_CI", planted.VaultService, "VAULT_ROOT", plantedVaultKVRoot,
		"VAULT_READONLY", plantedVaultKVReadOnly, "VAULT_REVOKED", plantedVaultKVRevoked,
		"SECRET_OLD", planted.Random).Replace(vaultKVSeedYAML)
	seed, err := ParseSeed("seed.yaml", []byte(yaml))
	require.NoError(t, err)
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv.URL
}

func TestVaultKVPutGetCheckAndSet(t *testing.T) {
	t.Parallel()
	sb, url := vaultKVSandbox(t)
	ctx := context.Background()
	kv := vaultClient(t, url, planted.VaultService).KVv2("secret")

	got, err := kv.Get(ctx, "ci/aws")
	require.NoError(t, err)
	require.Equal(t, planted.Random, got.Data["aws_secret_access_key"])
	require.Equal(t, 1, got.VersionMetadata.Version)
	require.Equal(t, map[string]any{"owner": "platform"}, got.CustomMetadata)

	// A write with check-and-set on the version read.
	put, err := kv.Put(ctx, "ci/aws", map[string]any{"aws_access_key_id": "AKIANEWNEWNEWNEWNEW2", "aws_secret_access_key": planted.NoDigit}, vault.WithCheckAndSet(1))
	require.NoError(t, err)
	require.Equal(t, 2, put.VersionMetadata.Version)
	require.False(t, put.VersionMetadata.CreatedTime.IsZero())
	require.Equal(t, map[string]any{"owner": "platform"}, put.CustomMetadata)

	// The same write again is detected: the version moved on.
	_, err = kv.Put(ctx, "ci/aws", map[string]any{"aws_secret_access_key": planted.NoDigit}, vault.WithCheckAndSet(1))
	requireVaultError(t, err, http.StatusBadRequest, "check-and-set parameter did not match the current version")
	_, err = kv.Put(ctx, "ci/aws", map[string]any{"x": "y"}, vault.WithCheckAndSet(0))
	requireVaultError(t, err, http.StatusBadRequest, "check-and-set parameter did not match the current version")

	// cas 0 creates only what is absent.
	created, err := kv.Put(ctx, "ci/new", map[string]any{"k": "v"}, vault.WithCheckAndSet(0))
	require.NoError(t, err)
	require.Equal(t, 1, created.VersionMetadata.Version)
	require.Nil(t, created.CustomMetadata)

	latest, err := kv.Get(ctx, "ci/aws")
	require.NoError(t, err)
	require.Equal(t, 2, latest.VersionMetadata.Version)
	require.Equal(t, planted.NoDigit, latest.Data["aws_secret_access_key"])
	old, err := kv.GetVersion(ctx, "ci/aws", 1)
	require.NoError(t, err)
	require.Equal(t, planted.Random, old.Data["aws_secret_access_key"])
	_, err = kv.GetVersion(ctx, "ci/aws", 7)
	require.ErrorIs(t, err, vault.ErrSecretNotFound)

	// Custom metadata recording the run, without a new version.
	require.NoError(t, kv.PutMetadata(ctx, "ci/aws", vault.KVMetadataPutInput{CustomMetadata: map[string]any{"owner": "platform", "stanch_run": "run-1"}}))
	require.NoError(t, kv.PatchMetadata(ctx, "ci/aws", vault.KVMetadataPatchInput{CustomMetadata: map[string]any{"owner": nil, "rotated_by": "stanch"}}))
	md, err := kv.GetMetadata(ctx, "ci/aws")
	require.NoError(t, err)
	require.Equal(t, 2, md.CurrentVersion)
	require.Equal(t, 1, md.OldestVersion)
	require.Equal(t, map[string]any{"stanch_run": "run-1", "rotated_by": "stanch"}, md.CustomMetadata)
	require.Len(t, md.Versions, 2)
	require.Equal(t, 2, md.Versions["2"].Version)
	require.True(t, md.Versions["1"].DeletionTime.IsZero())
	require.False(t, md.CASRequired)
	require.Zero(t, md.DeleteVersionAfter)

	// A merge patch (Vault 1.9+) makes version 3 from version 2.
	patched, err := kv.Patch(ctx, "ci/aws", map[string]any{"aws_access_key_id": "AKIAPATCHPATCHPATCH3"}, vault.WithCheckAndSet(2))
	require.NoError(t, err)
	require.Equal(t, 3, patched.VersionMetadata.Version)
	_, err = kv.Patch(ctx, "ci/missing", map[string]any{"a": "b"})
	require.ErrorIs(t, err, vault.ErrSecretNotFound)
	rw, err := kv.Patch(ctx, "ci/aws", map[string]any{"note": "rw"}, vault.WithMergeMethod(vault.KVMergeMethodReadWrite))
	require.NoError(t, err)
	require.Equal(t, 4, rw.VersionMetadata.Version)

	stored, ok := sb.VaultKV("secret", "ci/aws")
	require.True(t, ok)
	require.Equal(t, 4, stored.CurrentVersion)
	require.Len(t, stored.Versions, 4)
	require.Equal(t, map[string]any{"aws_access_key_id": "AKIAPATCHPATCHPATCH3", "aws_secret_access_key": planted.NoDigit, "note": "rw"}, stored.Versions[3].Data)
	require.Equal(t, map[string]string{"stanch_run": "run-1", "rotated_by": "stanch"}, stored.CustomMetadata)
	require.Equal(t, []int{2, 3, 4}, sb.VaultKVWrites("secret", "ci/aws"))
	require.Equal(t, []int{1}, sb.VaultKVWrites("secret", "ci/new"))
	require.Nil(t, sb.VaultKVWrites("secret", "ci/none"))

	puts := tokenCalls(sb, "vault", "KVPut")
	require.Equal(t, map[string]string{"mount": "secret", "path": "ci/aws", "cas": "1", "version": "2", "data_keys": "aws_access_key_id,aws_secret_access_key"}, puts[0].Params)
	require.True(t, puts[0].Effective)
	require.Equal(t, http.StatusBadRequest, puts[1].Status)
	require.False(t, puts[1].Effective)
	requireNoTokenInLog(t, sb, url)
}

func TestVaultKVWireFormat(t *testing.T) {
	t.Parallel()
	_, url := vaultKVSandbox(t)
	h := map[string]string{"X-Vault-Token": planted.VaultService}

	res, body := doRequest(t, http.MethodGet, url+"/vault/v1/secret/data/ci/nothing", h, "")
	require.Equal(t, http.StatusNotFound, res.StatusCode)
	require.Equal(t, map[string]any{"errors": []any{}}, body)
	res, body = doRequest(t, http.MethodGet, url+"/vault/v1/secret/metadata/ci/nothing", h, "")
	require.Equal(t, http.StatusNotFound, res.StatusCode)
	require.Equal(t, map[string]any{"errors": []any{}}, body)

	res, body = doRequest(t, http.MethodPost, url+"/vault/v1/secret/data/ci/aws", h, `{"options":{"cas":5},"data":{"a":"b"}}`)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	require.Equal(t, map[string]any{"errors": []any{"check-and-set parameter did not match the current version"}}, body)
	res, body = doRequest(t, http.MethodPut, url+"/vault/v1/secret/data/ci/aws", h, `{"options":{"cas":1},"data":{"a":"b"}}`)
	require.Equal(t, http.StatusOK, res.StatusCode)
	data := body["data"].(map[string]any)
	require.Equal(t, []string{"created_time", "custom_metadata", "deletion_time", "destroyed", "version"}, sortedKeys(data))
	require.Equal(t, float64(2), data["version"])
	require.Equal(t, "", data["deletion_time"])
	require.Equal(t, "kv", body["mount_type"])

	res, body = doRequest(t, http.MethodGet, url+"/vault/v1/secret/metadata/ci/aws", h, "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	md := body["data"].(map[string]any)
	require.Equal(t, []string{"cas_required", "created_time", "current_version", "custom_metadata", "delete_version_after", "max_versions", "oldest_version", "updated_time", "versions"}, sortedKeys(md))
	require.Equal(t, float64(2), md["current_version"])
	require.Equal(t, "0s", md["delete_version_after"])
	require.Equal(t, []string{"1", "2"}, sortedKeys(md["versions"].(map[string]any)))

	// A metadata write makes no version; a PATCH needs merge-patch JSON.
	res, _ = doRequest(t, http.MethodPost, url+"/vault/v1/secret/metadata/ci/aws", h, `{"custom_metadata":{"run":"r1"}}`)
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	res, _ = doRequest(t, http.MethodPatch, url+"/vault/v1/secret/data/ci/aws", h, `{"data":{"a":"c"}}`)
	require.Equal(t, http.StatusUnsupportedMediaType, res.StatusCode)
	res, body = doRequest(t, http.MethodGet, url+"/vault/v1/secret/data/ci/aws?version=1", h, "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, float64(1), body["data"].(map[string]any)["metadata"].(map[string]any)["version"])
	require.Equal(t, map[string]any{"run": "r1"}, body["data"].(map[string]any)["metadata"].(map[string]any)["custom_metadata"])

	// Garbage and wrong methods.
	res, _ = doRequest(t, http.MethodPost, url+"/vault/v1/secret/data/ci/aws", h, `{"data":`)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	res, body = doRequest(t, http.MethodPost, url+"/vault/v1/secret/data/ci/aws", h, `{"options":{}}`)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	require.Equal(t, map[string]any{"errors": []any{"no data provided"}}, body)
	res, _ = doRequest(t, http.MethodGet, url+"/vault/v1/secret/delete/ci/aws", h, "")
	require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	// A path outside every mount is still Vault's 404 for no route.
	res, _ = doRequest(t, http.MethodGet, url+"/vault/v1/nomount/data/x", h, "")
	require.Equal(t, http.StatusNotFound, res.StatusCode)
}

func TestVaultKVDeleteUndeleteDestroyList(t *testing.T) {
	t.Parallel()
	sb, url := vaultKVSandbox(t)
	ctx := context.Background()
	c := vaultClient(t, url, planted.VaultService)
	kv := c.KVv2("secret")

	_, err := kv.Get(ctx, "ci/missing")
	require.ErrorIs(t, err, vault.ErrSecretNotFound)
	_, err = kv.GetMetadata(ctx, "ci/missing")
	require.ErrorIs(t, err, vault.ErrSecretNotFound)

	// A soft delete hides the latest version; its metadata says when.
	require.NoError(t, kv.Delete(ctx, "ci/aws"))
	deleted, err := kv.Get(ctx, "ci/aws")
	require.NoError(t, err)
	require.Nil(t, deleted.Data)
	require.False(t, deleted.VersionMetadata.DeletionTime.IsZero())
	require.NoError(t, kv.Undelete(ctx, "ci/aws", []int{1}))
	back, err := kv.Get(ctx, "ci/aws")
	require.NoError(t, err)
	require.Equal(t, planted.Random, back.Data["aws_secret_access_key"])

	// Destroyed data is gone for good, in the sandbox too.
	require.NoError(t, kv.Destroy(ctx, "ci/aws", []int{1}))
	gone, err := kv.Get(ctx, "ci/aws")
	require.NoError(t, err)
	require.Nil(t, gone.Data)
	require.True(t, gone.VersionMetadata.Destroyed)
	stored, _ := sb.VaultKV("secret", "ci/aws")
	require.Nil(t, stored.Versions[0].Data)
	// Its version still counts for check-and-set.
	_, err = kv.Put(ctx, "ci/aws", map[string]any{"k": "v"}, vault.WithCheckAndSet(0))
	requireVaultError(t, err, http.StatusBadRequest, "check-and-set parameter did not match the current version")

	// max_versions 3: a fourth version drops the first.
	hist, err := kv.Put(ctx, "ci/history", map[string]any{"n": 4}, vault.WithCheckAndSet(3))
	require.NoError(t, err)
	require.Equal(t, 4, hist.VersionMetadata.Version)
	versions, err := kv.GetVersionsAsList(ctx, "ci/history")
	require.NoError(t, err)
	require.Equal(t, []int{2, 3, 4}, []int{versions[0].Version, versions[1].Version, versions[2].Version})
	_, err = kv.GetVersion(ctx, "ci/history", 1)
	require.ErrorIs(t, err, vault.ErrSecretNotFound)

	list, err := c.Logical().ListWithContext(ctx, "secret/metadata/ci")
	require.NoError(t, err)
	require.Equal(t, []any{"aws", "history"}, list.Data["keys"])
	root, err := vaultClient(t, url, plantedVaultKVRoot).Logical().ListWithContext(ctx, "secret/metadata/")
	require.NoError(t, err)
	require.Equal(t, []any{"ci/"}, root.Data["keys"])

	require.NoError(t, kv.DeleteMetadata(ctx, "ci/history"))
	_, err = kv.GetMetadata(ctx, "ci/history")
	require.ErrorIs(t, err, vault.ErrSecretNotFound)
	_, ok := sb.VaultKV("secret", "ci/history")
	require.False(t, ok)
	requireNoTokenInLog(t, sb, url)
}

func TestVaultKVTokensAndPolicies(t *testing.T) {
	t.Parallel()
	sb, url := vaultKVSandbox(t)
	ctx := context.Background()
	data := map[string]any{"k": "v"}

	for _, value := range []string{plantedVaultKVRevoked, plantedVaultKVOther, ""} {
		_, err := vaultClient(t, url, value).KVv2("secret").Get(ctx, "ci/aws")
		requireVaultError(t, err, http.StatusForbidden, "permission denied")
	}
	reader := vaultClient(t, url, plantedVaultKVReadOnly).KVv2("secret")
	_, err := reader.Get(ctx, "ci/aws")
	require.NoError(t, err)
	_, err = reader.Put(ctx, "ci/aws", data)
	requireVaultError(t, err, http.StatusForbidden, "permission denied")
	err = reader.PutMetadata(ctx, "ci/aws", vault.KVMetadataPutInput{})
	requireVaultError(t, err, http.StatusForbidden, "permission denied")

	ci := vaultClient(t, url, planted.VaultService)
	_, err = ci.KVv2("secret").Put(ctx, "other/app", data)
	requireVaultError(t, err, http.StatusForbidden, "permission denied")
	_, err = ci.KVv2("secret").Put(ctx, "ci/locked", data) // deny beats the glob
	requireVaultError(t, err, http.StatusForbidden, "permission denied")
	_, err = ci.KVv2("secret").Put(ctx, "shared/app", data) // secret/+/shared/app
	require.NoError(t, err)
	_, err = ci.KVv2("secret").Put(ctx, "shared/other", data)
	requireVaultError(t, err, http.StatusForbidden, "permission denied")
	_, err = vaultClient(t, url, plantedVaultKVRoot).KVv2("secret").Put(ctx, "other/app", data)
	require.NoError(t, err)

	// A mount with cas_required refuses a write without cas.
	strict := ci.KVv2("team/strict")
	_, err = strict.Put(ctx, "app", data)
	requireVaultError(t, err, http.StatusBadRequest, "check-and-set parameter required for this call")
	put, err := strict.Put(ctx, "app", data, vault.WithCheckAndSet(1))
	require.NoError(t, err)
	require.Equal(t, 2, put.VersionMetadata.Version)
	require.Equal(t, []int{2}, sb.VaultKVWrites("team/strict", "app"))

	// Without seeded policies any live Vault token may use the mounts.
	yaml := "accounts:\n  - id: \"111122223333\"\n    users: [" + ResponderSeedUser + "]\n" +
		"tokens: [{provider: vault, value: " + planted.VaultService + ", owner: ci}]\nvault: {mounts: [{path: kv}]}\n"
	seed, err := ParseSeed("seed.yaml", []byte(yaml))
	require.NoError(t, err)
	open, err := New(seed, Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(open)
	t.Cleanup(srv.Close)
	_, err = vaultClient(t, srv.URL, planted.VaultService).KVv2("kv").Put(ctx, "any/where", data, vault.WithCheckAndSet(0))
	require.NoError(t, err)
	_, err = vaultClient(t, srv.URL, plantedVaultKVOther).KVv2("kv").Get(ctx, "any/where")
	requireVaultError(t, err, http.StatusForbidden, "permission denied")
	requireNoTokenInLog(t, sb, url)
}

func TestVaultKVFaults(t *testing.T) {
	t.Parallel()
	sb, url := vaultKVSandbox(t)
	ctx := context.Background()
	kv := vaultClient(t, url, planted.VaultService).KVv2("secret")
	sb.SetFault("vault", Fault{ErrorRate: 1})
	_, err := kv.Put(ctx, "ci/aws", map[string]any{"k": planted.InLiteral}, vault.WithCheckAndSet(1))
	var re *vault.ResponseError
	require.ErrorAs(t, err, &re)
	require.Equal(t, http.StatusServiceUnavailable, re.StatusCode)
	sb.SetFault("vault", Fault{ThrottleRate: 1})
	_, err = kv.Get(ctx, "ci/aws")
	require.ErrorAs(t, err, &re)
	require.Equal(t, http.StatusTooManyRequests, re.StatusCode)
	sb.SetFault("vault", Fault{})
	require.Nil(t, sb.VaultKVWrites("secret", "ci/aws"))
	md, err := kv.GetMetadata(ctx, "ci/aws")
	require.NoError(t, err)
	require.Equal(t, 1, md.CurrentVersion)
	requireNoTokenInLog(t, sb, url)
}

// The call log and the state name mounts, paths and versions, never data.
func TestVaultKVNoSecretInLogOrState(t *testing.T) {
	t.Parallel()
	sb, url := vaultKVSandbox(t)
	ctx := context.Background()
	kv := vaultClient(t, url, planted.VaultService).KVv2("secret")
	_, err := kv.Put(ctx, "ci/aws", map[string]any{"aws_secret_access_key": planted.InLiteral, "nested": map[string]any{"v": planted.InTitle}}, vault.WithCheckAndSet(1))
	require.NoError(t, err)
	_, err = kv.Patch(ctx, "ci/aws", map[string]any{"aws_secret_access_key": planted.NoUpper})
	require.NoError(t, err)
	_, err = kv.Put(ctx, "ci/aws", map[string]any{"aws_secret_access_key": planted.InLiteral}, vault.WithCheckAndSet(1))
	require.Error(t, err)
	planted.RequireNone(t, "the error", err)
	_, err = kv.Get(ctx, "ci/aws")
	require.NoError(t, err)

	state := sb.State()
	require.Equal(t, []VaultMountView{
		{Mount: "secret", Secrets: []VaultKVView{
			{Path: "ci/aws", CurrentVersion: 3, Versions: []VaultKVVersionView{{Version: 1}, {Version: 2}, {Version: 3}}},
			{Path: "ci/history", CurrentVersion: 3, Versions: []VaultKVVersionView{{Version: 1}, {Version: 2}, {Version: 3}}},
		}},
		{Mount: "team/strict", Secrets: []VaultKVView{{Path: "app", CurrentVersion: 1, Versions: []VaultKVVersionView{{Version: 1}}}}},
	}, state.Vault)
	planted.RequireNone(t, "the state", state)
	requireNoTokenInLog(t, sb, url)
	stored, _ := sb.VaultKV("secret", "ci/aws")
	require.Equal(t, planted.NoUpper, stored.Versions[2].Data["aws_secret_access_key"])
}

func TestVaultKVSeedErrors(t *testing.T) {
	t.Parallel()
	base := "accounts:\n  - id: \"111122223333\"\n    users: [" + ResponderSeedUser + "]\n"
	for _, tc := range []struct{ vault, want string }{
		{"vault:\n  kv:\n    - {mount: secret, path: a, data: {k: v}, versions: [{k: v}]}\n", "versions"},
		{"vault:\n  kv:\n    - {mount: /secret, path: a}\n", "mount"},
		{"vault:\n  mounts: [{path: auth}]\n", "mount path"},
		{"vault:\n  kv:\n    - {mount: secret, path: a}\n    - {mount: secret, path: a}\n", "repeated"},
		{"vault:\n  policies:\n    - {name: p, paths: [{path: \"a/*\", capabilities: [write]}]}\n", `capability "write"`},
		{"vault:\n  policies:\n    - {name: p, paths: [{path: \"a/*/b\", capabilities: [read]}]}\n", "has *"},
		{"vault:\n  mounts: [{path: secret, max_versions: -1}]\n", "negative"},
	} {
		_, err := ParseSeed("seed.yaml", []byte(base+tc.vault))
		require.Error(t, err, tc.vault)
		require.Contains(t, err.Error(), tc.want)
		require.True(t, strings.Contains(err.Error(), "seed seed.yaml: ["), err.Error())
	}
	// Seeded data never appears in a seed error.
	_, err := ParseSeed("seed.yaml", []byte(base+"vault:\n  kv:\n    - {mount: secret, path: a, data: {k: "+planted.Random+"}, versions: [{k: v}]}\n"))
	require.Error(t, err)
	planted.RequireNone(t, "the seed error", err)
}
