package destinations_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	gh "github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/nacl/box"

	"github.com/stanchhq/stanch/actions"
	awsactions "github.com/stanchhq/stanch/actions/aws"
	ghactions "github.com/stanchhq/stanch/actions/github"
	"github.com/stanchhq/stanch/destinations"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

const (
	ghToken     = "ghp_SANDBOXrotationWRITERtoken0000000001"
	ghLeakedKey = "AKIAIOSFODNN7EXAMPLE"
	// ghOldSecret is the leaked key's secret half, in the seeded secrets.
	ghOldSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

const ghSeed = `
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
      - name: ci-bot
        keys:
          - {id: ` + ghLeakedKey + `, secret: ` + ghOldSecret + `}
    secrets:
      - name: iam-user/ci-bot
        value: '{"UserName":"ci-bot","AccessKeyId":"` + ghLeakedKey + `","SecretAccessKey":"` + ghOldSecret + `"}'
github:
  token: ` + ghToken + `
  repositories:
    - name: acme/api
      id: 4242
      secrets: {AWS_ACCESS_KEY_ID: ` + ghLeakedKey + `, AWS_SECRET_ACCESS_KEY: ` + ghOldSecret + `, NPM_TOKEN: untouched}
      environments: {production: {AWS_SECRET_ACCESS_KEY: ` + ghOldSecret + `}}
    - name: acme/web
      id: 4343
`

type ghFixture struct {
	f       *testkit.Fixture
	rotate  actions.Action
	account string
}

func ghSetup(t *testing.T) ghFixture {
	t.Helper()
	f := testkit.Sandbox(t, testkit.Seed(t, ghSeed))
	cfg := f.AWSConfig()
	client := func() (*gh.Client, error) {
		return ghactions.NewClient(ghactions.Options{APIURL: f.GitHubAPI(), Token: ghToken})
	}
	p := awsactions.NewProvider(awsactions.ProviderOptions{
		Config:       func(context.Context, string) (awssdk.Config, error) { return cfg, nil },
		VerifyDelay:  10 * time.Millisecond,
		Destinations: destinations.Deps{GitHub: destinations.GitHubDeps{Client: client}},
	})
	fx := ghFixture{f: f, account: "111122223333"}
	for _, a := range awsactions.Actions(p) {
		if a.Spec().Name == "aws.rotate_key" {
			fx.rotate = a
		}
	}
	return fx
}

// stepStart is a step start after which nothing seeded can pass for a
// write of the step: updated_at is in whole seconds.
func ghStepStart() time.Time {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(2 * time.Second)))
	return time.Now()
}

func ghRotateEnv(run string, started time.Time, logs *ghLogs) actions.Env {
	env := actions.Env{RunID: run, StepID: "rotate", Attempt: 1, IdempotencyKey: run + "/rotate", StepStartedAt: started}
	if logs != nil {
		env.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return env
}

type ghLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *ghLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}
func (l *ghLogs) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

func ghDest(spec map[string]any) map[string]any { return map[string]any{"github_actions": spec} }

var ghAWSSecrets = map[string]any{"AWS_ACCESS_KEY_ID": "AccessKeyId", "AWS_SECRET_ACCESS_KEY": "SecretAccessKey"}

func ghRotateWith(dests ...any) map[string]any {
	return map[string]any{"user_name": "ci-bot", "leaked_access_key_id": ghLeakedKey, "secret_id": "iam-user/ci-bot", "destinations": dests}
}

// opened opens a secret the sandbox holds with the scope's private key.
func ghOpened(t *testing.T, f *testkit.Fixture, scope, name string) string {
	t.Helper()
	sec, ok := f.ActionsSecret(scope, name)
	require.True(t, ok, "%s %s", scope, name)
	key, ok := f.ActionsPrivateKey(scope)
	require.True(t, ok, scope)
	plain, err := key.Open(sec.Sealed)
	require.NoError(t, err, "%s %s is sealed with the scope's public key", scope, name)
	return string(plain)
}

func ghPuts(f *testkit.Fixture, name string) int {
	n := 0
	for _, c := range f.Calls() {
		if strings.HasPrefix(c.Action, "CreateOrUpdate") && strings.HasSuffix(c.Action, "Secret") && c.Params["secret_name"] == name && c.Status < 300 {
			n++
		}
	}
	return n
}

