package aws

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/destinations"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
)

const (
	azureRotator = "eyJ0eXAiOiJKV1QifQ.stanch-rotator.sandbox"
	azureReader  = "eyJ0eXAiOiJKV1QifQ.reader.sandbox"
)

const azureDestinationsSeed = seedYAML + `
azure:
  identities:
    - {name: stanch-rotator, token: ` + azureRotator + `}
    - {name: reader, token: ` + azureReader + `, permissions: [get]}
  vaults:
    - name: kv-prod
      secrets:
        - name: aws-access-key-id
          versions: [{value: AKIAIOSFODNN7EXAMPLE, tags: {owner: ci}}]
        - name: aws-secret-access-key
          versions: [{value: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, tags: {owner: ci}}]
`

// azureBackend is the sandbox backend with its Key Vault reachable by the
// rotation as the identity whose token *token holds.
func azureBackend(t *testing.T, token *string) (backend, *testkit.Fixture, map[string]actions.Action) {
	t.Helper()
	f := testkit.Sandbox(t, testkit.Seed(t, azureDestinationsSeed))
	stop, err := f.StartAzure("")
	require.NoError(t, err)
	t.Cleanup(stop)
	b := backend{name: "sandbox", cfg: f.AWSConfig(), account: "111122223333", user: "ci-bot", leaked: "AKIAIOSFODNN7EXAMPLE", other: "AKIAI44QH8DHBEXAMPLE",
		effective: f.EffectiveCount, calls: f.Count}
	p := NewProvider(ProviderOptions{
		Config:      func(context.Context, string) (awssdk.Config, error) { return b.cfg, nil },
		VerifyDelay: 10 * time.Millisecond,
		Destinations: destinations.Deps{Azure: destinations.AzureDeps{
			VaultURL: f.AzureURL("kv-prod"),
			Credential: func() (azcore.TokenCredential, error) {
				return destinations.AzureToken(func() (string, error) { return *token, nil }), nil
			},
			Transport:                            &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.AzureCertPool()}}},
			DisableChallengeResourceVerification: true,
		}},
	})
	acts := map[string]actions.Action{}
	for _, a := range Actions(p) {
		acts[a.Spec().Name] = a
	}
	return b, f, acts
}

var azureDest = map[string]any{"azure_key_vault": map[string]any{"secrets": map[string]any{
	"aws-access-key-id": "AccessKeyId", "aws-secret-access-key": "SecretAccessKey"}}}

// The new key goes to Secrets Manager and to the Key Vault secrets, one
// version each tagged with the run; again, nothing is written; a writer
// Key Vault refuses stops the step with the key in custody, and a retry
// with a writer it accepts completes with the same key.
func TestRotateKeyIntoAzureKeyVault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	token := azureReader
	b, f, acts := azureBackend(t, &token)
	secret := b.createSecret(t)
	rotate := acts["aws.rotate_key"]
	with := rotateInto(t, b, acts, secret, []any{azureDest})
	logs := &logBuffer{}
	env := rotateEnv("run_azure", stepStart(), logs)
	var effects []string
	env.Effect = func(e actions.Effect) { effects = append(effects, e.Description) }
	vault := strings.TrimSuffix(strings.TrimPrefix(f.AzureURL("kv-prod"), "https://"), "/")

	plan, err := rotate.Plan(ctx, env, testkit.Decode(t, rotate, with))
	require.NoError(t, err)
	require.Contains(t, plan.Summary, "write it to Azure Key Vault "+vault+" (aws-access-key-id, aws-secret-access-key), then make it AWSCURRENT")
	var writes []string
	for _, c := range plan.Calls {
		if c.Service == "azurekeyvault" && c.Mutates {
			writes = append(writes, c.Effect)
		}
	}
	require.Len(t, writes, 2, "a SetSecret for each secret")

	// The reader may not write: the step stops, the key waits in custody.
	_, err = rotate.Do(ctx, env, testkit.Decode(t, rotate, with))
	require.Error(t, err)
	require.Contains(t, err.Error(), "Azure Key Vault "+vault+" (aws-access-key-id, aws-secret-access-key) failed")
	require.Contains(t, err.Error(), "does not have secrets set permission")
	require.Contains(t, err.Error(), "It is in: Secrets Manager secret "+secret+" (AWSPENDING)")
	require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
	require.Len(t, f.AzureSecret("kv-prod", "aws-access-key-id"), 1)
	refused := err.Error()

	token = azureRotator
	res, err := rotate.Do(ctx, env, testkit.Decode(t, rotate, with))
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	newKey := res.Outputs["new_access_key_id"].(string)
	require.Equal(t, 1, f.EffectiveCount("CreateAccessKey"), "one new key across the failure and the retry")
	stored, _ := b.current(t, secret)
	require.Equal(t, newKey, stored.AccessKeyID)
	id := f.AzureSecret("kv-prod", "aws-access-key-id")
	require.Len(t, id, 2, "one version added")
	require.Equal(t, newKey, id[1].Value)
	require.Equal(t, map[string]string{"owner": "ci", "stanch_run": "run_azure", "stanch_step": "rotate", "stanch_credential": newKey}, id[1].Tags)
	sec := f.AzureSecret("kv-prod", "aws-secret-access-key")
	require.Len(t, sec, 2)
	require.Equal(t, stored.SecretAccessKey, sec[1].Value)
	require.Contains(t, strings.Join(effects, "\n"), "wrote the new key "+newKey+" to Azure Key Vault "+vault)

	again, err := rotate.Do(ctx, env, testkit.Decode(t, rotate, with))
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome)
	require.Len(t, f.AzureSecret("kv-prod", "aws-secret-access-key"), 2, "nothing written again")

	require.Len(t, stored.SecretAccessKey, 40)
	for _, text := range []string{logs.String(), fmt.Sprint(res), fmt.Sprint(plan), strings.Join(effects, "\n"), refused} {
		require.NotContains(t, text, stored.SecretAccessKey)
	}
	for _, c := range f.Calls() {
		require.NotContains(t, fmt.Sprint(c.Params), stored.SecretAccessKey, "%s %s", c.Service, c.Action)
	}
	planted.RequireNone(t, "the rotation's logs", logs.String())
}
