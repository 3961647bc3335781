package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
)

//go:generate go run ./internal/wordmodel -o wordmodel.go

// Redacted replaces every secret value stanch removes.
const Redacted = "[REDACTED]"

// The redaction rule. stanch cannot know every secret format, so it removes
// what is shaped like a secret and keeps what identifies without
// authenticating. RedactText applies it to free text; RedactJSON to
// documents; Alert.Redact to every field of an alert.
//
//  1. The text is read as it is and also URL-decoded, again and again until
//     nothing changes (at most maxDecodings times), once with %XX alone and
//     once with + as a space too: a secret in a URL query (%2F for /) is
//     found like one written out. What is found in a decoded reading is
//     removed from the text as written, escapes and all; the rest of the
//     text keeps its encoding.
//  2. Named values: the value after name=, "name": or name: (the name
//     quoted, or a space or a quote after the colon, so that ARNs and URLs
//     are not split) is removed
//     whatever its shape when the name says it is secret (secretName:
//     secret, token, password, signature, credential, key, …, in any case,
//     with _ - . or nothing between the words; names of identifiers, such
//     as secret_type or access_key_id, are not). A value that is nothing
//     but an AWS access key id is kept, and so is the key id at the start
//     of a longer value; true and false are kept.
//  3. Runs: a run is a maximal sequence of [A-Za-z0-9/+_-] (= ends a run, so
//     that a name stays readable beside its value; it is only padding in
//     base64). An AWS access key id (AKIA or ASIA and 16 upper-case letters
//     or digits) that starts a run, or follows a / + _ or - in it, is kept
//     and splits the run; each piece between key ids that is 32 characters
//     or longer is removed whole when it reads as random (looksRandom), and
//     kept whole when it does not. Whole pieces, never fixed windows: a
//     secret inside a longer run, or directly after its key id, goes with
//     the piece it is in. A run that starts with the prefix a service puts
//     on its tokens (ghp_, github_pat_, xoxb-, sk_live_, …; tokenPrefixes)
//     and 16 more characters is a token, whatever the rest looks like.
//
// looksRandom estimates how many bits a piece takes to write down with a
// model of how identifiers are made: words (letters that follow each other
// as in English words, wordModel), numbers, separators, and things that
// identify, each cheap: AWS ids (AKIA…, AIDA…, AROA…) and hexadecimal
// (commit SHAs, digests, UUIDs). A piece is random when some 40 characters
// of it (all of it when shorter) cost randomBits or more per character. A
// random 40-character AWS secret costs 7 to 12 bits a character (none of a
// million drawn cost less than 6.7; of those with no upper case, or no
// lower case, about 1 in 40,000 costs less than 6 and is missed); paths,
// repository and role names, ARNs' parts and camelCase identifiers cost 4
// to 4.5, and only strings of acronyms and random-looking suffixes reach
// 5.5 to 6. So deploy/settings.py, acme/payments-service, a commit SHA and
// a key id stay, and random AWS secrets go, with or without digits, upper
// or lower case. Hexadecimal secrets and secrets shorter than 32
// characters outside a named value are not recognised: they cannot be told
// from digests and identifiers.

const (
	minSecret    = 32 // shortest piece of a run judged on its shape
	window       = 40 // characters judged together
	randomBits   = 6.0
	maxDecodings = 16
)

// RedactText returns s with every secret value in it replaced by Redacted,
// by the rule above. It is the one function for free text that leaves
// stanch: logs, errors, journal entries, Slack and GitHub text.
func RedactText(s string) string {
	spans := secretSpans(s)
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		b.WriteString(s[last:sp.start])
		b.WriteString(Redacted)
		last = sp.end
	}
	b.WriteString(s[last:])
	return b.String()
}

// RedactError returns err with its text redacted; errors.Is and errors.As
// still see what it wraps.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	if red := RedactText(text); red != text {
		return &redactedError{text: red, err: err}
	}
	return err
}

type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }

