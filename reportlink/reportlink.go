// Package reportlink makes and checks the links to a run's report that
// stanch serve answers at /reports/{run}: the Slack incident message and
// the GitHub resolution comment carry them. A link is signed (HMAC-SHA256)
// and expires a fixed lifetime after the run was created, so that the same
// run always gets the same link and a message drawn again later does not
// change. Bearer tokens are the other way in, for people and tools that
// read reports without a link.
package reportlink

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MinKeyLen is the shortest signing key accepted, in bytes: HMAC-SHA256's
// own output size, so that the key is not the weakest part.
const MinKeyLen = 32

// MinTokenLen is the shortest bearer token accepted, in bytes.
const MinTokenLen = 32

// MaxLifetime bounds a link's lifetime: a link is shared in chat and in a
// comment GitHub keeps for good, so it must end.
const MaxLifetime = 365 * 24 * time.Hour

// DefaultLifetime is a link's lifetime when none is configured: long
// enough for a post-incident review.
const DefaultLifetime = 30 * 24 * time.Hour

// Route is the path under which stanch serve answers reports.
const Route = "/reports/"

// linkPath is Route as links write it, with a "." segment before the run's
// id. Every text stanch sends to Slack is redacted (alert.RedactText), and
// "reports/run_<26 random-looking characters>" is one run of 38 identifier
// characters that reads as a secret: the link would reach Slack as
// "…/[REDACTED]". The "." ends that run, leaving "/run_…" (31 characters,
// below the 32 that redaction judges). Browsers and curl remove the "."
// segment before asking (RFC 3986 §5.2.4); a client that does not is
// redirected to the clean path by stanch serve's mux.
const linkPath = Route + "./"

// The query's parameters. The signature's is not "sig" (nor anything
// named like a secret): the redaction of what stanch sends removes the
// value of such a parameter. The value is hexadecimal, which redaction
// keeps.
const (
	paramExpires = "expires"
	paramMAC     = "mac"
)

// KeyHint says how to make a key or token, for errors that refuse one.
const KeyHint = "make one with: openssl rand -hex 32"

// version starts every signed message: a future format signs another
// version, and no link of one verifies as the other.
const version = "stanch-report-link/v1"

// Refusals. Verify wraps ErrRefused in each, so that a caller that answers
// every refusal the same way tests one error.
var (
	ErrRefused      = errors.New("report link refused")
	ErrMalformed    = fmt.Errorf("%w: malformed", ErrRefused)
	ErrBadSignature = fmt.Errorf("%w: wrong signature", ErrRefused)
	ErrExpired      = fmt.Errorf("%w: expired", ErrRefused)
)

// Signer signs and verifies report links.
type Signer struct {
	key      []byte
	lifetime time.Duration
	base     string
}

// NewSigner returns a signer with key (at least MinKeyLen bytes), links
// that last lifetime from their run's creation (0: DefaultLifetime), and
// the public base URL of stanch serve ("" makes a signer that verifies
// links but makes none).
func NewSigner(key []byte, lifetime time.Duration, baseURL string) (*Signer, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("the report signing key has %d bytes; it needs at least %d (%s)", len(key), MinKeyLen, KeyHint)
	}
	if err := CheckLifetime(lifetime); err != nil {
		return nil, err
	}
	if lifetime == 0 {
		lifetime = DefaultLifetime
	}
	base, err := checkBase(baseURL)
	if err != nil {
		return nil, err
	}
	return &Signer{key: append([]byte(nil), key...), lifetime: lifetime, base: base}, nil
}

// CheckLifetime refuses a lifetime below zero or above MaxLifetime; 0
// means the default.
func CheckLifetime(d time.Duration) error {
	if d < 0 || d > MaxLifetime {
		return fmt.Errorf("a report link's lifetime must be above 0 and at most %s (one year), not %s", MaxLifetime, d)
	}
	return nil
}

