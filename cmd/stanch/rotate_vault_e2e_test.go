package main

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// vaultWriterToken is the token stanch writes to the sandbox's Vault with.
const vaultWriterToken = "hvs.CAESIRotationWriterTokenForTheSandbox0002"

// TestRotateIntoVaultCrashAfterTheWrite kills stanch right after the new
// key was written to Vault and before the journal knows, then resumes:
// one new key, one Vault version added, the key AWSCURRENT in Secrets
// Manager and in Vault, and its secret half nowhere but there.
func TestRotateIntoVaultCrashAfterTheWrite(t *testing.T) {
	t.Parallel()
	seed, err := os.ReadFile("testdata/rotate-seed.yaml")
	require.NoError(t, err)
	seed = append(seed, []byte(`
tokens:
  - {provider: vault, value: `+vaultWriterToken+`, owner: rotation, scopes: [root]}
vault:
  kv:
    - {mount: secret, path: ci/aws, data: {AWS_ACCESS_KEY_ID: AKIAIOSFODNN7EXAMPLE, AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, AWS_REGION: us-east-1}}
`)...)
	e := newE2EWithSeed(t, seed)
	env := []string{"STANCH_VAULT_ADDR=" + e.url + "/vault", "STANCH_VAULT_OPERATOR_TOKEN=" + vaultWriterToken}
	waiting, crashed, _, approve := runToRotateAndCrash(t, e, env, "testdata/rotate-vault.yaml", "Vault")
	resumed := approve()
	require.Equal(t, 0, resumed.code, "stdout:\n%s\nstderr:\n%s", resumed.stdout, resumed.stderr)
	require.Contains(t, resumed.stdout, "succeeded")

	current, _, ok := e.sb.SecretValue(account, "us-east-1", "iam-user/ci-bot", "AWSCURRENT")
	require.True(t, ok)
	var stored struct{ UserName, AccessKeyId, SecretAccessKey string }
	require.NoError(t, json.Unmarshal([]byte(current), &stored))
	require.NotEqual(t, leakedKey, stored.AccessKeyId)
	require.Equal(t, 1, e.sb.EffectiveCount("CreateAccessKey"), "one new key")
	require.Equal(t, []int{2}, e.sb.VaultKVWrites("secret", "ci/aws"), "the destination holds it once: one version added")
	kv, ok := e.sb.VaultKV("secret", "ci/aws")
	require.True(t, ok)
	latest := kv.Versions[len(kv.Versions)-1]
	require.Equal(t, stored.AccessKeyId, latest.Data["AWS_ACCESS_KEY_ID"])
	require.Equal(t, stored.SecretAccessKey, latest.Data["AWS_SECRET_ACCESS_KEY"])
	require.Equal(t, "us-east-1", latest.Data["AWS_REGION"])

	// The new secret half is in the stores only.
	requireOnlyInStores(t, e, []result{waiting, crashed, resumed}, stored.SecretAccessKey)
}
