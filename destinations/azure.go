package destinations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/apicall"
)

// AzureKeyVaultSpec is a set of Azure Key Vault secrets to write the new
// credential to: each named secret gets a new version holding one field.
type AzureKeyVaultSpec struct {
	// Vault is the vault's URL (https://kv-prod.vault.azure.net/) or its
	// name (kv-prod, in Azure's public cloud); empty: the configured
	// azure.keyvault_url.
	Vault string `json:"vault,omitempty"`
	// Secrets maps the vault's secret names to the credential's fields
	// (aws-access-key-id: AccessKeyId).
	Secrets map[string]string `json:"secrets"`
	// ContentType is each new version's content type; empty: the current
	// version's, else text/plain.
	ContentType string `json:"content_type,omitempty"`
}

var (
	azureVaultNameRe  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)
	azureSecretNameRe = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
)

func (s AzureKeyVaultSpec) check() error {
	var problems []string
	if s.Vault != "" && !azureVaultNameRe.MatchString(s.Vault) {
		if u, err := url.Parse(s.Vault); err != nil || u.Scheme != "https" || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			problems = append(problems, fmt.Sprintf("vault %q: give the vault's name (kv-prod) or its URL (https://kv-prod.vault.azure.net/)", s.Vault))
		}
	}
	if len(s.Secrets) == 0 {
		problems = append(problems, "secrets is required: the vault's secret names and the credential field each holds, such as {aws-access-key-id: AccessKeyId, aws-secret-access-key: SecretAccessKey}")
	}
	for _, name := range azureSortedNames(s.Secrets) {
		if !azureSecretNameRe.MatchString(name) {
			problems = append(problems, fmt.Sprintf("secrets: %q is not a Key Vault secret name (1 to 127 letters, digits and dashes)", name))
		}
		if s.Secrets[name] == "" {
			problems = append(problems, fmt.Sprintf("secrets: %s names no credential field (AccessKeyId, SecretAccessKey, UserName)", name))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// AzureDeps say how stanch reaches Azure Key Vault to write.
type AzureDeps struct {
	// VaultURL is the vault of a destination that names none.
	VaultURL string
	// Credential returns the identity that writes (stanch's configured
	// token, else azidentity's DefaultAzureCredential); called only when a
	// rotation writes.
	Credential func() (azcore.TokenCredential, error)
	// Transport carries the requests (nil: azcore's default).
	Transport policy.Transporter
	// DisableChallengeResourceVerification lets the bearer challenge name a
	// resource the vault's host is not under. Only for the sandbox or a
	// test double (127.0.0.1 is not under vault.azure.net), and only
	// together with a Transport that trusts nothing but their CA: with it a
	// token for https://vault.azure.net goes to whatever host the URL names.
	DisableChallengeResourceVerification bool
}

type azureKeyVault struct {
	spec AzureKeyVaultSpec
	deps AzureDeps
	url  string

	mu     sync.Mutex
	client *azsecrets.Client
}

func newAzureKeyVault(s AzureKeyVaultSpec, deps AzureDeps) (Destination, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	u := s.Vault
	switch {
	case u == "" && deps.VaultURL == "":
		return nil, errors.New("vault: the step names no vault and none is configured (azure.keyvault_url; see docs/rotation.md)")
	case u == "":
		u = deps.VaultURL
	case azureVaultNameRe.MatchString(u):
		u = "https://" + strings.ToLower(u) + ".vault.azure.net/"
	}
	return &azureKeyVault{spec: s, deps: deps, url: u}, nil
}

// vault names the vault for people: its name for *.vault.azure.net, else
// its host.
func (a *azureKeyVault) vault() string {
	u, err := url.Parse(a.url)
	if err != nil {
		return a.url
	}
	if name, ok := strings.CutSuffix(u.Hostname(), ".vault.azure.net"); ok {
		return name
	}
	return u.Host
}

func (a *azureKeyVault) Describe() string {
	return fmt.Sprintf("Azure Key Vault %s (%s)", a.vault(), strings.Join(azureSortedNames(a.spec.Secrets), ", "))
}

func (a *azureKeyVault) Calls() []actions.Call {
	var calls []actions.Call
	for _, name := range azureSortedNames(a.spec.Secrets) {
		p := map[string]any{"vault": a.url, "name": name}
		calls = append(calls,
			actions.Call{Service: "azurekeyvault", Operation: "GetSecret", Params: p},
			actions.Call{Service: "azurekeyvault", Operation: "SetSecret", Params: p, Mutates: true,
				Effect: fmt.Sprintf("add a version of secret %s in Azure Key Vault %s holding the new credential's %s, tagged with the run", name, a.vault(), a.spec.Secrets[name])})
	}
	return calls
}

func (a *azureKeyVault) secrets() (*azsecrets.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client != nil {
		return a.client, nil
	}
	if a.deps.Credential == nil {
		return nil, actions.Permanent(errors.New("no Azure credential is configured for writing to Key Vault (azure.token_env, azure.token_file, or the environment DefaultAzureCredential reads; see docs/rotation.md)"))
	}
	cred, err := a.deps.Credential()
	if err != nil {
		return nil, actions.Permanent(fmt.Errorf("azure credential: %w", err))
	}
	opts := &azsecrets.ClientOptions{DisableChallengeResourceVerification: a.deps.DisableChallengeResourceVerification}
	var base apicall.Doer
	if a.deps.Transport != nil {
		base = a.deps.Transport
	}
	opts.Transport = apicall.Wrap("azurekeyvault", base)
	// A SetSecret retried inside azcore after a lost answer would add a
	// second version; the step retries instead, and reads (Holds) first.
	opts.Retry.MaxRetries = -1
	c, err := azsecrets.NewClient(a.url, cred, opts)
	if err != nil {
		return nil, actions.Permanent(fmt.Errorf("azure key vault client for %s: %w", a.url, err))
	}
	a.client = c
	return c, nil
}

// current reads a secret's current version; a missing secret is nil.
func (a *azureKeyVault) current(ctx context.Context, c *azsecrets.Client, name string) (*azsecrets.Secret, error) {
	got, err := c.GetSecret(ctx, name, "", nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, azureError(fmt.Sprintf("read secret %s in Azure Key Vault %s", name, a.vault()), err)
	}
	return &got.Secret, nil
}

// holds reports whether s is the version this credential's write makes:
// the value, and the tag naming the credential.
func holds(s *azsecrets.Secret, value, credential string) bool {
	if s == nil || s.Value == nil || *s.Value != value {
		return false
	}
	tag := s.Tags[tagCredential]
	return tag != nil && *tag == credential
}

const (
	tagRun        = "stanch_run"
	tagStep       = "stanch_step"
	tagCredential = "stanch_credential"
)

func (a *azureKeyVault) Holds(ctx context.Context, c Credential, _ Mark) (bool, error) {
	want, err := mapped(c, a.spec.Secrets)
	if err != nil {
		return false, actions.Permanent(err)
	}
	client, err := a.secrets()
	if err != nil {
		return false, err
	}
	for _, name := range azureSortedNames(want) {
		cur, err := a.current(ctx, client, name)
		if err != nil {
			return false, err
		}
		if !holds(cur, want[name], c.ID) {
			return false, nil
		}
	}
	return true, nil
}

// Write adds a version to each named secret that does not hold the
// credential yet (an attempt that stopped halfway wrote the others),
// keeping the current version's tags beside the run's.
func (a *azureKeyVault) Write(ctx context.Context, c Credential, m Mark) (string, error) {
	want, err := mapped(c, a.spec.Secrets)
	if err != nil {
		return "", actions.Permanent(err)
	}
	client, err := a.secrets()
	if err != nil {
		return "", err
	}
	var written []string
	for _, name := range azureSortedNames(want) {
		cur, err := a.current(ctx, client, name)
		if err != nil {
			return "", err
		}
		if holds(cur, want[name], c.ID) {
			continue
		}
		tags := map[string]*string{}
		contentType := a.spec.ContentType
		if cur != nil {
			for k, v := range cur.Tags {
				tags[k] = v
			}
			if contentType == "" && cur.ContentType != nil {
				contentType = *cur.ContentType
			}
		}
		if contentType == "" {
			contentType = "text/plain"
		}
		for k, v := range map[string]string{tagRun: m.RunID, tagStep: m.StepID, tagCredential: c.ID} {
			tags[k] = &v
		}
		value := want[name]
		set, err := client.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: &value, ContentType: &contentType, Tags: tags}, nil)
		if err != nil {
			return "", azureError(fmt.Sprintf("write secret %s in Azure Key Vault %s", name, a.vault()), err)
		}
		version := "?"
		if set.ID != nil {
			version = set.ID.Version()
		}
		written = append(written, fmt.Sprintf("%s version %s", name, version))
	}
	if len(written) == 0 {
		return "every secret held it already", nil
	}
	return strings.Join(written, ", "), nil
}

