package triggers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/sandbox"
	stanchslack "github.com/stanchhq/stanch/slack"
)

// endpointCase is one endpoint with a way to make forged requests to it
// and genuine ones, all from the same address (a load balancer's).
type endpointCase struct {
	name    string
	handler http.Handler
	forged  func(i int) *http.Request
	genuine func(i int) *http.Request
}

func signGitHub(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func endpointCases(t *testing.T, logs io.Writer) []endpointCase {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logs, nil))
	ghSecret := []byte("github webhook secret")
	gh := NewGitHub(ghSecret, &deferred{}, log)
	ghBody := func(i int) []byte {
		return []byte(`{"action":"created","alert":{"number":` + string(rune('1'+i)) + `,"secret_type":"aws_access_key_id"},"repository":{"full_name":"acme/api"}}`)
	}

	eb := NewEventBridge("X-Stanch-Token", []byte("eventbridge secret"), &accepted{}, log)
	event := load(t, "guardduty-accesskey.json")

	signer, err := sandbox.NewSNSSigner()
	require.NoError(t, err)
	sns, _, _ := snsEndpoint(t, signer, &accepted{})
	sns.guard.log = log

	tokens, err := stanchslack.NewTokens([]byte("approval token key 0123456789abcdef"))
	require.NoError(t, err)
	slack := NewSlackInteractions(fuzzSigningSecret, tokens, &decisions{}, stanchslack.NewClient(stanchslack.Options{}), log)
	t.Cleanup(slack.Wait)
	click := func(i int, secret string) *http.Request {
		value := tokens.Sign(stanchslack.ButtonValue{RunID: "run_guard", StepID: "destroy", Decision: "approved"})
		req, err := sandbox.SlackClick{URL: "http://stanch.invalid/hooks/slack/interactions", SigningSecret: secret, User: "U0ALICE",
			Channel: "C0SECINCIDENTS", MessageTS: "1764300000.00010" + string(rune('0'+i)), ActionID: stanchslack.ActionApprove, BlockID: "stanch_approval", Value: value}.Request(context.Background())
		require.NoError(t, err)
		return req
	}

	post := func(path string, body []byte, header ...string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return r
	}
	return []endpointCase{
		{
			name: "github", handler: gh,
			forged: func(i int) *http.Request {
				if i%2 == 0 {
					// Well-formed but wrong: its body has to be read.
					return post("/hooks/github", ghBody(i), "X-GitHub-Event", "secret_scanning_alert", "X-Hub-Signature-256", signGitHub([]byte("guess"), ghBody(i)))
				}
				return post("/hooks/github", ghBody(i), "X-GitHub-Event", "secret_scanning_alert")
			},
			genuine: func(i int) *http.Request {
				return post("/hooks/github", ghBody(i), "X-GitHub-Event", "secret_scanning_alert", "X-Hub-Signature-256", signGitHub(ghSecret, ghBody(i)))
			},
		},
		{
			name: "eventbridge", handler: eb,
			forged: func(int) *http.Request {
				return post("/hooks/aws/eventbridge", event, "X-Stanch-Token", "guess")
			},
			genuine: func(int) *http.Request {
				return post("/hooks/aws/eventbridge", event, "X-Stanch-Token", "eventbridge secret")
			},
		},
		{
			name: "sns", handler: sns,
			forged: func(i int) *http.Request {
				// Signed by another key than the certificate's.
				m := signer.Notification(topic, string(event), 2)
				return post("/hooks/aws/sns", bytes.Replace(m, []byte(`"Signature":"`), []byte(`"Signature":"AAAA`), 1))
			},
			genuine: func(i int) *http.Request {
				return post("/hooks/aws/sns", signer.Notification(topic, string(event), 2))
			},
		},
		{
			name: "slack", handler: slack,
			forged:  func(i int) *http.Request { return click(i%10, "not the signing secret 0123456789") },
			genuine: func(i int) *http.Request { return click(i, fuzzSigningSecret) },
		},
	}
}

// TestForgedRequestsNeverLockOutSignedOnes: the red-team pass sent 300
// unsigned POSTs to /hooks/github, after which 3 correctly signed
// deliveries were all answered 429 (and GitHub does not retry). Forged
// requests spend a budget of their own, on every endpoint.
func TestForgedRequestsNeverLockOutSignedOnes(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	for _, c := range endpointCases(t, &logs) {
		t.Run(c.name, func(t *testing.T) {
			// A slow rate (a burst of 20), so that however long a loaded
			// machine takes over the flood, its budget cannot refill as
			// fast as it is spent.
			c.handler.(interface{ RateLimit(float64) }).RateLimit(5)
			codes := map[int]int{}
			for i := range 300 {
				rec := httptest.NewRecorder()
				c.handler.ServeHTTP(rec, c.forged(i))
				codes[rec.Code]++
			}
			require.Zero(t, codes[http.StatusOK], "a forged request was accepted: %v", codes)
			require.Positive(t, codes[http.StatusTooManyRequests], "forged requests past their budget are answered 429: %v", codes)
			for i := range 3 {
				rec := httptest.NewRecorder()
				c.handler.ServeHTTP(rec, c.genuine(i))
				require.Equal(t, http.StatusOK, rec.Code, "genuine request %d after the flood: %s", i, rec.Body.String())
			}
		})
	}
	out := logs.String()
	require.Contains(t, out, `reason="rate limit exceeded"`)
	require.Contains(t, out, "refused=", "a flood is logged as a count")
	require.Less(t, strings.Count(out, "\n"), 4*300, "not one line per forged request")
	require.NotContains(t, out, "guardduty", "bodies are never logged")
}

