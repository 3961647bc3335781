package github

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/apicall"
)

// Options say how stanch reaches GitHub: with a token, or as a GitHub App
// installation (AppID, InstallationID and PrivateKeyPEM together).
type Options struct {
	// APIURL is the REST API base of GitHub Enterprise Server (or the
	// sandbox), e.g. https://ghe.example.com/api/v3/; empty means github.com.
	APIURL string
	// Token is a personal access token or any other bearer token.
	Token string
	// AppID, InstallationID and PrivateKeyPEM authenticate as a GitHub App
	// installation. PrivateKeyPEM is the key GitHub generated for the App
	// (PKCS #1 "RSA PRIVATE KEY", or PKCS #8 holding an RSA key).
	AppID          int64
	InstallationID int64
	PrivateKeyPEM  []byte
	// Transport carries the requests under the authentication (default
	// http.DefaultTransport).
	Transport http.RoundTripper
	// Now is the clock for the App's JWTs and its tokens' expiry (default
	// time.Now).
	Now func() time.Time
	// RecordLink, when set, makes the link to a run's report (stanch
	// serve's /reports/{run}, signed, expiring a fixed time after the run
	// was created) that github.resolve_alert adds to its comment.
	RecordLink func(runID string, created time.Time) string
}

// Configured reports whether any credentials are given.
func (o Options) Configured() bool { return o.Token != "" || o.usesApp() }

func (o Options) usesApp() bool {
	return o.AppID != 0 || o.InstallationID != 0 || len(o.PrivateKeyPEM) > 0
}

// ErrNotConfigured is returned by actions when no credentials were given.
var ErrNotConfigured = errors.New("GitHub is not configured: give stanch a token or a GitHub App installation (see docs/configuration.md)")

// NewClient returns a go-github client for opts. Every request it sends,
// including those of the triggers' resolver and backstop, carries the token,
// or for an App a cached installation token that is renewed a minute before
// it expires. Without credentials the client is unauthenticated.
func NewClient(opts Options) (*gh.Client, error) {
	// Every request, the App's token requests too, is recorded for the
	// run whose step makes it (apicall).
	base := apicall.Transport("github", opts.Transport)
	var app *appTransport
	transport := base
	switch {
	case opts.Token != "" && opts.usesApp():
		return nil, errors.New("GitHub: give either a token or a GitHub App (app id, installation id and private key), not both")
	case opts.usesApp():
		var missing []string
		if opts.AppID <= 0 {
			missing = append(missing, "the App id")
		}
		if opts.InstallationID <= 0 {
			missing = append(missing, "the installation id")
		}
		if len(opts.PrivateKeyPEM) == 0 {
			missing = append(missing, "the private key")
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("GitHub App: %s missing: an App needs its id, the installation id and its private key", strings.Join(missing, " and "))
		}
		key, err := parsePrivateKey(opts.PrivateKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("GitHub App %d private key: %w", opts.AppID, err)
		}
		now := opts.Now
		if now == nil {
			now = time.Now
		}
		app = &appTransport{base: base, appID: opts.AppID, installation: opts.InstallationID, key: key, now: now}
		transport = app
	case opts.Token != "":
		transport = &tokenTransport{base: base, token: opts.Token}
	}
	client := gh.NewClient(&http.Client{Transport: transport})
	if opts.APIURL != "" {
		var err error
		if client, err = client.WithEnterpriseURLs(opts.APIURL, opts.APIURL); err != nil {
			return nil, fmt.Errorf("GitHub API URL %q: %w", opts.APIURL, err)
		}
	}
	if app != nil {
		app.tokenURL = fmt.Sprintf("%sapp/installations/%d/access_tokens", client.BaseURL, opts.InstallationID)
	}
	return client, nil
}

// parsePrivateKey reads an RSA private key from PEM.
func parsePrivateKey(data []byte) (*rsa.PrivateKey, error) {
	const want = "not an RSA private key in PEM form (GitHub's .pem download starts with -----BEGIN RSA PRIVATE KEY-----)"
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New(want)
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", want, err)
		}
		return key, nil
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", want, err)
		}
		if rk, ok := key.(*rsa.PrivateKey); ok {
			return rk, nil
		}
		return nil, fmt.Errorf("%s: it holds a %T", want, key)
	}
	return nil, fmt.Errorf("%s: the PEM block is %q", want, block.Type)
}

type tokenTransport struct {
	base  http.RoundTripper
	token string
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(req)
}

