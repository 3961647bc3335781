package alert

import (
	"encoding/json"
	"regexp"
	"strings"
)

// Redacted replaces every secret value stanch removes.
const Redacted = "[REDACTED]"

// secretField names JSON fields whose values are secrets wherever they appear.
// truffleHog's "Redacted" is the start of the secret for most detectors
// (the key id only for AWS, which the exception below keeps).
var secretField = regexp.MustCompile(`(?i)^(secret|secret_?access_?key|aws_secret_access_key|session_?token|aws_session_token|token|password|passwd|private_?key|client_secret|signing_?secret|raw|rawv2|redacted|match)$`)

// awsSecretKey matches a 40-character AWS secret access key shape. It is only
// applied to strings that sit next to a secret-looking field name or that
// contain nothing else, to avoid eating commit SHAs (which are hex and 40 long).
var awsSecretKey = regexp.MustCompile(`[A-Za-z0-9/+]{40}`)

// RedactJSON returns raw with every secret value replaced by Redacted. Access
// key ids are kept (they identify, they do not authenticate); secret access
// keys, session tokens, passwords and tokens are removed. A document that is
// not JSON is replaced whole, because nothing in it can be trusted to be safe.
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
		for k, child := range t {
			t[k] = redactValue(k, child)
		}
		return t
	case []any:
		for i, child := range t {
			t[i] = redactValue(key, child)
		}
		return t
	case string:
		if key != "" && secretField.MatchString(key) {
			// The key id inside a "secret" literal is the one useful part.
			if id := AWSKeyID.FindString(t); id != "" && len(t) == len(id) {
				return t
			}
			return Redacted
		}
		return RedactText(t)
	default:
		return v
	}
}

// RedactText removes secret-looking substrings from free text: anything
// shaped like an AWS secret access key that is not a hex digest.
func RedactText(s string) string {
	return awsSecretKey.ReplaceAllStringFunc(s, func(m string) string {
		if isHex(m) || !hasMixedClasses(m) {
			return m
		}
		return Redacted
	})
}

func isHex(s string) bool {
	return strings.Trim(strings.ToLower(s), "0123456789abcdef") == ""
}

// hasMixedClasses reports whether s mixes upper, lower and digits, as
// generated secrets do and English words or paths rarely do.
func hasMixedClasses(s string) bool {
	var up, low, dig bool
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z':
			up = true
		case r >= 'a' && r <= 'z':
			low = true
		case r >= '0' && r <= '9':
			dig = true
		}
	}
	return up && low && dig
}