func ghNewKey(t *testing.T, f *testkit.Fixture, account string) (id, secret string) {
	t.Helper()
	cur, _, ok := f.SecretValue(account, "us-east-1", "iam-user/ci-bot", "AWSCURRENT")
	require.True(t, ok)
	var ks struct{ AccessKeyId, SecretAccessKey string }
	require.NoError(t, json.Unmarshal([]byte(cur), &ks))
	require.NotEqual(t, ghLeakedKey, ks.AccessKeyId)
	return ks.AccessKeyId, ks.SecretAccessKey
}

// The new key goes to Secrets Manager, to a repository's, an environment's
// and an organisation's Actions secrets, sealed so that only the scope's
// private key opens it; a second run finds every secret set and writes
// nothing; the secret half is in the stores only.
func TestRotateKeyIntoGitHubActionsSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := ghSetup(t)
	with := ghRotateWith(
		ghDest(map[string]any{"repository": "acme/api", "secrets": ghAWSSecrets}),
		ghDest(map[string]any{"repository": "acme/api", "environment": "production", "secrets": map[string]any{"AWS_SECRET_ACCESS_KEY": "SecretAccessKey", "AWS_ACCESS_KEY_ID": "AccessKeyId"}}),
		ghDest(map[string]any{"org": "acme", "visibility": "selected", "selected_repositories": []any{"web"}, "secrets": map[string]any{"CI_AWS_KEY_ID": "AccessKeyId", "CI_AWS_SECRET": "SecretAccessKey"}}),
	)
	l := &ghLogs{}
	env := ghRotateEnv("run_gh", ghStepStart(), l)
	plan, err := fx.rotate.Plan(ctx, env, testkit.Decode(t, fx.rotate, with))
	require.NoError(t, err)
	require.Contains(t, plan.Summary, "GitHub Actions secrets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY of acme/api")
	var writes []string
	for _, c := range plan.Calls {
		if c.Service == "github" && c.Mutates {
			writes = append(writes, c.Operation+" "+fmt.Sprint(c.Params["secret_name"]))
		}
	}
	require.ElementsMatch(t, []string{
		"Actions.CreateOrUpdateRepoSecret AWS_ACCESS_KEY_ID", "Actions.CreateOrUpdateRepoSecret AWS_SECRET_ACCESS_KEY",
		"Actions.CreateOrUpdateEnvSecret AWS_ACCESS_KEY_ID", "Actions.CreateOrUpdateEnvSecret AWS_SECRET_ACCESS_KEY",
		"Actions.CreateOrUpdateOrgSecret CI_AWS_KEY_ID", "Actions.CreateOrUpdateOrgSecret CI_AWS_SECRET",
	}, writes, "the plan lists each write")

	var effects []string
	env.Effect = func(e actions.Effect) { effects = append(effects, e.Description) }
	res, err := fx.rotate.Do(ctx, env, testkit.Decode(t, fx.rotate, with))
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	id, secret := ghNewKey(t, fx.f, fx.account)
	require.Equal(t, id, res.Outputs["new_access_key_id"])

	require.Equal(t, id, ghOpened(t, fx.f, "acme/api", "AWS_ACCESS_KEY_ID"))
	require.Equal(t, secret, ghOpened(t, fx.f, "acme/api", "AWS_SECRET_ACCESS_KEY"))
	require.Equal(t, "untouched", ghOpened(t, fx.f, "acme/api", "NPM_TOKEN"), "secrets the step does not name stay")
	require.Equal(t, id, ghOpened(t, fx.f, "acme/api/production", "AWS_ACCESS_KEY_ID"))
	require.Equal(t, secret, ghOpened(t, fx.f, "acme/api/production", "AWS_SECRET_ACCESS_KEY"))
	require.Equal(t, id, ghOpened(t, fx.f, "acme", "CI_AWS_KEY_ID"))
	require.Equal(t, secret, ghOpened(t, fx.f, "acme", "CI_AWS_SECRET"))
	org, _ := fx.f.ActionsSecret("acme", "CI_AWS_SECRET")
	require.Equal(t, "selected", org.Visibility)
	require.Equal(t, []int64{4343}, org.SelectedRepositoryIDs)
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CI_AWS_KEY_ID", "CI_AWS_SECRET"} {
		want := 1
		if strings.HasPrefix(name, "AWS_") {
			want = 2 // the repository's and the environment's
		}
		require.Equal(t, want, ghPuts(fx.f, name), name)
	}
	require.Contains(t, strings.Join(effects, "\n"), "wrote the new key "+id+" to GitHub Actions secrets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY of acme/api (set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY sealed with key ")

	// Again: every secret was updated since the step began; nothing is
	// written.
	again, err := fx.rotate.Do(ctx, env, testkit.Decode(t, fx.rotate, with))
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome)
	require.Equal(t, 2, ghPuts(fx.f, "AWS_SECRET_ACCESS_KEY"))
	require.Equal(t, 1, ghPuts(fx.f, "CI_AWS_SECRET"))
	require.Equal(t, 1, fx.f.EffectiveCount("CreateAccessKey"))

	require.Len(t, secret, 40)
	for _, text := range []string{l.String(), fmt.Sprint(res), fmt.Sprint(again), fmt.Sprint(plan), strings.Join(effects, "\n")} {
		require.NotContains(t, text, secret)
	}
	for _, c := range fx.f.Calls() {
		require.NotContains(t, fmt.Sprint(c.Params), secret, "%s %s", c.Service, c.Action)
	}
	planted.RequireNone(t, "the rotation's logs", l.String())
}