// azureError classifies a Key Vault error: a refusal (bad request, no
// token accepted, no permission, a disabled secret) is permanent, the
// rest (throttled, unavailable, network) retryable. The message is built
// from the error's code and message: azcore's own text quotes the whole
// response.
func azureError(what string, err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		if actions.KindOf(err) == actions.KindPermanent {
			return actions.Permanent(fmt.Errorf("%s: %w", what, err))
		}
		return actions.Retryable(fmt.Errorf("%s: %w", what, err))
	}
	msg := fmt.Errorf("%s: %d %s%s", what, re.StatusCode, re.ErrorCode, azureMessage(re))
	switch {
	case re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusRequestTimeout || re.StatusCode >= 500:
		return actions.Retryable(msg)
	case re.StatusCode >= 400:
		return actions.Permanent(msg)
	}
	return actions.Retryable(msg)
}

// azureMessage is the error's message from Key Vault's error body.
func azureMessage(re *azcore.ResponseError) string {
	if re.RawResponse == nil {
		return ""
	}
	data, err := runtime.Payload(re.RawResponse)
	if err != nil {
		return ""
	}
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	// An error body holds no secret value.
	if err := json.Unmarshal(data, &body); err != nil || body.Error.Message == "" {
		return ""
	}
	return ": " + body.Error.Message
}

func azureSortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// AzureToken is a credential that hands out a bearer token for Key Vault
// obtained elsewhere (az account get-access-token --resource
// https://vault.azure.net), read by token each time one is needed.
func AzureToken(token func() (string, error)) azcore.TokenCredential {
	return azureToken(token)
}

type azureToken func() (string, error)

func (t azureToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := t()
	if err != nil {
		return azcore.AccessToken{}, actions.Permanent(err)
	}
	if tok == "" {
		return azcore.AccessToken{}, actions.Permanent(errors.New("the configured Azure token is empty"))
	}
	// Its expiry is unknown; a short one makes azcore ask again soon.
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(5 * time.Minute)}, nil
}

// azurePermissions are what writing to Azure Key Vault needs.
var azurePermissions = []actions.Permission{
	{Provider: "azure", Name: "Key Vault Secrets Officer (role) on the vault, or its data actions below", Why: "destinations azure_key_vault: read the named secrets and add versions to them"},
	{Provider: "azure", Name: "Microsoft.KeyVault/vaults/secrets/getSecret/action", Why: "destinations azure_key_vault: read each secret's current version to tell whether it holds the new key, and verify the write"},
	{Provider: "azure", Name: "Microsoft.KeyVault/vaults/secrets/readMetadata/action", Why: "destinations azure_key_vault: read the current version's tags and content type, kept on the new version"},
	{Provider: "azure", Name: "Microsoft.KeyVault/vaults/secrets/setSecret/action", Why: "destinations azure_key_vault: add a version holding the new key, tagged with the run"},
}
