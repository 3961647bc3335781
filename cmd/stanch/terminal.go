package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// What stanch prints comes largely from outside: alerts a sender wrote,
// playbooks proposed in a pull request, runs another process stored,
// errors that quote them. A terminal obeys what such text may carry
// (escape sequences that rewrite the screen or the window title, a
// carriage return that overwrites a line, bidirectional overrides that
// reorder it, a line break that forges one), so every value is printed
// through say or sayln, which show control characters as escapes. The
// format strings are stanch's own and keep their line breaks and tabs.
// TestEveryPrintGoesThroughTheTerminalHelpers keeps it that way.

// termSafe returns s with every control character (C0, DEL, C1), format
// character (bidirectional overrides and isolates, zero-width characters),
// line or paragraph separator and invalid UTF-8 byte written as a visible
// escape: \x1b, \n, \u202e.
func termSafe(s string) string { return escapeControls(s, false) }

// termLines is termSafe keeping line breaks: for text whose lines are
// stanch's own (the list of a playbook's problems, joined errors).
func termLines(s string) string { return escapeControls(s, true) }

func escapeControls(s string, keepNewlines bool) string {
	if !needsEscape(s, keepNewlines) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' && keepNewlines:
			b.WriteByte('\n')
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && isControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r > 0xffff && isControl(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		case isControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string, keepNewlines bool) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return true
			}
		}
		if isControl(r) && !(keepNewlines && r == '\n') {
			return true
		}
	}
	return false
}

// isControl reports whether a terminal may act on r rather than show it.
func isControl(r rune) bool {
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r)
}

// say is fmt.Fprintf with every argument made safe for a terminal:
// strings, errors and Stringers through termSafe; numbers and booleans as
// they are; anything else printed with %v, then made safe.
func say(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format, safeArgs(args)...)
}

// sayln is fmt.Fprintln with say's arguments.
func sayln(w io.Writer, args ...any) {
	fmt.Fprintln(w, safeArgs(args)...)
}

// sayLines prints text whose line breaks are stanch's own (a playbook's
// problems, one per line; errors joined with errors.Join) and a final line
// break, with everything else made safe.
func sayLines(w io.Writer, text string) {
	fmt.Fprintln(w, termLines(text))
}

func safeArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = safeArg(a)
	}
	return out
}

func safeArg(a any) any {
	switch v := a.(type) {
	case nil:
		return v
	case string:
		return termSafe(v)
	case error:
		return termSafe(v.Error())
	case []string:
		safe := make([]string, len(v))
		for i, s := range v {
			safe[i] = termSafe(s)
		}
		return safe
	}
	switch reflect.ValueOf(a).Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		// Numbers, and named numbers such as time.Duration, print nothing
		// a terminal acts on, and keep their verbs (%d, %5.1f).
		return a
	case reflect.String:
		return termSafe(reflect.ValueOf(a).String())
	}
	if s, ok := a.(fmt.Stringer); ok {
		return termSafe(s.String())
	}
	return termSafe(fmt.Sprintf("%v", a))
}

// writeJSON prints v as indented JSON. JSON escapes C0 controls itself;
// the other characters a terminal acts on (C1, bidirectional overrides)
// are written as \u escapes too, which leaves the same JSON value.
func writeJSON(g *globals, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	var b strings.Builder
	for _, r := range buf.String() {
		if r == '\n' || !isControl(r) {
			b.WriteRune(r)
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		} else {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	_, err := io.WriteString(g.stdout, b.String())
	return err
}