// Redact removes every secret value from the alert, field by field, so that
// what is stored, shown and sent holds none. It is called where an alert
// enters stanch (Parse, the triggers) and again before it is stored.
// A credential id that would lose part of itself is replaced: by itself
// redacted when it holds an AWS key id (so that Validate refuses it rather
// than act on a guess), otherwise by a fingerprint of it, which still tells
// one credential from another.
func (a *Alert) Redact() {
	for _, f := range []*string{&a.Source, &a.Kind, &a.DedupKey, &a.Severity, &a.Title,
		&a.Credential.Provider, &a.Credential.Kind, &a.Credential.TokenType, &a.Credential.Account, &a.Credential.Principal,
		&a.Location.Repo, &a.Location.Path, &a.Location.Commit, &a.Location.URL} {
		*f = RedactText(*f)
	}
	if id := a.Credential.ID; RedactText(id) != id {
		if k, ok := TokenKindOf(id); ok {
			// A token given as the id (stanch run --alert): its shape
			// still says whose it is once only its fingerprint is left.
			if a.Credential.Provider == "" {
				a.Credential.Provider = k.Provider
			}
			if a.Credential.TokenType == "" && a.Credential.Provider == k.Provider {
				a.Credential.TokenType = k.Type
			}
		}
		if holdsKeyID(id) {
			a.Credential.ID = RedactText(id)
		} else {
			a.Credential.ID = Fingerprint(id)
		}
	}
	if len(a.Raw) > 0 {
		a.Raw = RedactJSON(a.Raw)
	}
}

// Fingerprint identifies a secret without revealing it: sha256: and the
// first 8 bytes of its SHA-256, in hexadecimal.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// RedactJSON returns raw with every secret value replaced by Redacted: the
// values of fields named like secrets (see secretName), and in every other
// string, and every field name, what RedactText removes. A document that is
// not JSON is replaced whole, because nothing in it can be trusted to be
// safe.
func RedactJSON(raw []byte) json.RawMessage {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		out, _ := json.Marshal(Redacted)
		return out
	}
	v = redactValue("", v)
	out, err := json.Marshal(v)
	if err != nil {
		out, _ = json.Marshal(Redacted)
	}
	return out
}

func redactValue(key string, v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, child := range t {
			out[RedactText(k)] = redactValue(k, child)
		}
		return out
	case []any:
		for i, child := range t {
			t[i] = redactValue(key, child)
		}
		return t
	case string:
		if key != "" && secretName(key) {
			return redactNamed(t)
		}
		return RedactText(t)
	default:
		return v
	}
}

// redactNamed is what is left of the value of a field named like a secret.
func redactNamed(v string) string {
	keep := namedKeep(v)
	if keep == len(v) {
		return v
	}
	return v[:keep] + Redacted
}

// namedKeep says how much of the value of a field named like a secret is
// kept: all of an empty value, true, false, null or one already redacted;
// the AWS key id at its start (the one part that identifies); else nothing.
func namedKeep(v string) int {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "true", "false", "null":
		return len(v)
	}
	if strings.HasPrefix(v, Redacted) {
		return len(v)
	}
	return keyIDAt(v, 0)
}

// holdsKeyID reports whether s holds an AWS access key id anywhere.
func holdsKeyID(s string) bool {
	for i := 0; i < len(s); i++ {
		if keyIDAt(s, i) > 0 {
			return true
		}
	}
	return false
}

// apiName matches the names of API operations (GetAccessKeyLastUsed,
// GetSecretValue): in "iam:GetAccessKeyLastUsed: operation error …" what
// follows the colon is the SDK's message, not a value.
var apiName = regexp.MustCompile(`^(Get|List|Create|Update|Delete|Put|Describe|Attach|Detach|Assume|Revoke|Rotate|Lookup|Enable|Disable|Tag|Untag|Import|Export|Batch|Validate|Generate)[A-Z][A-Za-z0-9]*$`)

// secretName reports whether a field, parameter or variable of this name
// holds a secret: its words, lower-cased and joined, are or contain a
// secret's name, and do not end as an identifier's name does.
func secretName(name string) bool {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteByte(c)
		}
	}
	n := b.String()
	if n == "" || apiName.MatchString(name) {
		return false
	}
	for _, suffix := range []string{"id", "ids", "type", "types", "name", "names", "arn", "arns", "kind", "kinds", "url", "urls", "exception", "error", "fault"} {
		if strings.HasSuffix(n, suffix) && n != suffix {
			return false
		}
	}
	switch n {
	case "key", "pass", "pwd", "sig", "auth", "raw", "rawv2", "redacted", "match", "cookie":
		return true
	}
	for _, part := range []string{"secret", "token", "passw", "passphrase", "signature", "credential", "authorization", "privatekey", "apikey", "accesskey", "sessionkey", "signingkey"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}
