package alert

import (
	"slices"
	"strings"
)

// Finding secrets in text: the spans RedactText removes. Text is read as
// written and URL-decoded; values under secret names, runs that read as
// random under the letter model (wordmodel.go) and known token prefixes
// are found; key ids split the runs they start. The rule itself is
// described in redact.go.

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
	for _, sp := range append(append(namedValues(v.text), randomRuns(v.text)...), markedTokens(v.text)...) {
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
		k, marked := tokenIn(t[i:j])
		switch {
		case marked && k == 0:
			out = append(out, span{i, j})
		case marked:
			// Glued to a word ("policy-xoxb-…"): the token is from
			// its prefix on; what comes before is judged as ever.
			if k >= minSecret {
				out = append(out, randomPieces(t, i, i+k)...)
			}
			out = append(out, span{i + k, j})
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
var tokenPrefixes = []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "gldt-", "glrt-", "glft-", "glptt-", "glcbt-",
	"xoxb-", "xoxp-", "xoxa-", "xoxs-", "xoxe-", "xoxr-", "xapp-", "sk_live_", "rk_live_", "sk_test_", "npm_", "pypi-"}

// tokenIn finds a marked token in run: a prefix, at the start or after a
// character that cannot be part of a token's body (so "policy-xoxb-…" and
// "us-glpat-…" count), and at least 16 more characters. It returns where
// the token starts.
func tokenIn(run string) (int, bool) {
	best := -1
	for _, p := range tokenPrefixes {
		from := 0
		for {
			k := strings.Index(run[from:], p)
			if k < 0 {
				break
			}
			k += from
			if len(run)-k >= len(p)+16 && (k == 0 || !isAlnum(run[k-1])) && (best < 0 || k < best) {
				best = k
				break
			}
			from = k + 1
		}
	}
	return best, best >= 0
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// markedTokens finds the tokens of the kinds stanch knows (TokenKinds)
// whose shape runs do not cover: Vault's hvs./hvb./s. tokens (the dot ends
// a run), Slack's xoxe. tokens and webhook URLs. A legacy Vault token
// (s. and 24 letters or digits) is only taken when it reads as random or
// holds a digit, so that a 24-letter identifier after "s." stays.
func markedTokens(t string) []span {
	var out []span
	for _, m := range tokenShapes.FindAllStringSubmatchIndex(t, -1) {
		v := t[m[2]:m[3]]
		if strings.HasPrefix(v, "s.") && !strings.ContainsAny(v, "0123456789") && !looksRandom(v[2:]) {
			continue
		}
		out = append(out, span{m[2], m[3]})
	}
	return out
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
