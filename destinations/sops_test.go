package destinations

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	gh "github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/sopstest"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// newKey is the rotated credential: its secret half is a planted secret,
// which must appear nowhere but in the file.
func newKey() Credential {
	return Credential{ID: "AKIAI44QH8DHBNEWKEY1", Fields: map[string]string{
		"UserName": "ci-bot", "AccessKeyId": "AKIAI44QH8DHBNEWKEY1", "SecretAccessKey": planted.Random,
	}, Secret: map[string]bool{"SecretAccessKey": true}}
}

var sopsMark = Mark{RunID: "run_sops", StepID: "rotate", Since: time.Now()}

const plainYAML = `# deploy settings
aws:
    access_key_id: AKIAIOSFODNN7EXAMPLE
    secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
    region: us-east-1
db:
    password: hunter2
    port: 5432
replicas: 3
`

func decodeYAML(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(b, &m))
	return m
}

// A local file: the named keys get the new key, re-encrypted for the
// file's own two recipients with its own rules; sops' decrypt package
// opens it to the new values and every other value as it was.
func TestSOPSFileReplacesTheNamedKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	shared, other := sopstest.Shared(t), sopstest.NewKey(t, dir)
	rules := sopstest.Rules{EncryptedRegex: "^(access_key_id|secret_access_key|password)$"}
	before := sopstest.Encrypt(t, []byte(plainYAML), "yaml", rules, shared.Recipient, other.Recipient)
	path := sopstest.WriteFile(t, dir, "secrets.enc.yaml", before)
	require.NoError(t, os.Chmod(path, 0o640))

	// stanch decrypts with the other identity: any recipient will do.
	d, err := newSOPS(SOPSSpec{File: path, Keys: map[string]string{"aws.access_key_id": "AccessKeyId", "aws.secret_access_key": "SecretAccessKey"}},
		SOPSDeps{AgeKeyFile: other.File})
	require.NoError(t, err)
	c := newKey()
	held, err := d.Holds(ctx, c, sopsMark)
	require.NoError(t, err)
	require.False(t, held)
	what, err := d.Write(ctx, c, sopsMark)
	require.NoError(t, err)
	require.Contains(t, what, "aws.access_key_id, aws.secret_access_key replaced, re-encrypted for the file's 2 recipients")

	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(after), planted.Random, "encrypted")
	require.NotContains(t, string(after), "AKIAI44QH8DHBNEWKEY1", "encrypted: the regex names it")
	require.Contains(t, string(after), "region: us-east-1", "the file's rules: what they leave in the clear stays so")
	require.Contains(t, string(after), "encrypted_regex: ^(access_key_id|secret_access_key|password)$")
	require.Contains(t, string(after), shared.Recipient)
	require.Contains(t, string(after), other.Recipient)
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), info.Mode().Perm())

	got := decodeYAML(t, sopstest.Decrypt(t, after, "yaml"))
	want := decodeYAML(t, []byte(plainYAML))
	want["aws"].(map[string]any)["access_key_id"] = "AKIAI44QH8DHBNEWKEY1"
	want["aws"].(map[string]any)["secret_access_key"] = planted.Random
	require.Equal(t, want, got, "the new values, and every other value as it was")
	require.Contains(t, string(sopstest.Decrypt(t, after, "yaml")), "# deploy settings", "comments stay")

	held, err = d.Holds(ctx, c, sopsMark)
	require.NoError(t, err)
	require.True(t, held)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temporary file left: %v", entries)

	planted.RequireNone(t, "what Write returned, the plan", what, fmt.Sprint(d.Calls()), d.Describe())
}

