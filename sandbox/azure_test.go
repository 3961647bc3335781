package sandbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
)

const (
	azureTenant      = "0a1b2c3d-0000-4000-8000-00000000abcd"
	azureRotator     = "eyJ0eXAiOiJKV1QifQ.rotator.sandbox"
	azureReader      = "eyJ0eXAiOiJKV1QifQ.reader.sandbox"
	azureOldVersion  = "00000000000000000000000000000001"
	azureCurrVersion = "00000000000000000000000000000002"
)

// fakeCredential is an azcore.TokenCredential that hands out a fixed token
// and remembers what it was asked for.
type fakeCredential struct {
	token string
	mu    sync.Mutex
	asked []policy.TokenRequestOptions
}

func (c *fakeCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, opts)
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (c *fakeCredential) requests() []policy.TokenRequestOptions {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]policy.TokenRequestOptions(nil), c.asked...)
}

func azureSeed() Seed {
	versions := []SeedAzureSecretVersion{
		{Version: azureOldVersion, Value: planted.Random, ContentType: "text/plain", Tags: map[string]string{"owner": "ci"}},
		{Version: azureCurrVersion, Value: planted.NoUpper, Tags: map[string]string{"owner": "ci", "rotated": "no"}},
	}
	return Seed{
		Accounts: []SeedAccount{{ID: accountID, Users: []SeedUser{{Name: "responder", Keys: []SeedKey{{ID: otherKey, Secret: leakedSecret}}}}}},
		Azure: &SeedAzure{
			TenantID: azureTenant,
			Identities: []SeedAzureIdentity{
				{Name: "stanch-rotator", Token: azureRotator},
				{Name: "reader", Token: azureReader, Permissions: []string{"get"}, Vaults: []string{"kv-prod"}},
			},
			Vaults: []SeedAzureVault{
				{Name: "kv-prod", Secrets: []SeedAzureSecret{{Name: "ci-aws-key", Versions: versions}}},
				{Name: "kv-other", Secrets: []SeedAzureSecret{{Name: "db", Versions: []SeedAzureSecretVersion{{Value: planted.NoDigit}}}}},
			},
		},
	}
}

func azureSandbox(t *testing.T, seed Seed) *Sandbox {
	t.Helper()
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	stop, err := sb.StartAzure("127.0.0.1")
	require.NoError(t, err)
	t.Cleanup(stop)
	return sb
}

// azureClient is the real azsecrets client for a vault, trusting the
// sandbox's test CA only, with no retries.
func azureClient(t *testing.T, sb *Sandbox, vault string, cred azcore.TokenCredential) *azsecrets.Client {
	t.Helper()
	transport := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: sb.AzureCertPool()}}}
	c, err := azsecrets.NewClient(sb.AzureURL(vault), cred, &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: transport, Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true, // the vault is 127.0.0.1, not *.vault.azure.net
	})
	require.NoError(t, err)
	return c
}

func requireAzureError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	require.ErrorAs(t, err, &re)
	require.Equal(t, status, re.StatusCode)
	require.Equal(t, code, re.ErrorCode)
}

func azureCalls(sb *Sandbox) []Call {
	var out []Call
	for _, c := range sb.Calls() {
		if c.Service == azureService {
			out = append(out, c)
		}
	}
	return out
}

// requireNoAzureValue checks that no secret value reached the call log or
// the state, seen from Go and over the sandbox's own endpoints.
func requireNoAzureValue(t *testing.T, sb *Sandbox) {
	t.Helper()
	calls, err := json.Marshal(sb.Calls())
	require.NoError(t, err)
	state, err := json.Marshal(sb.State())
	require.NoError(t, err)
	planted.RequireNone(t, "the call log", calls, sb.Calls())
	planted.RequireNone(t, "the state", state, sb.State())
	require.NotContains(t, string(calls), azureRotator)
	require.NotContains(t, string(calls), azureReader)
}

