package main

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// githubWriterToken is the token stanch writes Actions secrets with.
const githubWriterToken = "ghp_SANDBOXrotationWRITERtoken0000000002"

// TestRotateIntoGitHubActionsCrashAfterTheWrite kills stanch right after
// the new key was set in GitHub Actions secrets and before the journal
// knows, then resumes: one new key, each secret set once (their
// updated_at tells the resumed attempt that this step set them), the
// sealed values open to the new key, and its secret half nowhere else.
func TestRotateIntoGitHubActionsCrashAfterTheWrite(t *testing.T) {
	t.Parallel()
	seed, err := os.ReadFile("testdata/rotate-seed.yaml")
	require.NoError(t, err)
	seed = append(seed, []byte(`
github:
  token: `+githubWriterToken+`
  repositories:
    - name: acme/payments-service
      secrets: {AWS_ACCESS_KEY_ID: AKIAIOSFODNN7EXAMPLE, AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, NPM_TOKEN: untouched}
`)...)
	e := newE2EWithSeed(t, seed)
	// updated_at is in whole seconds: start the step in a later second
	// than the seeded secrets'.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(2 * time.Second)))
	env := []string{"STANCH_GITHUB_API_URL=" + e.url + "/api/v3/", "STANCH_GITHUB_TOKEN=" + githubWriterToken}
	waiting, crashed, _, approve := runToRotateAndCrash(t, e, env, "testdata/rotate-github-actions.yaml", "GitHub")
	resumed := approve()
	require.Equal(t, 0, resumed.code, "stdout:\n%s\nstderr:\n%s", resumed.stdout, resumed.stderr)
	require.Contains(t, resumed.stdout, "succeeded")

	current, _, ok := e.sb.SecretValue(account, "us-east-1", "iam-user/ci-bot", "AWSCURRENT")
	require.True(t, ok)
	var stored struct{ UserName, AccessKeyId, SecretAccessKey string }
	require.NoError(t, json.Unmarshal([]byte(current), &stored))
	require.NotEqual(t, leakedKey, stored.AccessKeyId)
	require.Equal(t, 1, e.sb.EffectiveCount("CreateAccessKey"), "one new key")
	require.Equal(t, 2, e.sb.EffectiveCount("CreateOrUpdateRepoSecret"), "each secret set once")
	key, ok := e.sb.ActionsPrivateKey("acme/payments-service")
	require.True(t, ok)
	for name, want := range map[string]string{"AWS_ACCESS_KEY_ID": stored.AccessKeyId, "AWS_SECRET_ACCESS_KEY": stored.SecretAccessKey, "NPM_TOKEN": "untouched"} {
		sec, ok := e.sb.ActionsSecret("acme/payments-service", name)
		require.True(t, ok, name)
		plain, err := key.Open(sec.Sealed)
		require.NoError(t, err, name)
		require.Equal(t, want, string(plain), name)
	}

	// The new secret half is in the stores only.
	requireOnlyInStores(t, e, []result{waiting, crashed, resumed}, stored.SecretAccessKey)
}
