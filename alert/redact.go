package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"slices"
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
		&a.Credential.Provider, &a.Credential.Kind, &a.Credential.Account, &a.Credential.Principal,
		&a.Location.Repo, &a.Location.Path, &a.Location.Commit, &a.Location.URL} {
		*f = RedactText(*f)
	}
	if id := a.Credential.ID; RedactText(id) != id {
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

type span struct{ start, end int }

// secretSpans finds what RedactText removes, as sorted, disjoint byte
// ranges of s.
func secretSpans(s string) []span {
	v := identity(s)
	found := v.spans()
	if strings.ContainsAny(s, "%+") {
		for _, plus := range []bool{false, true} {
			d := v
			for range maxDecodings {
				next, changed := d.decode(plus)
				if !changed {
					break
				}
				d = next
				found = append(found, d.spans()...)
			}
		}
	}
	return merge(found)
}

// view is a reading of the original text: text[i] came from the original
// bytes from[i]:to[i].
type view struct {
	text     string
	from, to []int
}

func identity(s string) view {
	from, to := make([]int, len(s)), make([]int, len(s))
	for i := 0; i < len(s); i++ { // bytes, not runes
		from[i], to[i] = i, i+1
	}
	return view{s, from, to}
}

// decode URL-decodes the view once: %XX escapes, and + as a space if plus.
// Invalid escapes stay as they are.
func (v view) decode(plus bool) (view, bool) {
	var b strings.Builder
	var from, to []int
	changed := false
	for i := 0; i < len(v.text); i++ {
		c := v.text[i]
		switch {
		case c == '%' && i+2 < len(v.text) && isHexDigit(v.text[i+1]) && isHexDigit(v.text[i+2]):
			b.WriteByte(unhex(v.text[i+1])<<4 | unhex(v.text[i+2]))
			from, to = append(from, v.from[i]), append(to, v.to[i+2])
			i += 2
			changed = true
		case c == '+' && plus:
			b.WriteByte(' ')
			from, to = append(from, v.from[i]), append(to, v.to[i])
			changed = true
		default:
			b.WriteByte(c)
			from, to = append(from, v.from[i]), append(to, v.to[i])
		}
	}
	return view{b.String(), from, to}, changed
}

// spans finds secrets in the view and returns them in original offsets.
func (v view) spans() []span {
	var out []span
	for _, sp := range append(namedValues(v.text), randomRuns(v.text)...) {
		if sp.end > sp.start {
			out = append(out, span{v.from[sp.start], v.to[sp.end-1]})
		}
	}
	return out
}

func merge(spans []span) []span {
	if len(spans) < 2 {
		return spans
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	out := []span{spans[0]}
	for _, sp := range spans[1:] {
		last := &out[len(out)-1]
		if sp.start <= last.end {
			last.end = max(last.end, sp.end)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// namedValues finds the values of secret-named fields in text: name=value,
// "name": "value", name: value.
func namedValues(t string) []span {
	var out []span
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c != '=' && c != ':' {
			continue
		}
		// The name: back over spaces, closing quotes, then name characters.
		j := i
		for j > 0 && (t[j-1] == ' ' || t[j-1] == '\t') {
			j--
		}
		quoted := false
		for k := 0; k < 2 && j > 0 && (t[j-1] == '"' || t[j-1] == '\'' || t[j-1] == '\\'); k++ {
			j--
			quoted = true
		}
		end := j
		for j > 0 && isNameChar(t[j-1]) {
			j--
		}
		if j == end || !secretName(t[j:end]) {
			continue
		}
		// The value: after spaces and an opening quote.
		k := i + 1
		for k < len(t) && (t[k] == ' ' || t[k] == '\t') {
			k++
		}
		if c == ':' && k == i+1 && !quoted && (k >= len(t) || !isQuote(t[k])) {
			continue // arn:aws:…, https://…
		}
		var quote byte
		for k < len(t) && (isQuote(t[k]) || t[k] == '\\') {
			if isQuote(t[k]) {
				quote = t[k]
			}
			k++
		}
		start := k
		for k < len(t) && !endsValue(t[k], quote) {
			k++
		}
		if keep := namedKeep(t[start:k]); start+keep < k {
			out = append(out, span{start + keep, k})
		}
		i = max(k-1, i)
	}
	return out
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

func isQuote(c byte) bool { return c == '"' || c == '\'' || c == '`' }

// endsValue reports whether c ends a value: its closing quote, or for an
// unquoted value, space and the punctuation that separates values.
func endsValue(c, quote byte) bool {
	if quote != 0 {
		return c == quote || c == '\\' || c == '\n'
	}
	switch c {
	case ' ', '\t', '\r', '\n', '&', ';', ',', '"', '\'', '`', '<', '>', '|', '#', '(', ')', '[', ']', '{', '}', '\\':
		return true
	}
	return false
}

func isRunChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || isSeparator(c)
}

func isSeparator(c byte) bool { return c == '/' || c == '+' || c == '_' || c == '-' }

// randomRuns finds the pieces of runs that read as random (rule 3).
func randomRuns(t string) []span {
	var out []span
	for i := 0; i < len(t); {
		if !isRunChar(t[i]) {
			i++
			continue
		}
		j := i
		for j < len(t) && isRunChar(t[j]) {
			j++
		}
		switch {
		case tokenPrefixed(t[i:j]):
			out = append(out, span{i, j})
		case j-i >= minSecret:
			out = append(out, randomPieces(t, i, j)...)
		}
		i = j
	}
	return out
}

// tokenPrefixes start the tokens of services that mark theirs: GitHub,
// GitLab, Slack, Stripe, npm, PyPI. A run that starts with one is a token
// whatever the rest looks like (a made-up one reads as words).
var tokenPrefixes = []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "xoxa-", "xoxs-", "xoxe-", "xapp-",
	"sk_live_", "rk_live_", "sk_test_", "npm_", "pypi-"}

// tokenPrefixed reports whether run is a marked token: a prefix and at
// least 16 more characters.
func tokenPrefixed(run string) bool {
	for _, p := range tokenPrefixes {
		if len(run) >= len(p)+16 && strings.HasPrefix(run, p) {
			return true
		}
	}
	return false
}

// randomPieces splits the run t[start:end] at AWS key ids and returns the
// pieces that read as random.
func randomPieces(t string, start, end int) []span {
	var out []span
	piece := start
	judge := func(to int) {
		if to-piece >= minSecret && looksRandom(t[piece:to]) {
			out = append(out, span{piece, to})
		}
	}
	for i := start; i < end; i++ {
		if i > start && !isSeparator(t[i-1]) {
			continue
		}
		if n := keyIDAt(t[:end], i); n > 0 {
			judge(i)
			i += n - 1
			piece = i + 1
		}
	}
	judge(end)
	return out
}

// keyIDAt returns the length of the AWS access key id at t[i:], or 0.
func keyIDAt(t string, i int) int {
	const n = 20
	if len(t)-i < n || (t[i:i+4] != "AKIA" && t[i:i+4] != "ASIA") {
		return 0
	}
	for k := i + 4; k < i+n; k++ {
		if c := t[k]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return 0
		}
	}
	return n
}

// looksRandom reports whether some window of piece costs randomBits or more
// a character to write down (see the rule above).
func looksRandom(piece string) bool {
	parts := costs(piece)
	for i := range parts {
		sum := 0.0
		for j := i; j < len(parts); j++ {
			sum += parts[j].bits
			n := parts[j].end - parts[i].start
			if n >= window || (i == 0 && j == len(parts)-1) {
				if sum >= randomBits*float64(n) {
					return true
				}
				break
			}
		}
	}
	return false
}

// part is a word, number, separator or identifier of a piece, with its cost
// in bits.
type part struct {
	start, end int
	bits       float64
}

// costs splits a piece into parts. Separators cost a bit; a segment between
// separators that is an AWS unique id costs 20 bits in all, one that is
// hexadecimal 2 bits a character; other segments are split into words and
// numbers (camelCase, ALLCAPS, digits), and each costs what wordBits says,
// 3.32 bits a digit, and a bit more to start it: 1 at the start of a
// segment, 3 inside one (where random text changes case or turns to digits
// all the time).
func costs(p string) []part {
	var out []part
	seg := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && (isDigit(p[i]) || isLower(p[i]) || isUpper(p[i])) {
			continue
		}
		s := p[seg:i]
		switch {
		case s == "":
		case isAWSID(s):
			out = append(out, part{seg, i, 20})
		case len(s) >= 4 && isHex(s):
			out = append(out, part{seg, i, 2 * float64(len(s))})
		default:
			for k, w := range words(s) {
				bits := 3.0
				if k == 0 {
					bits = 1
				}
				text := s[w.start:w.end]
				switch {
				case sameByte(text):
					bits += 4 + float64(len(text))/4
				case isDigit(text[0]):
					bits += 3.32 * float64(len(text))
				default:
					bits += wordBits(text)
				}
				out = append(out, part{seg + w.start, seg + w.end, bits})
			}
		}
		if i < len(p) {
			out = append(out, part{i, i + 1, 1})
		}
		seg = i + 1
	}
	return out
}

// words splits a segment into words and numbers: "getHTTPResponse2xx" is
// get, HTTP, Response, 2, xx.
func words(s string) []span {
	var out []span
	for i := 0; i < len(s); {
		j := i + 1
		switch {
		case isDigit(s[i]):
			for j < len(s) && isDigit(s[j]) {
				j++
			}
		case isLower(s[i]):
			for j < len(s) && isLower(s[j]) {
				j++
			}
		case j < len(s) && isLower(s[j]): // Capitalised
			for j < len(s) && isLower(s[j]) {
				j++
			}
		default: // ALLCAPS, whose last letter may start a Capitalised word
			for j < len(s) && isUpper(s[j]) {
				j++
			}
			if j < len(s) && isLower(s[j]) && j-i > 1 {
				j--
			}
		}
		out = append(out, span{i, j})
		i = j
	}
	return out
}

// wordBits is how many bits the letters of w take under wordModel, from
// the start of a word to its end, case aside.
func wordBits(w string) float64 {
	const boundary = 26
	a, b := boundary, boundary
	bits := 0
	for i := 0; i <= len(w); i++ {
		c := boundary
		if i < len(w) {
			c = int(w[i]|0x20) - 'a'
		}
		bits += int(wordModel[(a*27+b)*27+c] - ' ')
		a, b = b, c
	}
	return float64(bits) / 4
}

// isAWSID reports whether s is an AWS unique id: an access key id, a
// user's, role's or group's id, … (four letters that say what, then 16 or
// 17 upper-case letters or digits).
func isAWSID(s string) bool {
	if len(s) != 20 && len(s) != 21 {
		return false
	}
	switch s[:4] {
	case "AKIA", "ASIA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA", "AGPA", "ABIA", "ACCA":
	default:
		return false
	}
	for i := 4; i < len(s); i++ {
		if !isUpper(s[i]) && !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

func sameByte(s string) bool {
	return len(s) > 2 && strings.Count(s, s[:1]) == len(s)
}
