package aws

import (
	"context"
	"net/http"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// The trial's mistake: the leaked key is in account B, reached through a
// response role, and stanch's own account A has a user of the same name.
// Nothing may be written in A, and "already done" must never be inferred
// from A.

const (
	ownAccount    = "111122223333"
	leakedAccount = "444455556666"
)

type twins struct {
	name        string
	p           *Provider
	user        string
	keyA, keyB  string
	secretB     string
	keys        func(t *testing.T, account string) map[string]string // key → status of user in account
	secretValue func(t *testing.T, account, secret string) string
	writesInOwn func() int // state-changing calls made in A; nil where no call log is kept
}

const twinSeed = `
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
      - name: ci-bot
        keys: [{id: AKIAOWNACCOUNTCIBOT1, secret: ownAccountCiBotSecretOwnAccountCiBotSe1}]
      - name: ci-bot-other
    secrets:
      - name: iam-user/ci-bot
        value: '{"UserName":"ci-bot","AccessKeyId":"AKIAOWNACCOUNTCIBOT1","SecretAccessKey":"own"}'
  - id: "444455556666"
    users:
      - name: ci-bot
        keys: [{id: AKIALEAKEDACCOUNTKEY, secret: leakedAccountSecretLeakedAccountSecret1}]
      - name: ci-bot-other
    roles:
      - name: stanch-responder
        trusted_accounts: ["111122223333"]
        external_id: ext-twins
    secrets:
      - name: iam-user/ci-bot
        value: '{"UserName":"ci-bot","AccessKeyId":"AKIALEAKEDACCOUNTKEY","SecretAccessKey":"old"}'
`

func twinRoles() *ResponseRoles {
	return &ResponseRoles{ARN: "arn:aws:iam::{account}:role/stanch-responder", ExternalID: "ext-twins"}
}

func sandboxTwins(t *testing.T) twins {
	sb := testkit.Sandbox(t, testkit.Seed(t, twinSeed))
	base := sb.AWSConfig()
	p := NewProvider(ProviderOptions{Config: func(context.Context, string) (awssdk.Config, error) { return base, nil }, Roles: twinRoles(), VerifyDelay: 10 * time.Millisecond})
	return twins{
		name: "sandbox", p: p, user: "ci-bot", keyA: "AKIAOWNACCOUNTCIBOT1", keyB: "AKIALEAKEDACCOUNTKEY", secretB: "iam-user/ci-bot",
		keys: func(t *testing.T, account string) map[string]string {
			out := map[string]string{}
			for _, a := range sb.State().Accounts {
				if a.ID != account {
					continue
				}
				for _, u := range a.Users {
					if u.Name == "ci-bot" {
						for _, k := range u.Keys {
							out[k.ID] = k.Status
						}
					}
				}
			}
			return out
		},
		secretValue: func(t *testing.T, account, secret string) string {
			cfg, err := p.config(context.Background(), account)
			require.NoError(t, err)
			out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(secret)})
			require.NoError(t, err)
			return awssdk.ToString(out.SecretString)
		},
		writesInOwn: func() int {
			n := 0
			for _, c := range sb.Calls() {
				if c.Account == ownAccount && c.Effective {
					n++
				}
			}
			return n
		},
	}
}

// inAccount makes moto act in account for the test's own setup calls.
type inAccount struct {
	account string
	next    http.RoundTripper
}

func (h inAccount) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("x-moto-account-id", h.account)
	return h.next.RoundTrip(r)
}