// Three destinations, the second refused (a repository stanch cannot
// see): the step stops naming what holds the key and what does not; a
// retry with the mistake fixed completes the rest with the same key and
// does not set the first one's secrets again.
func TestRotateIntoGitHubActionsStopsAtAFailureAndARetryCompletes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := ghSetup(t)
	first := ghDest(map[string]any{"repository": "acme/api", "secrets": ghAWSSecrets})
	third := ghDest(map[string]any{"repository": "acme/api", "environment": "production", "secrets": ghAWSSecrets})
	with := ghRotateWith(first, ghDest(map[string]any{"repository": "acme/gone", "secrets": ghAWSSecrets}), third)
	env := ghRotateEnv("run_gh_fail", ghStepStart(), nil)
	_, err := fx.rotate.Do(ctx, env, testkit.Decode(t, fx.rotate, with))
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "GitHub Actions secrets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY of acme/gone failed")
	require.Contains(t, msg, "It is in: Secrets Manager secret iam-user/ci-bot (AWSPENDING), GitHub Actions secrets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY of acme/api")
	require.Contains(t, msg, "not written yet: GitHub Actions secrets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY of acme/api environment production")
	require.Contains(t, msg, "secrets: write")
	require.Equal(t, actions.KindPermanent, actions.KindOf(err), "a refused write needs people: %v", err)
	require.Equal(t, 1, ghPuts(fx.f, "AWS_SECRET_ACCESS_KEY"))

	// A GitHub outage is retryable, and also stops the step.
	with["destinations"] = []any{first, third}
	fx.f.SetFault("github", sandbox.Fault{ErrorRate: 1})
	_, err = fx.rotate.Do(ctx, env, testkit.Decode(t, fx.rotate, with))
	require.Error(t, err)
	require.Equal(t, actions.KindRetryable, actions.KindOf(err), "%v", err)
	fx.f.SetFault("github", sandbox.Fault{})

	res, err := fx.rotate.Do(ctx, env, testkit.Decode(t, fx.rotate, with))
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	id, secret := ghNewKey(t, fx.f, fx.account)
	require.Equal(t, 1, fx.f.EffectiveCount("CreateAccessKey"), "one new key across the failure and the retries")
	require.Equal(t, 2, ghPuts(fx.f, "AWS_SECRET_ACCESS_KEY"), "acme/api once, the environment once")
	require.Equal(t, secret, ghOpened(t, fx.f, "acme/api/production", "AWS_SECRET_ACCESS_KEY"))
	require.Equal(t, id, ghOpened(t, fx.f, "acme/api", "AWS_ACCESS_KEY_ID"))
	cur, err := secretsmanager.NewFromConfig(fx.f.AWSConfig()).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String("iam-user/ci-bot")})
	require.NoError(t, err)
	require.NotEmpty(t, cur.VersionIdsToStages)
	require.NotContains(t, msg, secret)
}