// JSON and dotenv files keep their format and rules (unencrypted_suffix).
func TestSOPSFileFormats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, format, plain string
		keys                map[string]string
		rules               sopstest.Rules
		check               func(t *testing.T, plain []byte)
	}{
		{name: "app.enc.json", format: "json",
			plain: `{"aws": {"key": "AKIAIOSFODNN7EXAMPLE", "secret": "old", "region_unencrypted": "eu-west-1"}, "tags": ["a", "b"], "n": 1.5}`,
			keys:  map[string]string{"aws.key": "AccessKeyId", "aws.secret": "SecretAccessKey"}, rules: sopstest.Rules{UnencryptedSuffix: "_unencrypted"},
			check: func(t *testing.T, plain []byte) {
				var m map[string]any
				require.NoError(t, json.Unmarshal(plain, &m))
				require.Equal(t, map[string]any{"aws": map[string]any{"key": "AKIAI44QH8DHBNEWKEY1", "secret": planted.Random, "region_unencrypted": "eu-west-1"},
					"tags": []any{"a", "b"}, "n": 1.5}, m)
			}},
		{name: "ci.env", format: "dotenv",
			plain: "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=old\nAWS_REGION=us-east-1\n",
			keys:  map[string]string{"AWS_ACCESS_KEY_ID": "AccessKeyId", "AWS_SECRET_ACCESS_KEY": "SecretAccessKey"},
			check: func(t *testing.T, plain []byte) {
				require.Equal(t, "AWS_ACCESS_KEY_ID=AKIAI44QH8DHBNEWKEY1\nAWS_SECRET_ACCESS_KEY="+planted.Random+"\nAWS_REGION=us-east-1\n", string(plain))
			}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			key := sopstest.Shared(t)
			path := sopstest.WriteFile(t, t.TempDir(), tc.name, sopstest.Encrypt(t, []byte(tc.plain), tc.format, tc.rules, key.Recipient))
			d, err := newSOPS(SOPSSpec{File: path, Keys: tc.keys}, SOPSDeps{AgeKeyFile: key.File})
			require.NoError(t, err)
			_, err = d.Write(ctx, newKey(), sopsMark)
			require.NoError(t, err)
			after, err := os.ReadFile(path)
			require.NoError(t, err)
			tc.check(t, sopstest.Decrypt(t, after, tc.format))
			if tc.rules.UnencryptedSuffix != "" {
				require.Contains(t, string(after), `"region_unencrypted": "eu-west-1"`)
				require.Contains(t, string(after), `"unencrypted_suffix": "_unencrypted"`)
			}
			held, err := d.Holds(ctx, newKey(), sopsMark)
			require.NoError(t, err)
			require.True(t, held)
		})
	}
}

// What cannot be written is refused, the file as it was, the message
// naming why and never the new secret.
func TestSOPSFileRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	key, stranger := sopstest.Shared(t), sopstest.NewKey(t, dir)
	before := sopstest.Encrypt(t, []byte(plainYAML), "yaml", sopstest.Rules{}, key.Recipient)
	path := sopstest.WriteFile(t, dir, "secrets.enc.yaml", before)
	for _, tc := range []struct {
		name string
		spec SOPSSpec
		deps SOPSDeps
		want string
	}{
		{"a key the file does not have", SOPSSpec{File: path, Keys: map[string]string{"aws.acess_key_id": "AccessKeyId"}}, SOPSDeps{AgeKeyFile: key.File},
			"the file has no string value at aws.acess_key_id: nothing was changed"},
		{"an identity that is not a recipient", SOPSSpec{File: path, Keys: map[string]string{"aws.access_key_id": "AccessKeyId"}}, SOPSDeps{AgeKeyFile: stranger.File},
			"no configured age identity is among the file's recipients (age " + key.Recipient + ")"},
		{"no key file", SOPSSpec{File: path, Keys: map[string]string{"aws.access_key_id": "AccessKeyId"}}, SOPSDeps{},
			"no age key file is configured for SOPS files (sops.age_key_file"},
		{"a missing file", SOPSSpec{File: filepath.Join(dir, "nope.yaml"), Keys: map[string]string{"aws.access_key_id": "AccessKeyId"}}, SOPSDeps{AgeKeyFile: key.File},
			"no such file"},
	} {
		d, err := newSOPS(tc.spec, tc.deps)
		require.NoError(t, err, tc.name)
		_, err = d.Write(ctx, newKey(), sopsMark)
		require.ErrorContains(t, err, tc.want, tc.name)
		require.Equal(t, actions.KindPermanent, actions.KindOf(err), tc.name)
		planted.RequireNone(t, tc.name, err.Error())
		now, rerr := os.ReadFile(path)
		require.NoError(t, rerr)
		require.Equal(t, string(before), string(now), tc.name)
	}

	// A file changed without sops (its MAC no longer matches) is refused.
	clear := sopstest.Encrypt(t, []byte(plainYAML), "yaml", sopstest.Rules{EncryptedRegex: "^secret_access_key$"}, key.Recipient)
	tampered := strings.Replace(string(clear), "region: us-east-1", "region: eu-west-1", 1)
	require.NotEqual(t, string(clear), tampered)
	bad := sopstest.WriteFile(t, dir, "tampered.enc.yaml", []byte(tampered))
	d, err := newSOPS(SOPSSpec{File: bad, Keys: map[string]string{"aws.access_key_id": "AccessKeyId"}}, SOPSDeps{AgeKeyFile: key.File})
	require.NoError(t, err)
	_, err = d.Holds(ctx, newKey(), sopsMark)
	require.ErrorContains(t, err, "MAC")

	for _, bad := range []SOPSSpec{
		{Keys: map[string]string{"a": "AccessKeyId"}},
		{File: "x.yaml"},
		{File: "x.txt", Keys: map[string]string{"a": "AccessKeyId"}},
		{File: "x.yaml", Repository: "acme/api", Path: "x.yaml", Keys: map[string]string{"a": "AccessKeyId"}},
		{Repository: "acme", Path: "x.yaml", Keys: map[string]string{"a": "AccessKeyId"}},
		{File: "x.yaml", Keys: map[string]string{"a..b": "AccessKeyId"}},
	} {
		require.Error(t, bad.check(), "%+v", bad)
	}
}

