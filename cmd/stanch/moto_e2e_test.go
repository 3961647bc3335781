package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// moto_server is an AWS that stanch's authors did not write. Its accounts:
// a request with the header x-moto-account-id acts in that account (only
// the test's own setup and checks send it); credentials from sts:AssumeRole
// of arn:aws:iam::B:role/… act in B; any key moto does not know acts in its
// default account.

const motoDefaultAccount = "123456789012"

// startMotoServer runs a moto_server of the test's own on a free port and
// returns its URL; the test is skipped when moto_server is not installed.
func startMotoServer(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("moto_server"); err != nil {
		t.Skip("moto_server is not on PATH (the machine image provides it); the sandbox variant still runs")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	cmd := exec.Command("moto_server", "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MOTO_ACCOUNT_ID=") { // it would put every request in one account
			env = append(env, kv)
		}
	}
	// moto knows AWS's managed policies (the quarantine ones among them)
	// only when asked to load them.
	cmd.Env = append(env, "MOTO_IAM_LOAD_MANAGED_POLICIES=true")
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(time.Minute)
	for {
		if res, err := http.Get(base + "/moto-api/"); err == nil {
			res.Body.Close()
			return base
		}
		select {
		case <-done:
			t.Fatalf("moto_server exited before answering:\n%s", log.String())
		case <-time.After(100 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "moto_server did not answer on %s within a minute:\n%s", base, log.String())
	}
}

// awsRecorder is a reverse proxy between stanch and moto that records every
// call: its action, the key that signed it, and the account it acted in,
// decided as moto decides it. The proxy learns the accounts of the keys
// that pass through it: an AssumeRole's credentials belong to the role's
// account, a CreateAccessKey's key to its caller's.
type awsRecorder struct {
	defaultAccount string

	mu       sync.Mutex
	calls    []awsCall
	accounts map[string]string // access key id → account
}

type recordedCall struct{}

func newAWSRecorder(t *testing.T, target, defaultAccount string) (*awsRecorder, string) {
	t.Helper()
	u, err := neturl.Parse(target)
	require.NoError(t, err)
	rec := &awsRecorder{defaultAccount: defaultAccount, accounts: map[string]string{}}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// Let the transport ask for and undo any compression, so that
			// the answers read below are plain.
			pr.Out.Header.Del("Accept-Encoding")
		},
		ModifyResponse: rec.learn,
	}
	srv := httptest.NewServer(rec.record(proxy))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

// record notes the call a request makes and passes it on.
func (rec *awsRecorder) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		call := &awsCall{At: time.Now(), Params: map[string]string{}, Status: http.StatusBadGateway}
		// Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, …
		if _, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
			parts := strings.SplitN(cred, "/", 5)
			call.Key = parts[0]
			if len(parts) > 3 {
				call.Service = parts[3]
			}
		}
		if target := r.Header.Get("X-Amz-Target"); target != "" {
			// JSON protocols: Secrets Manager, CloudTrail.
			call.Action = target[strings.LastIndexByte(target, '.')+1:]
			var in map[string]any
			_ = json.Unmarshal(body, &in)
			if id, ok := in["SecretId"].(string); ok {
				call.Params["SecretId"] = id
			}
		} else {
			// The Query protocol: IAM, STS.
			form, _ := neturl.ParseQuery(string(body))
			call.Action = form.Get("Action")
			for _, k := range []string{"UserName", "AccessKeyId", "RoleArn"} {
				if v := form.Get(k); v != "" {
					call.Params[k] = v
				}
			}
		}
		rec.mu.Lock()
		switch known, ok := rec.accounts[call.Key]; {
		case r.Header.Get("x-moto-account-id") != "":
			call.Account = r.Header.Get("x-moto-account-id")
		case ok:
			call.Account = known
		default:
			call.Account = rec.defaultAccount
		}
		rec.mu.Unlock()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), recordedCall{}, call)))
		call.Changed = call.Status/100 == 2 && changesState(call.Action)
		rec.mu.Lock()
		rec.calls = append(rec.calls, *call)
		rec.mu.Unlock()
	})
}

