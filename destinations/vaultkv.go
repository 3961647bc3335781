package destinations

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/apicall"
)

// VaultKVSpec is a HashiCorp Vault KV version 2 secret to write the new
// credential to.
type VaultKVSpec struct {
	// Mount is the KV v2 engine's mount (default secret).
	Mount string `json:"mount,omitempty"`
	// Path is the secret's path under the mount: ci/aws.
	Path string `json:"path"`
	// Fields maps the secret's keys to the credential's fields
	// (AWS_ACCESS_KEY_ID: AccessKeyId); empty: the credential's own field
	// names. Keys of the secret not named are kept as they are.
	Fields map[string]string `json:"fields,omitempty"`
}

func (s VaultKVSpec) check() error {
	if s.Path == "" {
		return errors.New("path is required: the secret's path under the mount, such as ci/aws")
	}
	if strings.HasPrefix(s.Path, "/") || strings.Contains(s.Path, "/data/") {
		return fmt.Errorf("path %q: give the path under the mount, without /data/ (mount: secret, path: ci/aws)", s.Path)
	}
	return nil
}

// VaultDeps say how stanch reaches Vault to write.
type VaultDeps struct {
	// Address is Vault's address (the sandbox: <sandbox>/vault); empty:
	// VAULT_ADDR.
	Address   string
	Namespace string
	// Token returns a token allowed to write the secret; read only when a
	// rotation writes.
	Token      func() (string, error)
	HTTPClient *http.Client
}

type vaultKV struct {
	spec VaultKVSpec
	deps VaultDeps
}

func newVaultKV(s VaultKVSpec, deps VaultDeps) (*vaultKV, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.Mount == "" {
		s.Mount = "secret"
	}
	return &vaultKV{spec: s, deps: deps}, nil
}

func (v *vaultKV) Describe() string {
	return fmt.Sprintf("Vault KV %s/%s", v.spec.Mount, v.spec.Path)
}

func (v *vaultKV) Calls() []actions.Call {
	p := map[string]any{"mount": v.spec.Mount, "path": v.spec.Path}
	return []actions.Call{
		{Service: "vault", Operation: "ReadSecretVersion", Params: p},
		{Service: "vault", Operation: "WriteSecretVersion (check-and-set)", Params: p, Mutates: true, Effect: "write the new credential as a new version of " + v.Describe()},
		{Service: "vault", Operation: "PatchMetadata", Params: p, Mutates: true, Effect: "record the run in the custom metadata of " + v.Describe()},
	}
}

func (v *vaultKV) client() (*vaultapi.KVv2, error) {
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		return nil, actions.Permanent(fmt.Errorf("vault configuration: %w", cfg.Error))
	}
	if v.deps.Address != "" {
		cfg.Address = v.deps.Address
	}
	if v.deps.HTTPClient != nil {
		cfg.HttpClient = v.deps.HTTPClient
	}
	cfg.HttpClient = apicall.Client("vault", cfg.HttpClient)
	cfg.MaxRetries = 0 // the step retries, with the runner's backoff
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, actions.Permanent(fmt.Errorf("vault client: %w", err))
	}
	if v.deps.Token == nil {
		return nil, actions.Permanent(errors.New("no Vault token is configured for writing (vault.operator_token_env or vault.operator_token_file; see docs/rotation.md)"))
	}
	token, err := v.deps.Token()
	if err != nil {
		return nil, actions.Permanent(fmt.Errorf("vault token: %w", err))
	}
	if token == "" {
		return nil, actions.Permanent(errors.New("no Vault token is configured for writing (vault.operator_token_env or vault.operator_token_file; see docs/rotation.md)"))
	}
	c.SetToken(token)
	if v.deps.Namespace != "" {
		c.SetNamespace(v.deps.Namespace)
	}
	return c.KVv2(v.spec.Mount), nil
}

// current reads the latest version: its data and number; a missing secret
// is version 0.
func (v *vaultKV) current(ctx context.Context, kv *vaultapi.KVv2) (map[string]any, int, error) {
	s, err := kv.Get(ctx, v.spec.Path)
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, vaultError("read "+v.Describe(), err)
	}
	version := 0
	if s.VersionMetadata != nil {
		version = s.VersionMetadata.Version
	}
	return s.Data, version, nil
}

func (v *vaultKV) Holds(ctx context.Context, c Credential, _ Mark) (bool, error) {
	kv, err := v.client()
	if err != nil {
		return false, err
	}
	data, _, err := v.current(ctx, kv)
	if err != nil {
		return false, err
	}
	want, err := mapped(c, v.spec.Fields)
	if err != nil {
		return false, actions.Permanent(err)
	}
	for k, val := range want {
		if got, _ := data[k].(string); got != val {
			return false, nil
		}
	}
	return true, nil
}

func (v *vaultKV) Write(ctx context.Context, c Credential, m Mark) (string, error) {
	kv, err := v.client()
	if err != nil {
		return "", err
	}
	want, err := mapped(c, v.spec.Fields)
	if err != nil {
		return "", actions.Permanent(err)
	}
	data, version, err := v.current(ctx, kv)
	if err != nil {
		return "", err
	}
	merged := map[string]any{}
	for k, val := range data {
		merged[k] = val
	}
	for k, val := range want {
		merged[k] = val
	}
	// Check-and-set on the version read: a write by anyone in between
	// (another rotation, a person) is refused rather than overwritten;
	// the step's next attempt reads again.
	written, err := kv.Put(ctx, v.spec.Path, merged, vaultapi.WithCheckAndSet(version))
	if err != nil {
		return "", vaultError("write "+v.Describe()+fmt.Sprintf(" (check-and-set on version %d)", version), err)
	}
	if err := kv.PatchMetadata(ctx, v.spec.Path, vaultapi.KVMetadataPatchInput{CustomMetadata: map[string]interface{}{
		"stanch_run": m.RunID, "stanch_step": m.StepID, "stanch_credential": c.ID,
	}}); err != nil {
		return "", vaultError("record the run in the metadata of "+v.Describe(), err)
	}
	n := 0
	if written != nil && written.VersionMetadata != nil {
		n = written.VersionMetadata.Version
	}
	return fmt.Sprintf("version %d", n), nil
}

// vaultError classifies a Vault API error: permission and request errors
// are permanent, the rest (unavailable, sealed, network) retryable.
func vaultError(what string, err error) error {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed:
			if re.StatusCode == http.StatusBadRequest && strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
				return actions.Retryable(fmt.Errorf("%s: someone wrote the secret meanwhile: %v", what, re.Errors))
			}
			return actions.Permanent(fmt.Errorf("%s: %d %v", what, re.StatusCode, re.Errors))
		}
	}
	return actions.Retryable(fmt.Errorf("%s: %w", what, err))
}