// A file in a GitHub repository: a branch from the default branch, one
// commit with the re-encrypted file, one pull request; again, nothing
// more; merged, the default branch holds it.
func TestSOPSPullRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := sopstest.Shared(t)
	const token = "ghp_SOPSDestinationTestToken0000000000001"
	seed := githubSeed(t, token)
	before := sopstest.Encrypt(t, []byte(plainYAML), "yaml", sopstest.Rules{EncryptedRegex: "^(access_key_id|secret_access_key|password)$"}, key.Recipient)
	seed.GitHub.Repositories = append(seed.GitHub.Repositories, sandboxRepo("acme/deploy", map[string]string{"secrets/prod.enc.yaml": string(before), "README.md": "hi"}))
	f := testkit.Sandbox(t, seed)
	client := f.GitHubClient(t, token)
	spec := SOPSSpec{Repository: "acme/deploy", Path: "secrets/prod.enc.yaml", Keys: map[string]string{"aws.access_key_id": "AccessKeyId", "aws.secret_access_key": "SecretAccessKey"}}
	d, err := newSOPS(spec, SOPSDeps{AgeKeyFile: key.File, GitHub: func() (*gh.Client, error) { return client, nil }})
	require.NoError(t, err)
	require.Equal(t, "SOPS file secrets/prod.enc.yaml in acme/deploy", d.Describe())
	c := newKey()

	held, err := d.Holds(ctx, c, sopsMark)
	require.NoError(t, err)
	require.False(t, held)
	what, err := d.Write(ctx, c, sopsMark)
	require.NoError(t, err)
	require.Regexp(t, `^branch stanch/run_sops/rotate, commit [0-9a-f]{7}, pull request #1$`, what)

	branch := "stanch/run_sops/rotate"
	onBranch, _, ok := f.GitHubFile("acme/deploy", branch, "secrets/prod.enc.yaml")
	require.True(t, ok)
	got := decodeYAML(t, sopstest.Decrypt(t, onBranch, "yaml"))
	want := decodeYAML(t, []byte(plainYAML))
	want["aws"].(map[string]any)["access_key_id"] = "AKIAI44QH8DHBNEWKEY1"
	want["aws"].(map[string]any)["secret_access_key"] = planted.Random
	require.Equal(t, want, got)
	onMain, _, _ := f.GitHubFile("acme/deploy", "main", "secrets/prod.enc.yaml")
	require.Equal(t, string(before), string(onMain), "the base branch is changed by people merging, not by stanch")
	commits := f.GitHubCommits("acme/deploy", branch)
	require.Len(t, commits, 2, "the seed's commit and stanch's")
	require.Equal(t, []string{"secrets/prod.enc.yaml"}, commits[0].Changed)
	pulls := f.GitHubPullRequests("acme/deploy")
	require.Len(t, pulls, 1)
	require.Equal(t, branch, pulls[0].Head)
	require.Equal(t, "main", pulls[0].Base)
	require.Equal(t, "open", pulls[0].State)

	held, err = d.Holds(ctx, c, sopsMark)
	require.NoError(t, err)
	require.True(t, held)
	// Write again (as after a crash that Holds would not have seen): no
	// second commit, no second pull request.
	again, err := d.Write(ctx, c, sopsMark)
	require.NoError(t, err)
	require.Equal(t, "pull request #1", again)
	require.Len(t, f.GitHubCommits("acme/deploy", branch), 2)
	require.Len(t, f.GitHubPullRequests("acme/deploy"), 1)

	// Merged by a reviewer: the default branch holds it.
	require.NoError(t, f.MergeGitHubPullRequest("acme/deploy", 1))
	held, err = d.Holds(ctx, c, sopsMark)
	require.NoError(t, err)
	require.True(t, held)

	for _, call := range f.Calls() {
		planted.RequireNone(t, call.Service+" "+call.Action, fmt.Sprint(call.Params))
	}
	planted.RequireNone(t, "what Write returned, the plan", what, again, fmt.Sprint(d.Calls()))
	for _, pr := range f.GitHubPullRequests("acme/deploy") {
		planted.RequireNone(t, "the pull request", pr.Title, pr.Body)
	}
	for _, cm := range f.GitHubCommits("acme/deploy", "main") {
		planted.RequireNone(t, "the commit message", cm.Message)
	}
}