// Authenticated requests still have a budget, per source address.
func TestAuthenticatedRequestsHaveTheirOwnBudget(t *testing.T) {
	t.Parallel()
	eb := NewEventBridgeLimited("X-Stanch-Token", []byte("s3cret"), &accepted{}, nil, 1)
	event := load(t, "guardduty-accesskey.json")
	codes := map[int]int{}
	for range 10 {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(event))
		r.Header.Set("X-Stanch-Token", "s3cret")
		rec := httptest.NewRecorder()
		eb.ServeHTTP(rec, r)
		codes[rec.Code]++
	}
	require.Equal(t, 4, codes[http.StatusOK], "a burst of 4 seconds' worth: %v", codes)
	require.Equal(t, 6, codes[http.StatusTooManyRequests])
}

// X-Forwarded-For is believed only from trusted proxies, and read from the
// right: what a client writes in it itself cannot move it to another
// budget.
func TestClientAddressBehindTrustedProxies(t *testing.T) {
	t.Parallel()
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")}
	g := newGuard("test", nil, 1)
	req := func(remote string, xff ...string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.RemoteAddr = remote
		for _, v := range xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		return r
	}
	// No trusted proxy: the header is ignored.
	require.Equal(t, "10.0.0.5", g.client(req("10.0.0.5:443", "198.51.100.7")))
	g.trust(lb)
	for _, tc := range []struct {
		r    *http.Request
		want string
	}{
		{req("10.0.0.5:443", "198.51.100.7"), "198.51.100.7"},
		{req("10.0.0.5:443", "203.0.113.9, 198.51.100.7"), "198.51.100.7"},             // the client wrote the first one
		{req("10.0.0.5:443", "203.0.113.9", "198.51.100.7, 10.0.0.6"), "198.51.100.7"}, // two proxies, two headers
		{req("10.0.0.5:443"), "10.0.0.5"},                                              // a proxy's own request
		{req("10.0.0.5:443", "not an address"), "10.0.0.5"},                            // unreadable: counted against the proxy
		{req("192.0.2.1:443", "198.51.100.7"), "192.0.2.1"},                            // not a trusted peer
		{req("[fd00::1]:443", "2001:db8::7"), "2001:db8::7"},
		{req("[::ffff:10.0.0.5]:443", "198.51.100.7"), "198.51.100.7"},
	} {
		require.Equal(t, tc.want, g.client(tc.r), "%s %v", tc.r.RemoteAddr, tc.r.Header.Values("X-Forwarded-For"))
	}

	p, err := ParseTrustedProxy("10.1.2.3")
	require.NoError(t, err)
	require.Equal(t, "10.1.2.3/32", p.String())
	p, err = ParseTrustedProxy("10.1.2.3/16")
	require.NoError(t, err)
	require.Equal(t, "10.1.0.0/16", p.String())
	_, err = ParseTrustedProxy("lb.internal")
	require.Error(t, err)
}

// Behind a trusted load balancer each client has budgets of its own; from
// anyone else, the header changes nothing.
func TestTrustedProxySeparatesClients(t *testing.T) {
	t.Parallel()
	forged := func(h *EventBridge, remote, client string) int {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", client)
		r.Header.Set("X-Stanch-Token", "guess")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	h := NewEventBridgeLimited("X-Stanch-Token", []byte("s3cret"), &accepted{}, nil, 1)
	h.TrustProxies([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	for range 10 {
		forged(h, "10.0.0.5:443", "198.51.100.7")
	}
	require.Equal(t, http.StatusTooManyRequests, forged(h, "10.0.0.5:443", "198.51.100.7"))
	require.Equal(t, http.StatusUnauthorized, forged(h, "10.0.0.5:443", "198.51.100.8"), "another client behind the same proxy")

	untrusted := NewEventBridgeLimited("X-Stanch-Token", []byte("s3cret"), &accepted{}, nil, 1)
	for range 10 {
		forged(untrusted, "10.0.0.5:443", "198.51.100.7")
	}
	require.Equal(t, http.StatusTooManyRequests, forged(untrusted, "10.0.0.5:443", "198.51.100.8"), "the header is ignored from a peer not trusted")
}

// syncBuffer is a bytes.Buffer several goroutines may write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
