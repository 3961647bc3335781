package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// The same tests run against two independent implementations of IAM and
// STS: stanch's sandbox and moto.

var motoURL string // set by TestMain when moto_server is available

func TestMain(m *testing.M) {
	stop := startMoto()
	code := m.Run()
	stop()
	os.Exit(code)
}

func startMoto() func() {
	if _, err := exec.LookPath("moto_server"); err != nil {
		return func() {}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return func() {}
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("moto_server", "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	// moto knows AWS's managed policies (the quarantine ones among them)
	// only when asked to load them.
	cmd.Env = append(os.Environ(), "MOTO_IAM_LOAD_MANAGED_POLICIES=true")
	if err := cmd.Start(); err != nil {
		return func() {}
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for range 150 {
		if res, err := http.Get(url + "/moto-api/"); err == nil {
			res.Body.Close()
			motoURL = url
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

type backend struct {
	name    string
	cfg     awssdk.Config
	account string
	user    string
	leaked  string
	other   string
	secrets []string
	// effective counts state-changing calls of an action; nil where the
	// backend keeps no call log (moto).
	effective func(action string) int
	calls     func(action string) int
}

const seedYAML = `
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
      - name: ci-bot
        keys:
          - {id: AKIAIOSFODNN7EXAMPLE, secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, last_used: {date: 2026-11-27T10:00:00Z, service: s3, region: us-east-1}}
          - {id: AKIAI44QH8DHBEXAMPLE, secret: je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY}
    roles: [{name: app-server}]
    sessions: [{id: ASIAIOSFODNN7SESSION, secret: sessionSecretSessionSecretSessionSecret1, role: app-server}]
  - id: "444455556666"
    users:
      - name: other-responder
        keys: [{id: AKIAOTHERACCOUNTKEY1, secret: otherSecretOtherSecretOtherSecretOther12}]
`

func sandboxBackend(t *testing.T) (backend, *sandbox.Sandbox) {
	t.Helper()
	sb := testkit.Sandbox(t, testkit.Seed(t, seedYAML))
	return backend{
		name:      "sandbox",
		cfg:       sb.AWSConfig(),
		account:   "111122223333",
		user:      "ci-bot",
		leaked:    "AKIAIOSFODNN7EXAMPLE",
		other:     "AKIAI44QH8DHBEXAMPLE",
		secrets:   []string{sandbox.ResponderSecret, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"},
		effective: sb.EffectiveCount,
		calls:     sb.Count,
	}, sb.Sandbox
}

// motoBackend creates a user with two keys in moto for one test.
func motoBackend(t *testing.T) backend {
	t.Helper()
	if motoURL == "" {
		t.Skip("moto_server is not on PATH (the machine image provides it); the sandbox variant still runs")
	}
	cfg := testkit.AWSConfig(motoURL, "AKIAMOTOTESTING00000", "testing")
	c := iam.NewFromConfig(cfg)
	ctx := context.Background()
	user := uniqueName("ci-bot")
	_, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: awssdk.String(user)})
	// The name is this test's alone: "already exists" means the SDK
	// retried a call whose answer moto's server dropped (it closes idle
	// connections), and the first one made the user.
	var exists *iamtypes.EntityAlreadyExistsException
	if !errors.As(err, &exists) {
		require.NoError(t, err)
	}
	b := backend{name: "moto", cfg: cfg, account: "123456789012", user: user}
	for i := range 2 {
		k, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: awssdk.String(user)})
		require.NoError(t, err)
		id := awssdk.ToString(k.AccessKey.AccessKeyId)
		b.secrets = append(b.secrets, awssdk.ToString(k.AccessKey.SecretAccessKey))
		if i == 0 {
			b.leaked = id
		} else {
			b.other = id
		}
	}
	return b
}

// nameSeq tells apart the names that parallel tests create in the one moto
// server they share, even within a nanosecond.
var nameSeq atomic.Int64

// uniqueName returns prefix with a suffix no other test of this process
// uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), nameSeq.Add(1))
}

func (b backend) provider(t *testing.T) *Provider {
	t.Helper()
	return NewProvider(ProviderOptions{Config: func(context.Context, string) (awssdk.Config, error) { return b.cfg, nil }, VerifyDelay: 10 * time.Millisecond})
}

func (b backend) actions(t *testing.T) map[string]actions.Action {
	t.Helper()
	p := b.provider(t)
	out := map[string]actions.Action{}
	for _, a := range Actions(p) {
		out[a.Spec().Name] = a
	}
	return out
}

func (b backend) status(t *testing.T, keyID string) string {
	t.Helper()
	out, err := iam.NewFromConfig(b.cfg).ListAccessKeys(context.Background(), &iam.ListAccessKeysInput{UserName: awssdk.String(b.user)})
	require.NoError(t, err)
	for _, k := range out.AccessKeyMetadata {
		if awssdk.ToString(k.AccessKeyId) == keyID {
			return string(k.Status)
		}
	}
	t.Fatalf("%s: key %s not found", b.name, keyID)
	return ""
}

// noSecrets fails when any secret of the backend appears in text.
func (b backend) noSecrets(t *testing.T, texts ...any) {
	t.Helper()
	for _, text := range texts {
		s := fmt.Sprint(text)
		for _, secret := range b.secrets {
			require.NotContains(t, s, secret)
		}
	}
}

func backends(t *testing.T) map[string]func(t *testing.T) backend {
	return map[string]func(t *testing.T) backend{
		"sandbox": func(t *testing.T) backend { b, _ := sandboxBackend(t); return b },
		"moto":    motoBackend,
	}
}

func TestIdentifyKey(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			res, err := testkit.RunAction(t, b.actions(t)["aws.identify_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked})
			require.NoError(t, err)
			require.Equal(t, b.account, res.Outputs["account"])
			require.Equal(t, b.user, res.Outputs["user_name"])
			require.Equal(t, "access_key", res.Outputs["key_kind"])
			require.Contains(t, res.Message, b.user)
			b.noSecrets(t, res)
		})
	}
}

func TestIdentifySandboxDetails(t *testing.T) {
	t.Parallel()
	b, _ := sandboxBackend(t)
	acts := b.actions(t)
	res, err := testkit.RunAction(t, acts["aws.identify_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked})
	require.NoError(t, err)
	require.Equal(t, "2026-11-27T10:00:00Z", res.Outputs["last_used_date"])
	require.Equal(t, "s3", res.Outputs["last_used_service"])

	session, err := testkit.RunAction(t, acts["aws.identify_key"], testkit.Env("run_test"), map[string]any{"access_key_id": "ASIAIOSFODNN7SESSION"})
	require.NoError(t, err)
	require.Equal(t, "role_session", session.Outputs["key_kind"])
	require.Equal(t, "", session.Outputs["user_name"])

	_, err = testkit.RunAction(t, acts["aws.identify_key"], testkit.Env("run_test"), map[string]any{"access_key_id": "AKIAOTHERACCOUNTKEY1"})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Contains(t, err.Error(), "belongs to account 444455556666")
	require.Contains(t, err.Error(), "act in account 111122223333")
}

func TestDeactivateLeavesTheOtherKeyActive(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			deactivate := b.actions(t)["aws.deactivate_key"]
			res, err := testkit.RunAction(t, deactivate, testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			require.Equal(t, "Active", res.Outputs["previous_status"])
			require.Equal(t, "Inactive", b.status(t, b.leaked))
			require.Equal(t, "Active", b.status(t, b.other), "only the given key is touched")

			again, err := testkit.RunAction(t, deactivate, testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked})
			require.NoError(t, err, "the owner is found when user_name is empty")
			require.Equal(t, actions.Already, again.Outcome)
			require.Contains(t, again.Message, "already Inactive")
			if b.effective != nil {
				require.Equal(t, 1, b.effective("UpdateAccessKey"))
				require.Equal(t, 1, b.calls("UpdateAccessKey"), "an inactive key gets no UpdateAccessKey")
			}
			b.noSecrets(t, res, again)
		})
	}
}

