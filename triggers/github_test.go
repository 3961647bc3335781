package triggers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// The test vector of GitHub's documentation on validating deliveries.
func TestGitHubSignatureVector(t *testing.T) {
	t.Parallel()
	err := github.ValidateSignature("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", []byte("Hello, World!"), []byte("It's a Secret to Everybody"))
	require.NoError(t, err)
	require.Error(t, github.ValidateSignature("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18", []byte("Hello, World!"), []byte("It's a Secret to Everybody")))
}

type deferred struct{ kinds, keys []string }

func (d *deferred) Defer(_ context.Context, kind, key string, _ []byte) error {
	d.kinds, d.keys = append(d.kinds, kind), append(d.keys, key)
	return nil
}

func TestGitHubWebhookRouting(t *testing.T) {
	t.Parallel()
	sink := &deferred{}
	srv := httptest.NewServer(NewGitHub([]byte("It's a Secret to Everybody"), sink, nil))
	t.Cleanup(srv.Close)
	post := func(event string, body []byte, sig string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-Hub-Signature-256", sig)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	hello := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	require.Equal(t, http.StatusOK, post("ping", []byte("Hello, World!"), hello))
	require.Equal(t, http.StatusAccepted, post("push", []byte("Hello, World!"), hello), "other events are acknowledged and ignored")
	require.Equal(t, http.StatusUnauthorized, post("ping", []byte("Hello, World!"), ""))
	require.Equal(t, http.StatusBadRequest, post("secret_scanning_alert", []byte("Hello, World!"), hello), "a signed body that is not a secret-scanning payload")
	require.Empty(t, sink.keys)
}

func TestGitHubCredential(t *testing.T) {
	t.Parallel()
	cred, ok, err := githubCredential("aws_access_key_id", "AKIAIOSFODNN7EXAMPLE")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: "AKIAIOSFODNN7EXAMPLE"}, cred)
	cred, _, _ = githubCredential("aws_temporary_access_key_id", "ASIAIOSFODNN7SESSION")
	require.Equal(t, alert.CredentialRoleSession, cred.Kind)
	_, ok, err = githubCredential("aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	require.NoError(t, err)
	require.False(t, ok, "the secret alone names no key: its id is looked for in the paired alert")
	other, ok, _ := githubCredential("slack_api_token", "xoxb-not-a-real-token")
	require.True(t, ok)
	require.Equal(t, "slack", other.Provider)
	require.Regexp(t, `^sha256:[0-9a-f]{16}$`, other.ID, "other secret types are identified by a fingerprint, never the secret")
}

// FuzzGitHubWebhook sends arbitrary bodies and signatures: nothing unsigned
// may reach the sink, and nothing may panic.
func FuzzGitHubWebhook(f *testing.F) {
	f.Add([]byte("Hello, World!"), "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "ping")
	f.Add([]byte(`{"action":"created","alert":{"number":42},"repository":{"full_name":"o/r"}}`), "sha256=00", "secret_scanning_alert")
	f.Fuzz(func(t *testing.T, body []byte, sig, event string) {
		sink := &deferred{}
		h := NewGitHub([]byte("It's a Secret to Everybody"), sink, nil)
		req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", sig)
		req.Header.Set("X-GitHub-Event", event)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if github.ValidateSignature(sig, body, []byte("It's a Secret to Everybody")) != nil && len(sink.keys) > 0 {
			t.Fatalf("an unsigned delivery reached the sink")
		}
	})
}

func TestUnwrapSNS(t *testing.T) {
	t.Parallel()
	require.Equal(t, `{"source":"aws.health"}`, unwrapSNS(`{"Type":"Notification","Message":"{\"source\":\"aws.health\"}","TopicArn":"arn:aws:sns:us-east-1:111122223333:t"}`))
	require.Equal(t, `{"source":"aws.health"}`, unwrapSNS(`{"source":"aws.health"}`))
}

func TestReplayMemory(t *testing.T) {
	t.Parallel()
	m := newReplayMemory(2)
	require.False(t, m.seen("a"))
	require.True(t, m.seen("a"))
	require.False(t, m.seen("b"))
	require.False(t, m.seen("c"))
	require.False(t, m.seen("a"), "the oldest id is forgotten first")
	m.forget("c")
	require.False(t, m.seen("c"))
}

func TestGitHubFormEncodedPayload(t *testing.T) {
	t.Parallel()
	sink := &deferred{}
	secret := []byte("s3cret")
	srv := httptest.NewServer(NewGitHub(secret, sink, nil))
	t.Cleanup(srv.Close)
	body := "payload=" + url.QueryEscape(`{"action":"created","alert":{"number":7,"secret_type":"aws_access_key_id"},"repository":{"full_name":"acme/api"}}`)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(body))
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-GitHub-Event", "secret_scanning_alert")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, []string{"github:acme/api#7"}, sink.keys)
}

// TestGitHubResolverFetchesTheAlert resolves a deferred reference with the
// real go-github client against the sandbox: the key id comes from the
// secret literal, and the alert number is kept for github.resolve_alert.
func TestGitHubResolverFetchesTheAlert(t *testing.T) {
	t.Parallel()
	sb := testkit.Sandbox(t, testkit.Seed(t, `
accounts:
  - id: "111122223333"
    users: [`+sandbox.ResponderSeedUser+`]
github:
  token: ghp_resolver
  alerts:
    - repo: acme/payments-service
      number: 42
      secret_type: aws_access_key_id
      secret: AKIAIOSFODNN7EXAMPLE
      locations: [{path: deploy/settings.py, line: 12, commit: 4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d}]
`))
	client := sb.GitHubClient(t, "ghp_resolver")

	alerts, err := (&GitHubResolver{Client: client}).Resolve(context.Background(), []byte(`{"repo":"acme/payments-service","number":42,"action":"created"}`))
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	a := alerts[0]
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", a.Credential.ID)
	require.Equal(t, alert.Location{Repo: "acme/payments-service", Path: "deploy/settings.py", Line: 12, Commit: "4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d",
		URL: "https://github.com/acme/payments-service/security/secret-scanning/42", AlertNumber: 42}, a.Location)
	require.Equal(t, "github:acme/payments-service#42", a.DedupKey)
}
