package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Approval buttons carry an opaque token as their value: the run, step and
// decision it stands for, authenticated with a key only stanch holds. A
// click is still checked against the approval's approvers; the token only
// makes sure a button cannot be made up for another run or step.

// Button action ids.
const (
	ActionApprove = "stanch_approve"
	ActionDeny    = "stanch_deny"
)

// Tokens signs and checks approval button values.
type Tokens struct{ key []byte }

// NewTokens returns signer with key, which must be at least 16 bytes.
func NewTokens(key []byte) (*Tokens, error) {
	if len(key) < 16 {
		return nil, errors.New("approval token key: need at least 16 bytes")
	}
	return &Tokens{key: key}, nil
}

// ButtonValue is what an approval button stands for.
type ButtonValue struct {
	RunID    string `json:"r"`
	StepID   string `json:"s"`
	Decision string `json:"d"` // approved or denied
}

// ErrBadToken is wrapped by every rejected token.
var ErrBadToken = errors.New("bad approval token")

const tokenVersion = "v1"

// Sign returns the token for v.
func (t *Tokens) Sign(v ButtonValue) string {
	body, _ := json.Marshal(v)
	enc := base64.RawURLEncoding.EncodeToString(body)
	return tokenVersion + "." + enc + "." + t.mac(enc)
}

func (t *Tokens) mac(enc string) string {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(tokenVersion + "." + enc))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// Verify returns what a token stands for, or an error wrapping ErrBadToken.
func (t *Tokens) Verify(token string) (ButtonValue, error) {
	version, rest, ok := strings.Cut(token, ".")
	if !ok || version != tokenVersion {
		return ButtonValue{}, fmt.Errorf("%w: unknown format", ErrBadToken)
	}
	enc, sig, ok := strings.Cut(rest, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(t.mac(enc))) {
		return ButtonValue{}, fmt.Errorf("%w: signature does not match", ErrBadToken)
	}
	body, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return ButtonValue{}, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	var v ButtonValue
	if err := json.Unmarshal(body, &v); err != nil || v.RunID == "" || v.StepID == "" || (v.Decision != "approved" && v.Decision != "denied") {
		return ButtonValue{}, fmt.Errorf("%w: malformed", ErrBadToken)
	}
	return v, nil
}