// An earlier attempt that died between two secrets: the one it set is
// not set again; GitHub's public key changed meanwhile, and the write
// seals with the new one.
func TestGitHubActionsWritesOnlyWhatIsMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := testkit.Sandbox(t, testkit.Seed(t, ghSeed))
	deps := destinations.Deps{GitHub: destinations.GitHubDeps{Client: func() (*gh.Client, error) {
		return ghactions.NewClient(ghactions.Options{APIURL: f.GitHubAPI(), Token: ghToken})
	}}}
	ds, err := destinations.Build([]destinations.Spec{{GitHubActions: &destinations.GitHubActionsSpec{
		Repository: "acme/api", Secrets: map[string]string{"AWS_ACCESS_KEY_ID": "AccessKeyId", "AWS_SECRET_ACCESS_KEY": "SecretAccessKey"}}}}, deps)
	require.NoError(t, err)
	d := ds[0]
	c := destinations.Credential{ID: "AKIANEWKEY0000000001", Secret: map[string]bool{"SecretAccessKey": true},
		Fields: map[string]string{"UserName": "ci-bot", "AccessKeyId": "AKIANEWKEY0000000001", "SecretAccessKey": "newSecretNewSecretNewSecretNewSecret0001"}}
	m := destinations.Mark{RunID: "run_partial", StepID: "rotate", Since: ghStepStart()}

	held, err := d.Holds(ctx, c, m)
	require.NoError(t, err)
	require.False(t, held, "the seeded secrets are older than the step")

	// The earlier attempt: AWS_ACCESS_KEY_ID set, then it died.
	client, err := deps.GitHub.Client()
	require.NoError(t, err)
	key, _ := f.ActionsPrivateKey("acme/api")
	sealed, err := ghSeal(key, c.Fields["AccessKeyId"])
	require.NoError(t, err)
	_, err = client.Actions.CreateOrUpdateRepoSecret(ctx, "acme", "api", &gh.EncryptedSecret{Name: "AWS_ACCESS_KEY_ID", KeyID: key.ID, EncryptedValue: sealed})
	require.NoError(t, err)
	held, err = d.Holds(ctx, c, m)
	require.NoError(t, err)
	require.False(t, held, "one of two secrets is not a holding")

	require.NoError(t, f.RotateActionsKey("acme/api"))
	what, err := d.Write(ctx, c, m)
	require.NoError(t, err)
	require.Contains(t, what, "set AWS_SECRET_ACCESS_KEY sealed with key ")
	require.Contains(t, what, "AWS_ACCESS_KEY_ID already set by this step")
	require.Equal(t, 1, ghPuts(f, "AWS_ACCESS_KEY_ID"))
	require.Equal(t, 1, ghPuts(f, "AWS_SECRET_ACCESS_KEY"))
	require.Equal(t, c.Fields["SecretAccessKey"], ghOpened(t, f, "acme/api", "AWS_SECRET_ACCESS_KEY"), "sealed with the key GitHub holds now")
	held, err = d.Holds(ctx, c, m)
	require.NoError(t, err)
	require.True(t, held)
	require.NotContains(t, what, c.Fields["SecretAccessKey"])
}

// A github_actions destination that does not say where, or what, is
// refused before anything runs.
func TestGitHubActionsSpecIsChecked(t *testing.T) {
	t.Parallel()
	s := map[string]string{"AWS_ACCESS_KEY_ID": "AccessKeyId"}
	for spec, want := range map[*destinations.GitHubActionsSpec]string{
		{Secrets: s}:                                      "repository (owner/name) or org is required",
		{Repository: "acme", Secrets: s}:                  `repository "acme" is not owner/name`,
		{Repository: "acme/api"}:                          "secrets is required",
		{Repository: "acme/api", Org: "acme", Secrets: s}: "not both",
		{Org: "acme", Secrets: s}:                         "visibility (all, private or selected) is required",
		{Org: "acme", Visibility: "selected", Secrets: s}: "needs selected_repositories",
		{Repository: "acme/api", Secrets: map[string]string{"GITHUB_X": "AccessKeyId"}}: "GITHUB_",
		{Repository: "acme/api", Secrets: map[string]string{"1X": "AccessKeyId"}}:       "letters, digits and _",
		{Repository: "acme/api", Visibility: "all", Secrets: s}:                         "org secrets only",
	} {
		err := destinations.Check([]destinations.Spec{{GitHubActions: spec}})
		require.ErrorContains(t, err, want, "%+v", *spec)
		require.Contains(t, err.Error(), "destinations[0].github_actions: ")
	}
	require.NoError(t, destinations.Check([]destinations.Spec{{GitHubActions: &destinations.GitHubActionsSpec{Org: "acme", Visibility: "private", Secrets: s}}}))
}

func ghSeal(key sandbox.ActionsKey, value string) (string, error) {
	sealed, err := box.SealAnonymous(nil, []byte(value), key.Public, rand.Reader)
	return base64.StdEncoding.EncodeToString(sealed), err
}