func TestAzureKeyVaultSecretsWithRealClient(t *testing.T) {
	t.Parallel()
	sb := azureSandbox(t, azureSeed())
	require.Regexp(t, `^https://127\.0\.0\.1:\d+/$`, sb.AzureURL("kv-prod"))
	ctx := context.Background()
	cred := &fakeCredential{token: azureRotator}
	c := azureClient(t, sb, "kv-prod", cred)

	// The first call is challenged, then answered with the token.
	got, err := c.GetSecret(ctx, "ci-aws-key", "", nil)
	require.NoError(t, err)
	require.Equal(t, planted.NoUpper, *got.Value)
	require.Equal(t, "ci-aws-key", got.ID.Name())
	require.Equal(t, azureCurrVersion, got.ID.Version())
	require.Equal(t, "no", *got.Tags["rotated"])
	require.True(t, *got.Attributes.Enabled)
	asked := cred.requests()
	require.Len(t, asked, 1)
	require.Equal(t, azureTenant, asked[0].TenantID)
	require.Equal(t, []string{"https://vault.azure.net/.default"}, asked[0].Scopes)
	calls := azureCalls(sb)
	require.Len(t, calls, 2)
	require.Equal(t, http.StatusUnauthorized, calls[0].Status)
	require.Empty(t, calls[0].Token)
	require.Equal(t, "SecretGet", calls[1].Action)
	require.Equal(t, http.StatusOK, calls[1].Status)
	require.Equal(t, map[string]string{"vault": "kv-prod", "name": "ci-aws-key", "version": azureCurrVersion, "identity": "stanch-rotator",
		"api_version": calls[1].Params["api_version"], "tags": `{"owner":"ci","rotated":"no"}`}, calls[1].Params)
	require.NotEmpty(t, calls[1].Params["api_version"])
	require.Equal(t, alert.Fingerprint(azureRotator), calls[1].Token)

	// A set makes a new version, every time; the body survives the challenge
	// of a fresh client.
	fresh := azureClient(t, sb, "kv-prod", &fakeCredential{token: azureRotator})
	set, err := fresh.SetSecret(ctx, "ci-aws-key", azsecrets.SetSecretParameters{
		Value: to.Ptr(planted.AfterKeyID), ContentType: to.Ptr("text/plain"), Tags: map[string]*string{"stanch-run": to.Ptr("run-1")},
	}, nil)
	require.NoError(t, err)
	newVersion := set.ID.Version()
	require.Regexp(t, `^[0-9a-f]{32}$`, newVersion)
	require.Equal(t, planted.AfterKeyID, *set.Value)
	require.Equal(t, "run-1", *set.Tags["stanch-run"])
	require.WithinDuration(t, time.Now(), *set.Attributes.Created, 5*time.Second)

	cur, err := c.GetSecret(ctx, "ci-aws-key", "", nil)
	require.NoError(t, err)
	require.Equal(t, planted.AfterKeyID, *cur.Value)
	old, err := c.GetSecret(ctx, "ci-aws-key", azureOldVersion, nil)
	require.NoError(t, err)
	require.Equal(t, planted.Random, *old.Value)
	require.Equal(t, "text/plain", *old.ContentType)

	// A new secret.
	_, err = c.SetSecret(ctx, "brand-new", azsecrets.SetSecretParameters{Value: to.Ptr(planted.InPath)}, nil)
	require.NoError(t, err)
	require.Len(t, sb.AzureSecret("kv-prod", "brand-new"), 1)

	// Versions, with tags and without values.
	var listed []*azsecrets.SecretProperties
	pager := c.NewListSecretPropertiesVersionsPager("ci-aws-key", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		require.NoError(t, err)
		listed = append(listed, page.Value...)
	}
	require.Len(t, listed, 3)
	require.Equal(t, []string{azureOldVersion, azureCurrVersion, newVersion}, []string{listed[0].ID.Version(), listed[1].ID.Version(), listed[2].ID.Version()})
	require.Equal(t, "run-1", *listed[2].Tags["stanch-run"])

	// Update the tags of a version; its value stays.
	upd, err := c.UpdateSecretProperties(ctx, "ci-aws-key", newVersion, azsecrets.UpdateSecretPropertiesParameters{
		Tags: map[string]*string{"stanch-run": to.Ptr("run-1"), "stanch-verified": to.Ptr("true")},
	}, nil)
	require.NoError(t, err)
	require.Nil(t, upd.Value)
	require.Equal(t, "true", *upd.Tags["stanch-verified"])
	versions := sb.AzureSecret("kv-prod", "ci-aws-key")
	require.Len(t, versions, 3)
	require.Equal(t, planted.AfterKeyID, versions[2].Value)
	require.Equal(t, map[string]string{"stanch-run": "run-1", "stanch-verified": "true"}, versions[2].Tags)
	require.Equal(t, planted.Random, versions[0].Value)

	// Not found: a secret, a version, an update.
	_, err = c.GetSecret(ctx, "missing", "", nil)
	requireAzureError(t, err, http.StatusNotFound, "SecretNotFound")
	_, err = c.GetSecret(ctx, "ci-aws-key", strings.Repeat("f", 32), nil)
	requireAzureError(t, err, http.StatusNotFound, "SecretNotFound")
	_, err = c.UpdateSecretProperties(ctx, "missing", newVersion, azsecrets.UpdateSecretPropertiesParameters{}, nil)
	requireAzureError(t, err, http.StatusNotFound, "SecretNotFound")
	pager = c.NewListSecretPropertiesVersionsPager("missing", nil)
	_, err = pager.NextPage(ctx)
	requireAzureError(t, err, http.StatusNotFound, "SecretNotFound")

	require.Equal(t, 2, sb.EffectiveCount("SecretSet"))
	require.Equal(t, 1, sb.EffectiveCount("SecretUpdate"))
	var setCall Call
	for _, call := range azureCalls(sb) {
		if call.Action == "SecretSet" && call.Params["name"] == "ci-aws-key" {
			setCall = call
		}
	}
	require.Equal(t, newVersion, setCall.Params["version"])
	require.Equal(t, `{"stanch-run":"run-1"}`, setCall.Params["tags"])

	// The state names versions and tags, never values.
	state := sb.State()
	require.Len(t, state.AzureKeyVault, 2)
	require.Equal(t, "kv-prod", state.AzureKeyVault[0].Name)
	require.Equal(t, sb.AzureURL("kv-prod"), state.AzureKeyVault[0].URL)
	require.Equal(t, "ci-aws-key", state.AzureKeyVault[0].Secrets[1].Name)
	require.Len(t, state.AzureKeyVault[0].Secrets[1].Versions, 3)
	requireNoAzureValue(t, sb)
}

