package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// azureWriterToken is the token stanch writes to the sandbox's Key Vault
// with (the seed's identity stanch-rotator).
const azureWriterToken = "eyJ0eXAiOiJKV1QifQ.stanch-rotator.e2e"

// TestRotateIntoAzureKeyVaultCrashAfterTheWrite kills stanch right after
// the new key was written to Key Vault and before the journal knows, then
// resumes: one new key, one version added to each secret, the key
// AWSCURRENT in Secrets Manager and current in Key Vault, and its secret
// half nowhere but there. stanch reaches the vault over HTTPS with the
// sandbox's CA, as `stanch sandbox` prints it.
func TestRotateIntoAzureKeyVaultCrashAfterTheWrite(t *testing.T) {
	t.Parallel()
	seed, err := os.ReadFile("testdata/rotate-seed.yaml")
	require.NoError(t, err)
	seed = append(seed, []byte(`
azure:
  identities:
    - {name: stanch-rotator, token: `+azureWriterToken+`}
  vaults:
    - name: kv-prod
      secrets:
        - name: aws-access-key-id
          versions: [{value: AKIAIOSFODNN7EXAMPLE, tags: {owner: ci}}]
        - name: aws-secret-access-key
          versions: [{value: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, tags: {owner: ci}}]
`)...)
	e := newE2EWithSeed(t, seed)
	stop, err := e.sb.StartAzure("")
	require.NoError(t, err)
	t.Cleanup(stop)
	caFile := filepath.Join(e.dir, "azure-ca.pem")
	require.NoError(t, os.WriteFile(caFile, e.sb.AzureCAPEM(), 0o600))
	env := []string{"STANCH_AZURE_CA_FILE=" + caFile, "STANCH_AZURE_KEYVAULT_URL=" + e.sb.AzureURL("kv-prod"), "STANCH_AZURE_TOKEN=" + azureWriterToken}

	waiting, crashed, runID, approve := runToRotateAndCrash(t, e, env, "testdata/rotate-azure.yaml", "Key Vault")
	resumed := approve()
	require.Equal(t, 0, resumed.code, "stdout:\n%s\nstderr:\n%s", resumed.stdout, resumed.stderr)
	require.Contains(t, resumed.stdout, "succeeded")

	current, _, ok := e.sb.SecretValue(account, "us-east-1", "iam-user/ci-bot", "AWSCURRENT")
	require.True(t, ok)
	var stored struct{ UserName, AccessKeyId, SecretAccessKey string }
	require.NoError(t, json.Unmarshal([]byte(current), &stored))
	require.NotEqual(t, leakedKey, stored.AccessKeyId)
	require.Equal(t, 1, e.sb.EffectiveCount("CreateAccessKey"), "one new key")
	id := e.sb.AzureSecret("kv-prod", "aws-access-key-id")
	require.Len(t, id, 2, "the destination holds it once: one version added")
	require.Equal(t, stored.AccessKeyId, id[1].Value)
	require.Equal(t, runID, id[1].Tags["stanch_run"])
	require.Equal(t, stored.AccessKeyId, id[1].Tags["stanch_credential"])
	require.Equal(t, "ci", id[1].Tags["owner"])
	sec := e.sb.AzureSecret("kv-prod", "aws-secret-access-key")
	require.Len(t, sec, 2, "one version added")
	require.Equal(t, stored.SecretAccessKey, sec[1].Value)

	// The new secret half is in the stores only.
	requireOnlyInStores(t, e, []result{waiting, crashed, resumed}, stored.SecretAccessKey, azureWriterToken)
}
