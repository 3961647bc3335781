package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/sopstest"
)

// sopsWriterToken is the GitHub token stanch opens the SOPS pull request with.
const sopsWriterToken = "ghp_SANDBOXrotationWRITERtoken0000000003"

const sopsPlain = `# CI settings
aws:
    access_key_id: AKIAIOSFODNN7EXAMPLE
    secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
    region: us-east-1
npm_token: untouched
`

// TestRotateIntoSOPSCrashAfterTheWrite kills stanch right after the new key
// was written to a SOPS file and before the journal knows, then resumes:
// one new key, the file written once (one rename, or one commit and one
// pull request), decrypting with sops to the new key and every other value
// as it was, and the new secret half nowhere but there and in custody.
func TestRotateIntoSOPSCrashAfterTheWrite(t *testing.T) {
	t.Parallel()
	for _, where := range []string{"file", "pull request"} {
		t.Run(where, func(t *testing.T) {
			t.Parallel()
			key := sopstest.Shared(t)
			encrypted := sopstest.Encrypt(t, []byte(sopsPlain), "yaml", sopstest.Rules{EncryptedRegex: "^(secret_access_key|npm_token)$"}, key.Recipient)
			seed, err := os.ReadFile("testdata/rotate-seed.yaml")
			require.NoError(t, err)
			content, err := json.Marshal(string(encrypted))
			require.NoError(t, err)
			seed = append(seed, []byte(`
github:
  token: `+sopsWriterToken+`
  repositories:
    - name: acme/deploy
      files: {secrets/ci.enc.yaml: `+string(content)+`}
`)...)
			e := newE2EWithSeed(t, seed)
			dest := "repository: acme/deploy\n            path: secrets/ci.enc.yaml"
			path := filepath.Join(e.dir, "checkout", "secrets", "ci.enc.yaml")
			if where == "file" {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, encrypted, 0o600))
				dest = "file: " + path
			}
			playbook := filepath.Join(e.dir, "rotate-sops.yaml")
			require.NoError(t, os.WriteFile(playbook, []byte(`name: rotate-sops
description: Contain, then rotate after approval into Secrets Manager and a SOPS file.
steps:
  - id: identify
    action: aws.identify_key
    with:
      access_key_id: ${{ alert.credential.id }}
  - id: deactivate
    action: aws.deactivate_key
    with:
      access_key_id: ${{ alert.credential.id }}
      user_name: ${{ steps.identify.outputs.user_name }}
  - id: rotate
    action: aws.rotate_key
    approval: {approvers: [security-oncall]}
    with:
      user_name: ${{ steps.identify.outputs.user_name }}
      leaked_access_key_id: ${{ alert.credential.id }}
      secret_id: iam-user/ci-bot
      destinations:
        - sops:
            `+dest+`
            keys: {aws.access_key_id: AccessKeyId, aws.secret_access_key: SecretAccessKey}
`), 0o600))
			env := []string{"STANCH_SOPS_AGE_KEY_FILE=" + key.File, "STANCH_GITHUB_API_URL=" + e.url + "/api/v3/", "STANCH_GITHUB_TOKEN=" + sopsWriterToken}
			waiting, crashed, runID, approve := runToRotateAndCrash(t, e, env, playbook, "SOPS")
			var written []byte
			if where == "file" {
				written, err = os.ReadFile(path)
				require.NoError(t, err)
			}
			resumed := approve()
			require.Equal(t, 0, resumed.code, "stdout:\n%s\nstderr:\n%s", resumed.stdout, resumed.stderr)
			require.Contains(t, resumed.stdout, "succeeded")

			current, _, ok := e.sb.SecretValue(account, "us-east-1", "iam-user/ci-bot", "AWSCURRENT")
			require.True(t, ok)
			var stored struct{ UserName, AccessKeyId, SecretAccessKey string }
			require.NoError(t, json.Unmarshal([]byte(current), &stored))
			require.NotEqual(t, leakedKey, stored.AccessKeyId)
			require.Equal(t, 1, e.sb.EffectiveCount("CreateAccessKey"), "one new key")

			var final []byte
			if where == "file" {
				final, err = os.ReadFile(path)
				require.NoError(t, err)
				require.Equal(t, string(written), string(final), "the resumed attempt did not write the file again")
				entries, err := os.ReadDir(filepath.Dir(path))
				require.NoError(t, err)
				require.Len(t, entries, 1, "no temporary file left")
			} else {
				branch := "stanch/" + runID + "/rotate" // the playbook's rotate step
				final, _, ok = e.sb.GitHubFile("acme/deploy", branch, "secrets/ci.enc.yaml")
				require.True(t, ok)
				require.Len(t, e.sb.GitHubCommits("acme/deploy", branch), 2, "the seed's commit and one of stanch's")
				pulls := e.sb.GitHubPullRequests("acme/deploy")
				require.Len(t, pulls, 1, "one pull request")
				require.Equal(t, branch, pulls[0].Head)
				require.Equal(t, "open", pulls[0].State)
				onMain, _, _ := e.sb.GitHubFile("acme/deploy", "main", "secrets/ci.enc.yaml")
				require.Equal(t, string(encrypted), string(onMain))
				planted.RequireNone(t, "the pull request", pulls[0].Title+pulls[0].Body)
				require.NotContains(t, pulls[0].Title+pulls[0].Body, stored.SecretAccessKey)
			}
			require.NotContains(t, string(final), stored.SecretAccessKey, "encrypted")
			var got, want map[string]any
			require.NoError(t, yaml.Unmarshal(sopstest.Decrypt(t, final, "yaml"), &got))
			require.NoError(t, yaml.Unmarshal([]byte(sopsPlain), &want))
			want["aws"].(map[string]any)["access_key_id"] = stored.AccessKeyId
			want["aws"].(map[string]any)["secret_access_key"] = stored.SecretAccessKey
			require.Equal(t, want, got, "the new key, and every other value as it was")

			// The new secret half is in the stores only.
			requireOnlyInStores(t, e, []result{waiting, crashed, resumed}, stored.SecretAccessKey)
		})
	}
}