func TestAzureKeyVaultRefusals(t *testing.T) {
	t.Parallel()
	sb := azureSandbox(t, azureSeed())
	ctx := context.Background()

	// A token the seed does not know: 401, challenged again, nothing set.
	wrong := azureClient(t, sb, "kv-prod", &fakeCredential{token: "eyJ0eXAiOiJKV1QifQ.unknown"})
	_, err := wrong.SetSecret(ctx, "ci-aws-key", azsecrets.SetSecretParameters{Value: to.Ptr(planted.InURL)}, nil)
	requireAzureError(t, err, http.StatusUnauthorized, "Unauthorized")
	_, err = wrong.GetSecret(ctx, "ci-aws-key", "", nil)
	requireAzureError(t, err, http.StatusUnauthorized, "Unauthorized")
	require.Len(t, sb.AzureSecret("kv-prod", "ci-aws-key"), 2)
	last := azureCalls(sb)[len(azureCalls(sb))-1]
	require.Equal(t, alert.Fingerprint("eyJ0eXAiOiJKV1QifQ.unknown"), last.Token)
	require.Equal(t, http.StatusUnauthorized, last.Status)

	// A reader may get, not set, and only in its vault.
	reader := azureClient(t, sb, "kv-prod", &fakeCredential{token: azureReader})
	_, err = reader.GetSecret(ctx, "ci-aws-key", "", nil)
	require.NoError(t, err)
	_, err = reader.SetSecret(ctx, "ci-aws-key", azsecrets.SetSecretParameters{Value: to.Ptr(planted.InURL)}, nil)
	requireAzureError(t, err, http.StatusForbidden, "Forbidden")
	pager := reader.NewListSecretPropertiesVersionsPager("ci-aws-key", nil)
	_, err = pager.NextPage(ctx)
	requireAzureError(t, err, http.StatusForbidden, "Forbidden")
	_, err = azureClient(t, sb, "kv-other", &fakeCredential{token: azureReader}).GetSecret(ctx, "db", "", nil)
	requireAzureError(t, err, http.StatusForbidden, "Forbidden")
	require.Len(t, sb.AzureSecret("kv-prod", "ci-aws-key"), 2)

	// The rotator may use the other vault; a disabled version is refused.
	other := azureClient(t, sb, "kv-other", &fakeCredential{token: azureRotator})
	got, err := other.GetSecret(ctx, "db", "", nil)
	require.NoError(t, err)
	require.Equal(t, planted.NoDigit, *got.Value)
	_, err = other.UpdateSecretProperties(ctx, "db", got.ID.Version(), azsecrets.UpdateSecretPropertiesParameters{SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)}}, nil)
	require.NoError(t, err)
	_, err = other.GetSecret(ctx, "db", "", nil)
	requireAzureError(t, err, http.StatusForbidden, "Forbidden")

	// A set without a value is a bad parameter.
	_, err = other.SetSecret(ctx, "db", azsecrets.SetSecretParameters{}, nil)
	requireAzureError(t, err, http.StatusBadRequest, "BadParameter")

	// A client that does not trust the test CA never gets an answer.
	plain, err := azsecrets.NewClient(sb.AzureURL("kv-prod"), &fakeCredential{token: azureRotator}, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}, DisableChallengeResourceVerification: true,
	})
	require.NoError(t, err)
	_, err = plain.GetSecret(ctx, "ci-aws-key", "", nil)
	var unknownCA x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknownCA)

	// Without DisableChallengeResourceVerification the client refuses the
	// challenge for 127.0.0.1, as it would for any host outside vault.azure.net.
	strict, err := azsecrets.NewClient(sb.AzureURL("kv-prod"), &fakeCredential{token: azureRotator}, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: sb.AzureCertPool()}}}},
	})
	require.NoError(t, err)
	_, err = strict.GetSecret(ctx, "ci-aws-key", "", nil)
	require.ErrorContains(t, err, "doesn't match the requested domain")
	requireNoAzureValue(t, sb)
}