func motoTwins(t *testing.T) twins {
	if motoURL == "" {
		t.Skip("moto_server is not on PATH (the machine image provides it); the sandbox variant still runs")
	}
	ctx := context.Background()
	own := testkit.AWSConfig(motoURL, "AKIAMOTOTESTING00000", "testing")
	// moto's default account is A; B is reached with its account header
	// for setup, and by stanch through sts:AssumeRole of B's role.
	b := own.Copy()
	b.HTTPClient = &http.Client{Transport: inAccount{account: leakedAccount, next: http.DefaultTransport}}
	user := "ci-bot-" + time.Now().Format("150405.000000000")
	secret := "iam-user/" + user
	tw := twins{name: "moto", user: user, secretB: secret}
	for _, c := range []struct {
		cfg awssdk.Config
		key *string
		old string
	}{{own, &tw.keyA, "own"}, {b, &tw.keyB, "old"}} {
		_, err := iam.NewFromConfig(c.cfg).CreateUser(ctx, &iam.CreateUserInput{UserName: awssdk.String(user)})
		require.NoError(t, err)
		k, err := iam.NewFromConfig(c.cfg).CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: awssdk.String(user)})
		require.NoError(t, err)
		*c.key = awssdk.ToString(k.AccessKey.AccessKeyId)
		_, err = secretsmanager.NewFromConfig(c.cfg).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awssdk.String(secret),
			SecretString: awssdk.String(`{"UserName":"` + user + `","AccessKeyId":"` + *c.key + `","SecretAccessKey":"` + c.old + `"}`)})
		require.NoError(t, err)
		_, err = iam.NewFromConfig(c.cfg).CreateUser(ctx, &iam.CreateUserInput{UserName: awssdk.String(user + "-other")})
		require.NoError(t, err)
	}
	cfgOf := func(account string) awssdk.Config {
		if account == leakedAccount {
			return b
		}
		return own
	}
	tw.p = NewProvider(ProviderOptions{Config: func(context.Context, string) (awssdk.Config, error) { return own, nil }, Roles: twinRoles(), VerifyDelay: 10 * time.Millisecond})
	tw.keys = func(t *testing.T, account string) map[string]string {
		out, err := iam.NewFromConfig(cfgOf(account)).ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: awssdk.String(user)})
		require.NoError(t, err)
		ids := map[string]string{}
		for _, k := range out.AccessKeyMetadata {
			ids[awssdk.ToString(k.AccessKeyId)] = string(k.Status)
		}
		return ids
	}
	tw.secretValue = func(t *testing.T, account, secret string) string {
		out, err := secretsmanager.NewFromConfig(cfgOf(account)).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(secret)})
		require.NoError(t, err)
		return awssdk.ToString(out.SecretString)
	}
	return tw
}

func (tw twins) action(name string) actions.Action {
	for _, a := range Actions(tw.p) {
		if a.Spec().Name == name {
			return a
		}
	}
	return nil
}

func (tw twins) do(t *testing.T, name string, env actions.Env, with map[string]any) (actions.Result, error) {
	t.Helper()
	env.RunID, env.StepID, env.IdempotencyKey, env.Attempt = "run_twins", name, "run_twins/"+name, 1
	return testkit.RunAction(t, tw.action(name), env, with)
}

