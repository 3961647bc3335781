// Package planted holds secrets that tests plant wherever a leaked
// credential could travel through stanch, and finds any trace of them:
// stanch must never show, store or send one. Each is shaped as an AWS
// secret access key, and each has a shape that redaction once missed.
package planted

import (
	"strings"
	"testing"
)

// The planted secrets: random draws of the AWS secret access key alphabet,
// kept fixed so that a failure can be reproduced.
const (
	Random     = "bCpPvLrGE978/XSzYHNZpF/pIx8N4tDISZRjAU/u" // upper, lower, digits and /
	NoDigit    = "DOzjskiUkzywNARkvdqeVxCwyzpsViJBzbG+leGV" // no digit
	NoUpper    = "so6ck1365ai7s8ezkorys+p1hsbglhot+1mlevej" // no upper case
	AfterKeyID = "kcgvSgNhXWAYVDhK5PHuYZQ5nHsCeZpsYvS7w78p" // written right after its key id
	InPath     = "TkS4gOnm2b12qHtJhrnQFENuuJc53Z2dZY3G2Nhj" // inside a long path
	InURL      = "kWZPxsVXfFwWvuhjJHvEqkRmVcudCqmhKvmIOP/X" // URL-encoded in a query
	InLiteral  = "eaXOTeFIZVaTIPfJPNNGshvEYFJxhpOt/CJJlvv+" // a GitHub alert's secret literal
	InTitle    = "SuIzOASj6LMFvPWMFcn6gqPdSc9JbBAc6aFyEtHQ" // in a finding's title
)

// All are the planted secrets.
var All = []string{Random, NoDigit, NoUpper, AfterKeyID, InPath, InURL, InLiteral, InTitle}

// PieceLength is how much of a secret in a row counts as a trace of it.
const PieceLength = 16

// Find returns the first piece (PieceLength characters in a row) of a
// planted secret in text, as it is or URL-decoded, and the secret.
func Find(text string) (piece, secret string, found bool) {
	readings := []string{text}
	for _, plus := range []bool{false, true} {
		d := text
		for range 4 {
			next := unescape(d, plus)
			if next == d {
				break
			}
			d = next
			readings = append(readings, d)
		}
	}
	for _, s := range All {
		for i := 0; i+PieceLength <= len(s); i++ {
			for _, r := range readings {
				if strings.Contains(r, s[i:i+PieceLength]) {
					return s[i : i+PieceLength], s, true
				}
			}
		}
	}
	return "", "", false
}

// Require fails the test if text holds a piece of a planted secret, and
// says where.
func Require(t testing.TB, where, text string) {
	t.Helper()
	if piece, secret, found := Find(text); found {
		i := strings.Index(text, piece)
		context := ""
		if i >= 0 {
			context = text[max(0, i-80):min(len(text), i+len(piece)+80)]
		}
		t.Errorf("%q, part of the planted secret %q, is in %s: …%s…", piece, secret, where, context)
	}
}

// unescape decodes %XX escapes (and + as a space if plus), leaving
// anything else as it is.
func unescape(s string, plus bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(hexValue(s[i+1])<<4 | hexValue(s[i+2]))
			i += 2
		case c == '+' && plus:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexValue(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