func TestAzureKeyVaultPagesVersions(t *testing.T) {
	t.Parallel()
	seed := azureSeed()
	var many []SeedAzureSecretVersion
	for i := range 30 {
		many = append(many, SeedAzureSecretVersion{Value: fmt.Sprintf("value-%d", i), Tags: map[string]string{"n": fmt.Sprint(i)}})
	}
	seed.Azure.Vaults[0].Secrets = append(seed.Azure.Vaults[0].Secrets, SeedAzureSecret{Name: "many", Versions: many})
	sb := azureSandbox(t, seed)
	c := azureClient(t, sb, "kv-prod", &fakeCredential{token: azureRotator})
	pager := c.NewListSecretPropertiesVersionsPager("many", nil)
	var sizes []int
	var tags []string
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		require.NoError(t, err)
		sizes = append(sizes, len(page.Value))
		for _, p := range page.Value {
			tags = append(tags, *p.Tags["n"])
		}
	}
	require.Equal(t, []int{azureMaxResults, 5}, sizes)
	require.Equal(t, "0", tags[0])
	require.Equal(t, "29", tags[29])
	lists := 0
	for _, call := range azureCalls(sb) {
		if call.Action == "SecretListVersions" && call.Status == http.StatusOK {
			lists++
		}
	}
	require.Equal(t, 2, lists)
}