// appTransport authenticates as a GitHub App installation: it mints an
// installation token with a JWT signed by the App's key, keeps it until a
// minute before it expires, and sends it with every request.
type appTransport struct {
	base         http.RoundTripper
	appID        int64
	installation int64
	key          *rsa.PrivateKey
	tokenURL     string
	now          func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// renewBefore is how long before its expiry a token is replaced, so that
// no request starts with a token about to lapse.
const renewBefore = time.Minute

func (t *appTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	token, fresh, err := t.installationToken(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	res, err := t.send(req, req.Body, token)
	if err != nil || res.StatusCode != http.StatusUnauthorized || fresh {
		return res, err
	}
	// GitHub no longer takes a token it gave: it was revoked, or expired
	// earlier than announced. Forget it and try once more with a new one,
	// when the body can be sent again.
	t.forget(token)
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return res, nil
	}
	token, _, err = t.installationToken(req.Context())
	if err != nil {
		return res, nil // the 401 says more than a failed renewal
	}
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return res, nil
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	return t.send(req, body, token)
}

func (t *appTransport) send(req *http.Request, body io.ReadCloser, token string) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.Body = body
	out.Header.Set("Authorization", "Bearer "+token)
	return t.base.RoundTrip(out)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func (t *appTransport) forget(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token == token {
		t.token = ""
	}
}

// installationToken returns the cached token, or mints one; fresh says it
// was just minted. Minting holds the lock, so concurrent requests wait for
// one new token instead of minting one each.
func (t *appTransport) installationToken(ctx context.Context) (string, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.now().Before(t.expires.Add(-renewBefore)) {
		return t.token, false, nil
	}
	token, expires, err := t.mint(ctx)
	if err != nil {
		return "", false, err
	}
	t.token, t.expires = token, expires
	return token, true, nil
}

// TokenError is a failure to get an installation token for a GitHub App.
type TokenError struct {
	AppID          int64
	InstallationID int64
	// StatusCode is GitHub's answer, 0 when GitHub was not reached.
	StatusCode int
	Message    string
	Err        error
}

func (e *TokenError) Error() string {
	msg := fmt.Sprintf("GitHub App %d: installation token for installation %d: ", e.AppID, e.InstallationID)
	if e.StatusCode == 0 {
		return msg + e.Err.Error()
	}
	msg += fmt.Sprintf("%d %s", e.StatusCode, e.Message)
	switch e.StatusCode {
	case http.StatusUnauthorized:
		msg += " (is the private key this App's, the App id right, and the clock correct?)"
	case http.StatusNotFound:
		msg += " (is the App installed there? check the installation id)"
	}
	return msg
}

func (e *TokenError) Unwrap() error { return e.Err }

// Retryable reports whether asking again may succeed.
func (e *TokenError) Retryable() bool {
	return e.StatusCode == 0 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

func (t *appTransport) mint(ctx context.Context) (string, time.Time, error) {
	fail := func(status int, msg string, err error) (string, time.Time, error) {
		return "", time.Time{}, &TokenError{AppID: t.appID, InstallationID: t.installation, StatusCode: status, Message: msg, Err: err}
	}
	jwt, err := t.jwt()
	if err != nil {
		return fail(0, "", fmt.Errorf("sign the JWT: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.tokenURL, nil)
	if err != nil {
		return fail(0, "", err)
	}
	req.Header.Set("Authorization", "Bearer "+jwt)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "stanch")
	res, err := t.base.RoundTrip(req)
	if err != nil {
		return fail(0, "", err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fail(0, "", fmt.Errorf("read the answer: %w", err))
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		if e.Message == "" {
			e.Message = http.StatusText(res.StatusCode)
		}
		return fail(res.StatusCode, e.Message, nil)
	}
	var out struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.Token == "" {
		return fail(res.StatusCode, "the answer holds no token", err)
	}
	return out.Token, out.ExpiresAt, nil
}

// jwt is the App's RS256 JSON Web Token: issued a minute in the past to
// allow for clock drift, valid nine minutes (GitHub allows at most ten).
func (t *appTransport) jwt() (string, error) {
	now := t.now()
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	claims, err := json.Marshal(map[string]any{
		"iat": now.Add(-time.Minute).Unix(),
		"exp": now.Add(9 * time.Minute).Unix(),
		"iss": strconv.FormatInt(t.appID, 10),
	})
	if err != nil {
		return "", err
	}
	signed := header + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, t.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signed + "." + enc.EncodeToString(sig), nil
}
