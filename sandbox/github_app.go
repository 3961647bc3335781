package sandbox

import (
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
	"net/http"
	"strconv"
	"strings"
	"time"
)

// GitHub Apps: POST /app/installations/{id}/access_tokens with a JWT signed
// by the App's private key (RS256) mints an installation token that the
// other endpoints accept until it expires.

// SeedGitHubApp is a GitHub App installed once.
type SeedGitHubApp struct {
	ID             int64 `yaml:"id" json:"id"`
	InstallationID int64 `yaml:"installation_id" json:"installation_id"`
	// Slug names the App's bot user, <slug>[bot] (default stanch).
	Slug string `yaml:"slug" json:"slug"`
	// PublicKey is the PEM public key (or private key, of which only the
	// public half is used) that verifies the App's JWTs.
	PublicKey string `yaml:"public_key" json:"public_key"`
	// TokenTTL is how long installation tokens live (default 1h, as on
	// GitHub).
	TokenTTL string `yaml:"token_ttl" json:"token_ttl"`
	// Permissions are the installation's permissions ({secrets: write,
	// organization_secrets: write, contents: write, pull_requests: write});
	// when set, the Actions secrets, contents, refs and pull requests
	// endpoints refuse an installation token without the one they need
	// (403), and the installation token response lists them.
	Permissions map[string]string `yaml:"permissions" json:"permissions"`
}

type githubApp struct {
	id           int64
	installation int64
	slug         string
	key          *rsa.PublicKey
	ttl          time.Duration
	permissions  map[string]string // nil: not enforced
}

type installationToken struct {
	app     *githubApp
	expires time.Time
}

func newGitHubApp(sa SeedGitHubApp) (*githubApp, error) {
	if sa.ID <= 0 || sa.InstallationID <= 0 {
		return nil, fmt.Errorf("github: app %d: id and installation_id must be above 0", sa.ID)
	}
	key, err := parseRSAPublicKey([]byte(sa.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("github: app %d: public_key: %w", sa.ID, err)
	}
	app := &githubApp{id: sa.ID, installation: sa.InstallationID, slug: sa.Slug, key: key, ttl: time.Hour, permissions: sa.Permissions}
	for perm, level := range sa.Permissions {
		if level != "read" && level != "write" && level != "admin" {
			return nil, fmt.Errorf("github: app %d: permission %s: %q is not read, write or admin", sa.ID, perm, level)
		}
	}
	if app.slug == "" {
		app.slug = "stanch"
	}
	if sa.TokenTTL != "" {
		if app.ttl, err = time.ParseDuration(sa.TokenTTL); err != nil || app.ttl <= 0 {
			return nil, fmt.Errorf("github: app %d: token_ttl %q is not a positive duration such as 1h", sa.ID, sa.TokenTTL)
		}
	}
	return app, nil
}

func parseRSAPublicKey(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not an RSA key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k, nil
	case *rsa.PrivateKey:
		return &k.PublicKey, nil
	}
	return nil, fmt.Errorf("a %T is not an RSA key", key)
}

// NewGitHubAppKey makes an RSA key pair for a sandbox App: the public key
// for SeedGitHubApp.PublicKey, and the private key in the PEM form GitHub
// hands out (PKCS #1, "RSA PRIVATE KEY").
func NewGitHubAppKey() (publicPEM string, privatePEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", nil, err
	}
	publicPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	privatePEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return publicPEM, privatePEM, nil
}

// maxJWTLifetime is GitHub's limit on exp - iat.
const maxJWTLifetime = 10 * time.Minute

// createInstallationToken verifies the App's JWT and mints a token.
func (s *Sandbox) createInstallationToken(c *githubCall, installation string) {
	c.call.params["installation_id"] = installation
	jwt, ok := strings.CutPrefix(c.r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		c.fail(http.StatusUnauthorized, "A JSON web token could not be decoded")
		return
	}
	app, msg := s.github.verifyJWT(jwt, time.Now())
	if app == nil {
		c.fail(http.StatusUnauthorized, msg)
		return
	}
	c.call.params["app_id"] = strconv.FormatInt(app.id, 10)
	if strconv.FormatInt(app.installation, 10) != installation {
		c.fail(http.StatusNotFound, "Not Found")
		return
	}
	b := make([]byte, 27)
	_, _ = rand.Read(b)
	token := "ghs_" + base64.RawURLEncoding.EncodeToString(b)
	expires := time.Now().UTC().Add(app.ttl).Truncate(time.Second)
	s.github.tokens[token] = &installationToken{app: app, expires: expires}
	permissions := map[string]string{"secret_scanning_alerts": "write", "issues": "write", "metadata": "read"}
	if app.permissions != nil {
		permissions = app.permissions
	}
	c.answer(http.StatusCreated, true, map[string]any{
		"token": token, "expires_at": expires.Format(time.RFC3339), "repository_selection": "all",
		"permissions": permissions,
	})
}

// verifyJWT checks an App's RS256 JWT: its signature by the App named in
// iss, an exp in the future, an iat not in the future (with GitHub's minute
// of clock drift), and at most ten minutes between them. It returns the App,
// or nil and GitHub's message.
func (g *githubState) verifyJWT(jwt string, now time.Time) (*githubApp, string) {
	const undecodable = "A JSON web token could not be decoded"
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, undecodable
	}
	var header struct{ Alg string }
	var claims struct {
		Iss json.RawMessage `json:"iss"`
		Iat *int64          `json:"iat"`
		Exp *int64          `json:"exp"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil || json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		return nil, undecodable
	}
	if header.Alg != "RS256" {
		return nil, undecodable
	}
	// iss is the App id, as a number or a string.
	id, err := strconv.ParseInt(strings.Trim(string(claims.Iss), `"`), 10, 64)
	if err != nil {
		return nil, "'Issuer' claim ('iss') must be an Integer"
	}
	app, ok := g.apps[id]
	if !ok {
		return nil, "Integration not found"
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(app.key, crypto.SHA256, sum[:], sig) != nil {
		return nil, undecodable
	}
	if claims.Exp == nil || !time.Unix(*claims.Exp, 0).After(now) {
		return nil, "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
	}
	if claims.Iat == nil || time.Unix(*claims.Iat, 0).After(now.Add(time.Minute)) {
		return nil, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
	}
	if time.Unix(*claims.Exp, 0).Sub(time.Unix(*claims.Iat, 0)) > maxJWTLifetime {
		return nil, "'Expiration time' claim ('exp') is too far in the future"
	}
	return app, ""
}

// ExpireGitHubTokens makes every installation token minted so far expire
// now, as if an hour had passed.
func (s *Sandbox) ExpireGitHubTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.github.tokens {
		t.expires = time.Now().Add(-time.Second)
	}
}