func TestAzureKeyVaultFaults(t *testing.T) {
	t.Parallel()
	seed := azureSeed()
	seed.Faults = map[string]FaultSpec{"azurekeyvault": {ErrorRate: 1}}
	sb := azureSandbox(t, seed)
	c := azureClient(t, sb, "kv-prod", &fakeCredential{token: azureRotator})
	_, err := c.GetSecret(context.Background(), "ci-aws-key", "", nil)
	requireAzureError(t, err, http.StatusServiceUnavailable, "ServiceUnavailable")
	sb.SetFault("azurekeyvault", Fault{ThrottleRate: 1})
	_, err = c.GetSecret(context.Background(), "ci-aws-key", "", nil)
	requireAzureError(t, err, http.StatusTooManyRequests, "Throttled")
	sb.SetFault("azurekeyvault", Fault{})
	_, err = c.GetSecret(context.Background(), "ci-aws-key", "", nil)
	require.NoError(t, err)
	statuses := []int{}
	for _, call := range azureCalls(sb) {
		statuses = append(statuses, call.Status)
	}
	require.Equal(t, []int{503, 429, 401, 200}, statuses)
}

func TestAzureKeyVaultSeed(t *testing.T) {
	t.Parallel()
	base := "accounts:\n  - id: \"111122223333\"\n    users: [{name: r, keys: [{id: AKIAI44QH8DHBEXAMPLE, secret: s}]}]\n"
	seed, err := ParseSeed("seed.yaml", []byte(base+`azure:
  tenant_id: t-1
  identities: [{name: rotator, token: tok, permissions: [get, set]}]
  vaults:
    - name: kv-prod
      secrets:
        - name: ci-key
          versions:
            - {value: v1, content_type: text/plain, tags: {owner: ci}, enabled: false}
            - {version: 0123456789abcdef0123456789abcdef, value: v2}
`))
	require.NoError(t, err)
	require.Len(t, seed.Azure.Vaults[0].Secrets[0].Versions, 2)
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	versions := sb.AzureSecret("kv-prod", "ci-key")
	require.Len(t, versions, 2)
	require.False(t, versions[0].Enabled)
	require.Equal(t, "0123456789abcdef0123456789abcdef", versions[1].Version)
	require.Nil(t, sb.AzureSecret("kv-prod", "nope"))

	for bad, want := range map[string]string{
		"azure:\n  vaults: [{name: kv_prod}]\n":                                               "[5:",
		"azure:\n  vaults: [{name: kv1, secrets: [{name: a, versions: []}]}]\n":               "needs at least one version",
		"azure:\n  identities: [{name: x, token: t, permissions: [delete]}]\n":                "permission \"delete\"",
		"azure:\n  identities: [{name: x, token: t, vaults: [kv-none]}]\n":                    "is not seeded",
		"azure:\n  vaults: [{name: kv1, secrets: [{name: a, versions: [{version: xyz}]}]}]\n": "32 lower-case hex",
	} {
		_, err := ParseSeed("seed.yaml", []byte(base+bad))
		require.ErrorContains(t, err, want, bad)
	}
	require.Contains(t, FaultServices, "azurekeyvault")
}

func TestServeAzureKeyVault(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, azureSeed(), "127.0.0.1:0", &out, func(url string) { ready <- url }) }()
	<-ready
	text := out.String()
	caFile := regexp.MustCompile(`(?m)^export STANCH_AZURE_CA_FILE=(.+)$`).FindStringSubmatch(text)
	vaultURL := regexp.MustCompile(`(?m)^export STANCH_AZURE_KEYVAULT_URL=(https://127\.0\.0\.1:\d+/)$`).FindStringSubmatch(text)
	require.NotNil(t, caFile, text)
	require.NotNil(t, vaultURL, text)
	require.Contains(t, text, "export STANCH_AZURE_TOKEN="+azureRotator)
	require.Contains(t, text, "# sandbox: Azure Key Vault kv-other at https://127.0.0.1:")
	data, err := os.ReadFile(caFile[1])
	require.NoError(t, err)
	block, _ := pem.Decode(data)
	require.NotNil(t, block)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(data))

	c, err := azsecrets.NewClient(vaultURL[1], &fakeCredential{token: azureRotator}, &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}},
		DisableChallengeResourceVerification: true,
	})
	require.NoError(t, err)
	got, err := c.GetSecret(ctx, "ci-aws-key", "", nil)
	require.NoError(t, err)
	require.Equal(t, planted.NoUpper, *got.Value)

	cancel()
	require.NoError(t, <-done)
	_, err = os.Stat(caFile[1])
	require.True(t, errors.Is(err, os.ErrNotExist), "the CA file is removed when the sandbox stops")
}
