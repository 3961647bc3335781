// Package planted holds secrets that tests plant wherever a leaked
// credential could travel through stanch, and finds any trace of them:
// stanch must never show, store or send one. Each is shaped as an AWS
// secret access key, and each has a shape that redaction once missed.
package planted

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	for _, s := range append(All[:len(All):len(All)], AllTokens...) {
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

// RequireNone fails the test if any of values holds a piece of a planted
// secret, and says where (what values are) and which piece. A string,
// []byte or json.RawMessage is read as it is, an error as its message;
// anything else both as fmt's %+v shows it (unexported fields too) and as
// JSON (so that raw JSON inside, such as an alert's Raw, reads as text).
func RequireNone(t testing.TB, where string, values ...any) {
	t.Helper()
	for _, v := range values {
		text := textOf(v)
		if piece, secret, found := Find(text); found {
			i := strings.Index(text, piece)
			context := ""
			if i >= 0 {
				context = text[max(0, i-80):min(len(text), i+len(piece)+80)]
			}
			t.Errorf("%q, part of the planted secret %q, is in %s: …%s…", piece, secret, where, context)
		}
	}
}

// RequireNoneInFiles is RequireNone for every file matching pattern (a
// filepath.Glob pattern, such as a store's files "dir/stanch.db*"), read
// as bytes; when says at what moment. No file matching fails the test: a
// check of nothing passes for the wrong reason.
func RequireNoneInFiles(t testing.TB, when, pattern string) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no file matches %s (%v): nothing to look for planted secrets in", pattern, err)
	}
	for _, f := range files {
		if info, err := os.Lstat(f); err == nil && !info.Mode().IsRegular() {
			continue // the token hand-off socket beside a store holds nothing
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		RequireNone(t, filepath.Base(f)+" "+when, data)
	}
}

func textOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case json.RawMessage:
		return string(v)
	case error:
		return v.Error()
	}
	text := fmt.Sprintf("%+v", v)
	if data, err := json.Marshal(v); err == nil {
		text += "\n" + string(data)
	}
	return text
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
