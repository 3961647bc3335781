package destinations

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

const (
	azureWriter = "eyJ0eXAiOiJKV1QifQ.stanch-rotator.sandbox"
	azureReader = "eyJ0eXAiOiJKV1QifQ.reader.sandbox"
	azureKeyID  = "AKIAI44QH8DHBEXAMPLE"
)

const azureSeed = `
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
azure:
  identities:
    - {name: stanch-rotator, token: ` + azureWriter + `}
    - {name: reader, token: ` + azureReader + `, permissions: [get]}
  vaults:
    - name: kv-prod
      secrets:
        - name: aws-access-key-id
          versions:
            - {value: AKIAIOSFODNN7EXAMPLE, content_type: text/plain, tags: {owner: ci}}
        - name: aws-secret-access-key
          versions:
            - {value: ` + planted.Random + `, content_type: application/x-secret, tags: {owner: ci}}
`

// azureSandbox serves the seed's vaults over HTTPS until the test ends.
func azureSandbox(t *testing.T) *testkit.Fixture {
	t.Helper()
	f := testkit.Sandbox(t, testkit.Seed(t, azureSeed))
	stop, err := f.StartAzure("")
	require.NoError(t, err)
	t.Cleanup(stop)
	return f
}

// azureDeps reach the sandbox's vault as token's identity.
func azureDeps(f *testkit.Fixture, token string) AzureDeps {
	return AzureDeps{
		VaultURL: f.AzureURL("kv-prod"),
		Credential: func() (azcore.TokenCredential, error) {
			return AzureToken(func() (string, error) { return token, nil }), nil
		},
		Transport:                            &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.AzureCertPool()}}},
		DisableChallengeResourceVerification: true,
	}
}

func awsKeyCredential(secret string) Credential {
	return Credential{ID: azureKeyID, Fields: map[string]string{"UserName": "ci-bot", "AccessKeyId": azureKeyID, "SecretAccessKey": secret},
		Secret: map[string]bool{"SecretAccessKey": true}}
}

var bothSecrets = map[string]string{"aws-access-key-id": "AccessKeyId", "aws-secret-access-key": "SecretAccessKey"}

// Holds says no, Write adds one version to each secret with the run's tags
// (keeping the others and the content type), Holds then says yes, and a
// second Write adds nothing; the secret half is in the vault only.
func TestAzureKeyVaultWriteHoldsAndVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := azureSandbox(t)
	d, err := newAzureKeyVault(AzureKeyVaultSpec{Secrets: bothSecrets}, azureDeps(f, azureWriter))
	require.NoError(t, err)
	c := awsKeyCredential(planted.NoUpper)
	m := Mark{RunID: "run_azure", StepID: "rotate", Since: time.Now()}

	ok, err := d.Holds(ctx, c, m)
	require.NoError(t, err)
	require.False(t, ok)
	what, err := d.Write(ctx, c, m)
	require.NoError(t, err)
	ok, err = d.Holds(ctx, c, m)
	require.NoError(t, err)
	require.True(t, ok, "read back")

	id := f.AzureSecret("kv-prod", "aws-access-key-id")
	require.Len(t, id, 2, "one version added")
	require.Equal(t, azureKeyID, id[1].Value)
	require.Equal(t, map[string]string{"owner": "ci", "stanch_run": "run_azure", "stanch_step": "rotate", "stanch_credential": azureKeyID}, id[1].Tags)
	require.Equal(t, "text/plain", id[1].ContentType)
	secret := f.AzureSecret("kv-prod", "aws-secret-access-key")
	require.Len(t, secret, 2)
	require.Equal(t, planted.NoUpper, secret[1].Value)
	require.Equal(t, "application/x-secret", secret[1].ContentType, "the current version's content type is kept")
	require.Contains(t, what, "aws-access-key-id version "+id[1].Version)
	require.Contains(t, what, "aws-secret-access-key version "+secret[1].Version)

	again, err := d.Write(ctx, c, m)
	require.NoError(t, err)
	require.Equal(t, "every secret held it already", again)
	require.Len(t, f.AzureSecret("kv-prod", "aws-secret-access-key"), 2)

	require.Equal(t, "Azure Key Vault "+strings.TrimSuffix(strings.TrimPrefix(f.AzureURL("kv-prod"), "https://"), "/")+" (aws-access-key-id, aws-secret-access-key)", d.Describe())
	writes := 0
	for _, call := range d.Calls() {
		if call.Mutates {
			writes++
		}
	}
	require.Equal(t, 2, writes, "a SetSecret for each secret")
	for _, text := range []string{what, d.Describe(), fmt.Sprint(d.Calls()), fmt.Sprint(c), fmt.Sprintf("%v", f.State())} {
		require.NotContains(t, text, planted.NoUpper)
		planted.RequireNone(t, "the destination's words", text)
	}
	for _, call := range f.Calls() {
		planted.RequireNone(t, "the call log: "+call.Action, fmt.Sprint(call.Params))
	}
}