func TestDeactivateRefusesAKeyTheUserDoesNotHave(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			// A second user in the same account, without the leaked key.
			c := iam.NewFromConfig(b.cfg)
			stranger := "stranger"
			if b.name == "moto" {
				stranger = uniqueName("stranger")
				_, err := c.CreateUser(context.Background(), &iam.CreateUserInput{UserName: awssdk.String(stranger)})
				require.NoError(t, err)
			} else {
				stranger = "stanch-responder"
			}
			_, err := testkit.RunAction(t, b.actions(t)["aws.deactivate_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": stranger})
			require.Error(t, err)
			require.Equal(t, actions.KindPermanent, actions.KindOf(err))
			require.Contains(t, err.Error(), "has no access key "+b.leaked)
			require.Equal(t, "Active", b.status(t, b.leaked))
			b.noSecrets(t, err)
		})
	}
}

func TestPlanChangesNothing(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	deactivate := b.actions(t)["aws.deactivate_key"]
	p, err := deactivate.Decode(map[string]any{"access_key_id": b.leaked, "user_name": b.user})
	require.NoError(t, err)
	plan, err := deactivate.Plan(context.Background(), actions.Env{}, p)
	require.NoError(t, err)
	require.Zero(t, sb.Count("UpdateAccessKey"))
	require.Equal(t, "Active", b.status(t, b.leaked))
	var mutating []actions.Call
	for _, c := range plan.Calls {
		if c.Mutates {
			mutating = append(mutating, c)
			require.False(t, c.Made)
		}
	}
	require.Equal(t, []actions.Call{{Service: "iam", Operation: "UpdateAccessKey", Params: map[string]any{"AccessKeyId": b.leaked, "Status": "Inactive", "UserName": b.user}, Mutates: true,
		Account: b.account, Effect: "deactivate access key " + b.leaked + " of user " + b.user + " in account " + b.account}}, mutating)
	require.Contains(t, plan.Summary, "would deactivate")
	require.Empty(t, plan.Settled, "a change is planned")

	_, err = testkit.RunAction(t, deactivate, testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
	require.NoError(t, err)
	plan, err = deactivate.Plan(context.Background(), actions.Env{}, p)
	require.NoError(t, err)
	require.Contains(t, plan.Summary, "already Inactive")
	require.Equal(t, actions.Already, plan.Settled, "nothing to change: an approval of this step would ask nobody")
	for _, c := range plan.Calls {
		require.False(t, c.Mutates)
	}
}

func TestDeactivateRefusesOtherAccountsAndSessions(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	deactivate := b.actions(t)["aws.deactivate_key"]
	// A key of another account than the one named is refused before any
	// role is assumed: STS says whose it is.
	_, err := testkit.RunAction(t, deactivate, testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "account": "444455556666"})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Contains(t, err.Error(), "belongs to account 111122223333, not to account 444455556666 where this step acts; nothing was changed")
	// A key of that account needs its response role.
	_, err = testkit.RunAction(t, deactivate, testkit.Env("run_test"), map[string]any{"access_key_id": "AKIAOTHERACCOUNTKEY1", "account": "444455556666"})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Contains(t, err.Error(), "no response role is configured for account 444455556666")
	require.Zero(t, sb.Count("UpdateAccessKey"))

	_, err = deactivate.Decode(map[string]any{"access_key_id": "ASIAIOSFODNN7SESSION"})
	require.ErrorContains(t, err, "temporary (role session) credential")
}