// checkBase accepts an http(s) URL with a host and no credentials, query
// or fragment, and drops a trailing slash.
func checkBase(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("the report base URL %q is not an http(s) URL such as https://stanch.example.com", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("the report base URL %q must be scheme://host[/path] only: no credentials, query or fragment", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// Makes reports whether the signer makes links (it has a base URL).
func (s *Signer) Makes() bool { return s != nil && s.base != "" }

// Lifetime is how long a link lasts after its run was created.
func (s *Signer) Lifetime() time.Duration { return s.lifetime }

// Expiry is when the link of a run created at created expires.
func (s *Signer) Expiry(created time.Time) time.Time {
	return created.Add(s.lifetime).Truncate(time.Second)
}

// Link returns the link to a run's report: always the same for the same
// run, as its expiry is anchored on the run's creation. It is "" when the
// signer has no base URL or the creation time is not known.
func (s *Signer) Link(runID string, created time.Time) string {
	if !s.Makes() || runID == "" || created.IsZero() {
		return ""
	}
	return s.SignedLink(runID, s.Expiry(created))
}

// SignedLink returns the link to a run's report that expires at expires.
// Link is what callers want; this is for tests and tools that need
// another expiry.
func (s *Signer) SignedLink(runID string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	q := url.Values{paramExpires: {exp}, paramMAC: {s.sign(runID, exp)}}
	return s.base + linkPath + url.PathEscape(runID) + "?" + q.Encode()
}

// sign is the hex HMAC of a versioned message in which each part is
// length-prefixed, so that no two (run, expiry) pairs read as the same
// bytes.
func (s *Signer) sign(runID, expires string) string {
	m := hmac.New(sha256.New, s.key)
	for _, part := range []string{version, runID, expires} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		m.Write(n[:])
		m.Write([]byte(part))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a link's signature, then its expiry against now. An
// expiry that is not written as the signer writes it (a sign, leading
// zeros) is malformed: exactly one text of each link verifies.
func (s *Signer) Verify(runID, expires, sig string, now time.Time) error {
	if s == nil {
		return ErrRefused
	}
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil || strconv.FormatInt(exp, 10) != expires || runID == "" {
		return ErrMalformed
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return ErrMalformed
	}
	want, _ := hex.DecodeString(s.sign(runID, expires))
	if !hmac.Equal(got, want) {
		return ErrBadSignature
	}
	if !now.Before(time.Unix(exp, 0)) {
		return ErrExpired
	}
	return nil
}

// Tokens are the bearer tokens that may read any report.
type Tokens struct {
	sums [][sha256.Size]byte
}

// NewTokens returns the tokens in list (blank entries are skipped); each
// must have at least MinTokenLen bytes. None: nil, which matches nothing.
func NewTokens(list []string) (*Tokens, error) {
	t := &Tokens{}
	for i, tok := range list {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		if len(tok) < MinTokenLen {
			// Which one, by position: the token itself is never repeated.
			return nil, fmt.Errorf("report bearer token %d of %d has %d bytes; each needs at least %d (%s)", i+1, len(list), len(tok), MinTokenLen, KeyHint)
		}
		t.sums = append(t.sums, sha256.Sum256([]byte(tok)))
	}
	if len(t.sums) == 0 {
		return nil, nil
	}
	return t, nil
}

// Len is how many tokens there are.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.sums)
}

// Match reports whether presented is one of the tokens. Digests are
// compared, all of them, in constant time: neither a token's length nor
// which one matched shows in the time taken.
func (t *Tokens) Match(presented string) bool {
	if t == nil || presented == "" {
		return false
	}
	sum := sha256.Sum256([]byte(presented))
	ok := 0
	for _, s := range t.sums {
		ok |= subtle.ConstantTimeCompare(sum[:], s[:])
	}
	return ok == 1
}

// SplitTokens reads a list of bearer tokens as a variable or file holds
// them: separated by commas, spaces or new lines.
func SplitTokens(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}