// A branch whose commit is there but whose pull request is not (a crash
// between the two, or a closed one) gets a pull request and no second
// commit.
func TestSOPSPullRequestIsOpenedAgainWithoutASecondCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := sopstest.Shared(t)
	const token = "ghp_SOPSDestinationTestToken0000000000002"
	seed := githubSeed(t, token)
	before := sopstest.Encrypt(t, []byte(plainYAML), "yaml", sopstest.Rules{}, key.Recipient)
	seed.GitHub.Repositories = append(seed.GitHub.Repositories, sandboxRepo("acme/deploy", map[string]string{"secrets/prod.enc.yaml": string(before)}))
	f := testkit.Sandbox(t, seed)
	client := f.GitHubClient(t, token)
	spec := SOPSSpec{Repository: "acme/deploy", Path: "secrets/prod.enc.yaml", Base: "main", Branch: "rotate-ci",
		Keys: map[string]string{"aws.access_key_id": "AccessKeyId", "aws.secret_access_key": "SecretAccessKey"}}
	d, err := newSOPS(spec, SOPSDeps{AgeKeyFile: key.File, GitHub: func() (*gh.Client, error) { return client, nil }})
	require.NoError(t, err)
	_, err = d.Write(ctx, newKey(), sopsMark)
	require.NoError(t, err)
	// The pull request closes (as if never opened): Holds says no, Write
	// opens a new one without a commit.
	_, _, err = client.PullRequests.Edit(ctx, "acme", "deploy", 1, &gh.PullRequest{State: gh.String("closed")})
	require.NoError(t, err)
	held, err := d.Holds(ctx, newKey(), sopsMark)
	require.NoError(t, err)
	require.False(t, held)
	what, err := d.Write(ctx, newKey(), sopsMark)
	require.NoError(t, err)
	require.Equal(t, "pull request #2", what)
	require.Len(t, f.GitHubCommits("acme/deploy", "rotate-ci"), 2)
}

func sandboxRepo(name string, files map[string]string) sandbox.SeedGitHubRepository {
	return sandbox.SeedGitHubRepository{Name: name, Files: files}
}

// githubSeed is a sandbox seed with the responder's AWS account (every
// seed needs it) and a GitHub token.
func githubSeed(t *testing.T, token string) sandbox.Seed {
	t.Helper()
	return testkit.Seed(t, `accounts:
  - id: "111122223333"
    users:
      - `+sandbox.ResponderSeedUser+`
github:
  token: `+token+"\n")
}