func TestErrorsAreClassified(t *testing.T) {
	t.Parallel()
	b, _ := sandboxBackend(t)
	_, err := testkit.RunAction(t, b.actions(t)["aws.deactivate_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": "nobody"})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err), "NoSuchEntity is permanent: %v", err)
	var nse *iamtypes.NoSuchEntityException
	require.ErrorAs(t, err, &nse)

	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(unavailable.Close)
	cfg := testkit.AWSConfig(unavailable.URL, sandbox.ResponderKeyID, "x")
	cfg.RetryMaxAttempts = 1
	p := NewProvider(ProviderOptions{Config: func(context.Context, string) (awssdk.Config, error) { return cfg, nil }})
	identify := Actions(p)[0]
	_, err = testkit.RunAction(t, identify, testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked})
	require.Error(t, err)
	require.Equal(t, actions.KindRetryable, actions.KindOf(err), "a 503 is retryable: %v", err)
	require.True(t, strings.HasPrefix(err.Error(), "identify key "+b.leaked))
}

func TestConstructionNeedsNoCredentials(t *testing.T) {
	t.Parallel()
	as := Actions(NewProvider(ProviderOptions{}))
	var names []string
	for _, a := range as {
		spec := a.Spec()
		names = append(names, spec.Name)
		require.NotEmpty(t, spec.Permissions)
		require.NotEmpty(t, spec.Example)
	}
	require.Subset(t, names, []string{"aws.identify_key", "aws.deactivate_key", "aws.revoke_sessions", "aws.delete_key"})
}