// An attempt that wrote one secret and stopped: the next writes only the
// other, so each secret holds the key once.
func TestAzureKeyVaultWritesOnlyWhatIsMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := azureSandbox(t)
	c := awsKeyCredential(planted.NoUpper)
	m := Mark{RunID: "run_half", StepID: "rotate"}
	first, err := newAzureKeyVault(AzureKeyVaultSpec{Secrets: map[string]string{"aws-access-key-id": "AccessKeyId"}}, azureDeps(f, azureWriter))
	require.NoError(t, err)
	_, err = first.Write(ctx, c, m)
	require.NoError(t, err)

	both, err := newAzureKeyVault(AzureKeyVaultSpec{Vault: f.AzureURL("kv-prod"), Secrets: bothSecrets, ContentType: "text/plain"}, azureDeps(f, azureWriter))
	require.NoError(t, err)
	ok, err := both.Holds(ctx, c, m)
	require.NoError(t, err)
	require.False(t, ok)
	what, err := both.Write(ctx, c, m)
	require.NoError(t, err)
	require.NotContains(t, what, "aws-access-key-id")
	require.Len(t, f.AzureSecret("kv-prod", "aws-access-key-id"), 2)
	secret := f.AzureSecret("kv-prod", "aws-secret-access-key")
	require.Len(t, secret, 2)
	require.Equal(t, "text/plain", secret[1].ContentType, "the step's content type")
}

// Refusals are permanent and name the secret; an outage is retryable; no
// message carries the value.
func TestAzureKeyVaultFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := azureSandbox(t)
	c := awsKeyCredential(planted.NoUpper)
	m := Mark{RunID: "run_fail", StepID: "rotate"}

	reader, err := newAzureKeyVault(AzureKeyVaultSpec{Secrets: bothSecrets}, azureDeps(f, azureReader))
	require.NoError(t, err)
	_, err = reader.Write(ctx, c, m)
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "write secret aws-access-key-id in Azure Key Vault")
	require.Contains(t, err.Error(), "403 Forbidden: The user, group or application 'name=reader' does not have secrets set permission")

	stranger, err := newAzureKeyVault(AzureKeyVaultSpec{Secrets: bothSecrets}, azureDeps(f, "eyJ.unknown"))
	require.NoError(t, err)
	_, err = stranger.Holds(ctx, c, m)
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "401")

	empty, err := newAzureKeyVault(AzureKeyVaultSpec{Secrets: bothSecrets}, azureDeps(f, ""))
	require.NoError(t, err)
	_, err = empty.Holds(ctx, c, m)
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "the configured Azure token is empty")

	noCred := azureDeps(f, azureWriter)
	noCred.Credential = nil
	none, err := newAzureKeyVault(AzureKeyVaultSpec{Secrets: bothSecrets}, noCred)
	require.NoError(t, err)
	_, err = none.Holds(ctx, c, m)
	require.ErrorContains(t, err, "no Azure credential is configured")

	// Without the sandbox's option the client refuses the challenge: the
	// sandbox is not under vault.azure.net.
	strict := azureDeps(f, azureWriter)
	strict.DisableChallengeResourceVerification = false
	checked, err := newAzureKeyVault(AzureKeyVaultSpec{Secrets: bothSecrets}, strict)
	require.NoError(t, err)
	_, err = checked.Holds(ctx, c, m)
	require.Error(t, err)

	f.SetFault("azurekeyvault", sandbox.Fault{ErrorRate: 1})
	writer, err := newAzureKeyVault(AzureKeyVaultSpec{Secrets: bothSecrets}, azureDeps(f, azureWriter))
	require.NoError(t, err)
	_, err = writer.Write(ctx, c, m)
	require.Error(t, err)
	require.Equal(t, actions.KindRetryable, actions.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "503 ServiceUnavailable")
	require.Len(t, f.AzureSecret("kv-prod", "aws-access-key-id"), 1, "nothing written")
}

func TestAzureKeyVaultSpecCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec AzureKeyVaultSpec
		want string
	}{
		{AzureKeyVaultSpec{}, "secrets is required"},
		{AzureKeyVaultSpec{Vault: "kv_prod", Secrets: bothSecrets}, `vault "kv_prod": give the vault's name`},
		{AzureKeyVaultSpec{Vault: "http://kv-prod.vault.azure.net/", Secrets: bothSecrets}, "give the vault's name (kv-prod) or its URL"},
		{AzureKeyVaultSpec{Secrets: map[string]string{"AWS_KEY": "AccessKeyId"}}, `"AWS_KEY" is not a Key Vault secret name`},
		{AzureKeyVaultSpec{Secrets: map[string]string{"aws-key": ""}}, "aws-key names no credential field"},
	} {
		require.ErrorContains(t, Check([]Spec{{AzureKeyVault: &tc.spec}}), tc.want)
	}
	_, err := newAzureKeyVault(AzureKeyVaultSpec{Secrets: bothSecrets}, AzureDeps{})
	require.ErrorContains(t, err, "the step names no vault and none is configured (azure.keyvault_url")
	d, err := newAzureKeyVault(AzureKeyVaultSpec{Vault: "KV-Prod", Secrets: bothSecrets}, AzureDeps{VaultURL: "https://other.vault.azure.net/"})
	require.NoError(t, err)
	require.Equal(t, "https://kv-prod.vault.azure.net/", d.(*azureKeyVault).url)
	require.Equal(t, "Azure Key Vault kv-prod (aws-access-key-id, aws-secret-access-key)", d.Describe())

	// A field the credential lacks is refused when it is written.
	bad, err := newAzureKeyVault(AzureKeyVaultSpec{Vault: "kv-prod", Secrets: map[string]string{"x": "Password"}}, AzureDeps{})
	require.NoError(t, err)
	_, err = bad.Holds(context.Background(), awsKeyCredential(planted.NoUpper), Mark{})
	require.ErrorContains(t, err, "x maps to Password, which the credential does not have")
}