func TestNeverTheWrongAccount(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(t *testing.T) twins{"sandbox": sandboxTwins, "moto": motoTwins} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tw := mk(t)
			ownKeys := tw.keys(t, ownAccount)
			ownSecret := tw.secretValue(t, ownAccount, tw.secretB)

			// Told to act in A on B's key: refused, whatever A's same-named
			// user looks like, before anything is written.
			for _, step := range []struct {
				action string
				with   map[string]any
			}{
				{"aws.deactivate_key", map[string]any{"access_key_id": tw.keyB, "user_name": tw.user, "account": ownAccount}},
				{"aws.delete_key", map[string]any{"access_key_id": tw.keyB, "user_name": tw.user, "account": ownAccount, "allow_active": true}},
				{"aws.rotate_key", map[string]any{"leaked_access_key_id": tw.keyB, "user_name": tw.user, "secret_id": tw.secretB, "account": ownAccount, "when_two_keys": "delete_leaked_if_inactive"}},
				{"aws.cloudtrail_impact", map[string]any{"access_key_id": tw.keyB, "account": ownAccount, "regions": "us-east-1"}},
			} {
				_, err := tw.do(t, step.action, actions.Env{}, step.with)
				require.Error(t, err, step.action)
				require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%s: %v", step.action, err)
				require.Contains(t, err.Error(), tw.keyB+" belongs to account "+leakedAccount+", not to account "+ownAccount, step.action)
				require.Contains(t, err.Error(), "nothing was changed", step.action)
			}
			// Left to the defaults without an identified owner, the steps act
			// in stanch's own account, and are refused the same way.
			_, err := tw.do(t, "aws.delete_key", actions.Env{}, map[string]any{"access_key_id": tw.keyB, "user_name": tw.user})
			require.ErrorContains(t, err, "belongs to account "+leakedAccount)

			// In B, the real thing; "already" only once B says so.
			env := actions.Env{Owner: actions.Owner{Account: leakedAccount, User: tw.user, Credential: tw.keyB, By: "identify"}}
			with := map[string]any{"access_key_id": tw.keyB, "user_name": tw.user, "account": leakedAccount}
			res, err := tw.do(t, "aws.deactivate_key", env, with)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			require.Contains(t, res.Message, "in account "+leakedAccount)

			// A user of B who does not own the key is no proof it is gone.
			_, err = tw.do(t, "aws.delete_key", env, map[string]any{"access_key_id": tw.keyB, "user_name": tw.user + "-other", "account": leakedAccount})
			require.Error(t, err)
			require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
			require.Contains(t, err.Error(), "it belongs to user "+tw.user)

			res, err = tw.do(t, "aws.delete_key", env, with)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			require.Empty(t, tw.keys(t, leakedAccount), "the leaked key is gone from B")
			res, err = tw.do(t, "aws.delete_key", env, with)
			require.NoError(t, err)
			require.Equal(t, actions.Already, res.Outcome, "gone, as B says")
			require.Contains(t, res.Message, "in account "+leakedAccount)

			// A rotation with no secret to put the key in creates no key.
			res, err = tw.do(t, "aws.rotate_key", env, map[string]any{"leaked_access_key_id": tw.keyB, "user_name": tw.user, "secret_id": "iam-user/nobody-reads-this", "account": leakedAccount})
			require.NoError(t, err)
			require.Equal(t, actions.NoOp, res.Outcome)
			require.Contains(t, res.Message, "no secret iam-user/nobody-reads-this in account "+leakedAccount)
			require.Empty(t, tw.keys(t, leakedAccount), "no key nobody would ever read")

			require.Equal(t, ownKeys, tw.keys(t, ownAccount), "A's user kept its key as it was")
			require.Equal(t, ownSecret, tw.secretValue(t, ownAccount, tw.secretB), "A's secret was not touched")
			if tw.writesInOwn != nil {
				require.Zero(t, tw.writesInOwn(), "no state-changing call at all in the account that does not own the key")
			}
		})
	}
}

func TestRotateCreatesAMissingSecretWhenAsked(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(t *testing.T) twins{"sandbox": sandboxTwins, "moto": motoTwins} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tw := mk(t)
			env := actions.Env{Owner: actions.Owner{Account: leakedAccount, User: tw.user, Credential: tw.keyB, By: "identify"}}
			_, err := tw.do(t, "aws.deactivate_key", env, map[string]any{"access_key_id": tw.keyB, "account": leakedAccount, "user_name": tw.user})
			require.NoError(t, err)
			secret := "iam-user/created-" + tw.user
			with := map[string]any{"leaked_access_key_id": tw.keyB, "user_name": tw.user, "secret_id": secret, "account": leakedAccount, "when_no_secret": "create"}
			a := tw.action("aws.rotate_key")
			p, err := a.Decode(with)
			require.NoError(t, err)
			plan, err := a.Plan(context.Background(), env, p)
			require.NoError(t, err)
			require.Equal(t, "CreateSecret", firstMutating(plan).Operation, "the secret is created before the key, so that a refusal leaves no key behind")
			res, err := tw.do(t, "aws.rotate_key", env, with)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			newKey := res.Outputs["new_access_key_id"].(string)
			require.Equal(t, map[string]string{tw.keyB: "Inactive", newKey: "Active"}, tw.keys(t, leakedAccount))
			require.Contains(t, tw.secretValue(t, leakedAccount, secret), newKey)
		})
	}
}

func firstMutating(p actions.Plan) actions.Call {
	for _, c := range p.Calls {
		if c.Mutates {
			return c
		}
	}
	return actions.Call{}
}