// learn reads moto's answer: its status, and the keys it hands out.
func (rec *awsRecorder) learn(res *http.Response) error {
	call, ok := res.Request.Context().Value(recordedCall{}).(*awsCall)
	if !ok {
		return nil
	}
	call.Status = res.StatusCode
	call.RequestID = res.Header.Get("X-Amzn-Requestid")
	if res.StatusCode != http.StatusOK || (call.Action != "AssumeRole" && call.Action != "CreateAccessKey") {
		return nil
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	var out struct {
		Assumed string `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
		Created string `xml:"CreateAccessKeyResult>AccessKey>AccessKeyId"`
	}
	if err := xml.Unmarshal(body, &out); err != nil {
		return fmt.Errorf("read moto's %s answer: %w", call.Action, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if out.Assumed != "" {
		// arn:aws:iam::ACCOUNT:role/NAME
		if fields := strings.Split(call.Params["RoleArn"], ":"); len(fields) > 4 {
			rec.accounts[out.Assumed] = fields[4]
		}
	}
	if out.Created != "" {
		rec.accounts[out.Created] = call.Account
	}
	return nil
}

func (rec *awsRecorder) recorded() []awsCall {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]awsCall(nil), rec.calls...)
}

// motoAccount reaches one account of moto directly, as the test's own
// setup and checks do: never through the recorder.
type motoAccount struct {
	id  string
	iam *iam.Client
	sm  *secretsmanager.Client
}

func newMotoAccount(base, id string) motoAccount {
	cfg := aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(base),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAMOTOTESTSETUP001", "motoTestSetupSecretMotoTestSetupSecret01", ""),
		APIOptions:   []func(*middleware.Stack) error{smithyhttp.SetHeaderValue("x-moto-account-id", id)},
	}
	return motoAccount{id: id, iam: iam.NewFromConfig(cfg), sm: secretsmanager.NewFromConfig(cfg)}
}

// seedCIBot creates ci-bot with one key and the secret its consumers read
// the key from; it returns the key, its secret, the secret's value and
// version.
func (m motoAccount) seedCIBot(t *testing.T) (key, secret, value, version string) {
	t.Helper()
	ctx := context.Background()
	_, err := m.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(ciBotUser)})
	require.NoError(t, err)
	k, err := m.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(ciBotUser)})
	require.NoError(t, err)
	key, secret = aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)
	v, err := json.Marshal(map[string]string{"UserName": ciBotUser, "AccessKeyId": key, "SecretAccessKey": secret})
	require.NoError(t, err)
	s, err := m.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(ciBotSecretName), SecretString: aws.String(string(v))})
	require.NoError(t, err)
	return key, secret, string(v), aws.ToString(s.VersionId)
}

func (m motoAccount) keys(t *testing.T) map[string]string {
	t.Helper()
	out, err := m.iam.ListAccessKeys(context.Background(), &iam.ListAccessKeysInput{UserName: aws.String(ciBotUser)})
	require.NoError(t, err)
	keys := map[string]string{}
	for _, k := range out.AccessKeyMetadata {
		keys[aws.ToString(k.AccessKeyId)] = string(k.Status)
	}
	return keys
}

func (m motoAccount) secret(t *testing.T) (string, string) {
	t.Helper()
	out, err := m.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(ciBotSecretName), VersionStage: aws.String("AWSCURRENT")})
	require.NoError(t, err)
	return aws.ToString(out.SecretString), aws.ToString(out.VersionId)
}

// motoTwoAccounts is the scenario with AWS from moto (A is moto's default
// account) and GitHub from a sandbox. moto has no CloudTrail LookupEvents,
// so the impact step fails, the playbook goes on, and no derived credential
// asks for approval.
func motoTwoAccounts(t *testing.T) twoAccounts {
	motoURL := startMotoServer(t)
	a, b := newMotoAccount(motoURL, motoDefaultAccount), newMotoAccount(motoURL, leakAccount)
	keyA, secretA, valueA, versionA := a.seedCIBot(t)
	leaked, leakedSecret, _, _ := b.seedCIBot(t)
	rec, proxyURL := newAWSRecorder(t, motoURL, motoDefaultAccount)

	// The sandbox serves GitHub only; its AWS account is a formality of
	// the seed and nobody calls it.
	seed := sandbox.Seed{
		Accounts: []sandbox.SeedAccount{{ID: "999900001111", Users: []sandbox.SeedUser{{Name: "unused", Keys: []sandbox.SeedKey{{ID: "AKIAUNUSEDSANDBOX001", Secret: "unusedSecretUnusedSecretUnusedSecret0001"}}}}}},
		GitHub: &sandbox.SeedGitHub{Token: sandboxGitHubToken, Alerts: []sandbox.SeedGitHubAlert{{
			Repo: "acme/build-tools", Number: 7, SecretType: "aws_access_key_id", Secret: leaked,
			Locations: []sandbox.SeedGitHubLocation{{Path: ".github/workflows/release.yml", Line: 31, Commit: "9b2e4f6a1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f"}},
		}}},
	}
	gh := testkit.Sandbox(t, seed)

	const responderSecret = "motoResponderSecretMotoResponderSecret01"
	accounts := map[string]motoAccount{a.id: a, b.id: b}
	return twoAccounts{
		awsURL:    proxyURL,
		githubURL: gh.URL,
		// A key moto does not know: it acts in the default account, A.
		// moto has no CloudTrail, and answers it with 500s that the SDK
		// retries for a minute: the sandbox refuses moto's credentials at
		// once instead, and the impact step fails (it may: on_error:
		// continue) without the wait.
		awsEnv:    []string{"AWS_ACCESS_KEY_ID=AKIAMOTORESPONDER001", "AWS_SECRET_ACCESS_KEY=" + responderSecret, "AWS_ENDPOINT_URL_CLOUDTRAIL=" + gh.URL},
		a:         a.id,
		b:         b.id,
		keyA:      keyA,
		leaked:    leaked,
		secretA:   valueA,
		versionA:  versionA,
		secrets:   []string{secretA, leakedSecret, responderSecret},
		approvals: []string{"rotate", "delete"},
		keys:      func(t *testing.T, account string) map[string]string { return accounts[account].keys(t) },
		secret:    func(t *testing.T, account string) (string, string) { return accounts[account].secret(t) },
		calls:     rec.recorded,
		more: func(t *testing.T) {
			alert, ok := gh.GitHubAlert("acme/build-tools", 7)
			require.True(t, ok)
			require.Equal(t, "revoked", alert.Resolution)
		},
	}
}
