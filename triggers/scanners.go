package triggers

import (
	"errors"
	"strings"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/leaked"
)

// scannedCredential identifies what a scanner found: an AWS key by its id,
// a token of a kind stanch knows (alert.TokenKinds) by the fingerprint of
// its value, which this process remembers (leaked.Process) so that an
// action can revoke it; anything else by a fingerprint of the secret under
// what the scanner's rule or detector name says (names, for the provider;
// else the name itself). Text that holds two different key ids, or two
// different tokens, is an error: which one leaked is not known.
func scannedCredential(detector string, names map[string]namedKind, secretText string) (alert.Credential, error) {
	switch id, n := alert.KeyIDIn(secretText); {
	case n == 1:
		return alert.Credential{Provider: "aws", ID: id}, nil
	case n > 1:
		return alert.Credential{}, errMoreThanOneKeyID
	}
	if cred, ok, err := tokenCredential(secretText); ok || err != nil {
		return cred, err
	}
	cred := alert.Credential{Provider: strings.ToLower(detector), Kind: alert.CredentialToken, ID: alert.Fingerprint(secretText)}
	if k, ok := kindNamed(names, detector); ok {
		cred.Provider, cred.TokenType = k.provider, k.tokenType
	}
	return cred, nil
}

// tokenCredential is the credential of the one token of a known kind in
// text, remembered by this process. It is false when text holds none, and
// an error when it holds more than one.
func tokenCredential(text string) (alert.Credential, bool, error) {
	if cred, ok := alert.TokenCredential(text); ok {
		leaked.Process.Remember(strings.TrimSpace(text))
		return cred, true, nil
	}
	switch tokens := alert.TokensIn(text); len(tokens) {
	case 0:
		return alert.Credential{}, false, nil
	case 1:
		cred, _ := alert.TokenCredential(tokens[0])
		leaked.Process.Remember(tokens[0])
		return cred, true, nil
	}
	return alert.Credential{}, false, errMoreThanOneToken
}

var (
	errMoreThanOneKeyID = errors.New("the finding's secret holds more than one AWS access key id, so which one leaked is not known; give each to stanch run --alert")
	errMoreThanOneToken = errors.New("the finding's secret holds more than one token, so which one leaked is not known; revoke each by hand")
)

// namedKind is what a source's name for a secret (a GitHub secret type, a
// gitleaks rule, a truffleHog detector) says about a value whose shape
// stanch does not recognise.
type namedKind struct {
	provider, tokenType string
}

// kindNamed looks name up in names, as written and lower-cased.
func kindNamed(names map[string]namedKind, name string) (namedKind, bool) {
	if k, ok := names[name]; ok {
		return k, true
	}
	k, ok := names[strings.ToLower(name)]
	return k, ok
}

// repoName turns a clone URL into owner/name.
func repoName(url string) string {
	url = strings.TrimSuffix(strings.TrimSuffix(url, "/"), ".git")
	parts := strings.Split(url, "/")
	if len(parts) >= 2 {
		return parts[len(parts)-2] + "/" + parts[len(parts)-1]
	}
	return url
}
