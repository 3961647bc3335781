package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Sources an alert can come from.
const (
	SourceGitHub     = "github"
	SourceGuardDuty  = "guardduty"
	SourceHealth     = "health"
	SourceTruffleHog = "trufflehog"
	SourceGitleaks   = "gitleaks"
	SourceGitSecrets = "git-secrets"
	SourceManual     = "manual"
)

// Kinds of alert. A playbook's `on.kinds` selects among them.
const (
	// KindCredentialExposed: the credential was seen where it should not be
	// (a repository, a paste, AWS's own scan of public code).
	KindCredentialExposed = "credential_exposed"
	// KindCredentialMisused: the credential is being used suspiciously
	// (GuardDuty).
	KindCredentialMisused = "credential_misused"
	// KindCredentialResolved: the source says the exposure is closed.
	KindCredentialResolved = "credential_resolved"
)

// Credential kinds.
const (
	CredentialAccessKey   = "access_key"   // long-term IAM user key, AKIA…
	CredentialRoleSession = "role_session" // STS temporary credentials, ASIA…
	CredentialToken       = "token"        // any other bearer secret
)

// Severities, lowest first.
var severities = []string{"info", "low", "medium", "high", "critical"}

// Alert is one normalised report that a credential leaked or is misused.
type Alert struct {
	// Source is where the alert came from: github, guardduty, health,
	// trufflehog, gitleaks or manual.
	Source string `json:"source" expr:"source"`
	// Kind is what the alert says happened (credential_exposed, …).
	Kind string `json:"kind" expr:"kind"`
	// ReceivedAt is when stanch received the alert, in UTC.
	ReceivedAt time.Time `json:"received_at" expr:"received_at"`
	// DedupKey identifies the alert across redeliveries: two alerts with the
	// same key are the same alert and start one run per playbook.
	DedupKey string `json:"dedup_key" expr:"dedup_key"`
	// Credential is the leaked credential.
	Credential Credential `json:"credential" expr:"credential"`
	// Location is where it leaked, when the source knows.
	Location Location `json:"location" expr:"location"`
	// Severity is one of info, low, medium, high, critical.
	Severity string `json:"severity" expr:"severity"`
	// Title is a one-line human summary.
	Title string `json:"title" expr:"title"`
	// Test marks sample or synthetic alerts (such as GuardDuty's generated
	// findings) that must not contain anything real unless a playbook opts in.
	Test bool `json:"test,omitempty" expr:"test"`
	// Raw is the source's payload with every secret value redacted.
	Raw json.RawMessage `json:"raw,omitempty" expr:"-"`
}

// Credential identifies the leaked secret without carrying it.
type Credential struct {
	// Provider is whose credential it is: aws, github, slack, …
	Provider string `json:"provider" expr:"provider"`
	// Kind is access_key, role_session or token.
	Kind string `json:"kind" expr:"kind"`
	// TokenType is what kind of token the provider's prefix says it is
	// (personal_access_token, bot_token, service_token, …; TokenKinds),
	// for tokens only. It is public: the prefix says as much.
	TokenType string `json:"token_type,omitempty" expr:"token_type"`
	// ID is the public identifier, such as an AWS access key id (AKIA…/ASIA…);
	// for a token, which has none, the fingerprint of its value
	// (Fingerprint). Never the secret.
	ID string `json:"id" expr:"id"`
	// Account is the provider account that owns it (12-digit AWS account id).
	Account string `json:"account,omitempty" expr:"account"`
	// Principal is the user or role it belongs to, when known.
	Principal string `json:"principal,omitempty" expr:"principal"`
}

// Location is where the credential was found.
type Location struct {
	Repo   string `json:"repo,omitempty" expr:"repo"` // owner/name
	Path   string `json:"path,omitempty" expr:"path"`
	Line   int    `json:"line,omitempty" expr:"line"`
	Commit string `json:"commit,omitempty" expr:"commit"`
	URL    string `json:"url,omitempty" expr:"url"`
	// AlertNumber is the GitHub secret-scanning alert's number in Repo, for
	// alerts that came from GitHub (github.resolve_alert closes it).
	AlertNumber int `json:"alert_number,omitempty" expr:"alert_number"`
}

// AWSKeyID matches an AWS access key id: AKIA for IAM user keys, ASIA for
// STS temporary credentials. It finds ids inside text; KeyID says whether a
// value is one.
var AWSKeyID = regexp.MustCompile(`\b(AKIA|ASIA)[A-Z0-9]{16}\b`)

// awsKeyIDShape finds what is meant as a key id even where AWSKeyID would
// not (inside a longer word, lower-cased, cut short), so that "xAKIA…" or
// "AKIA123" is refused rather than taken for some other kind of token.
var awsKeyIDShape = regexp.MustCompile(`(?i)^(AKIA|ASIA)|(AKIA|ASIA)[A-Z0-9]{16}`)

var awsKeyIDExact = regexp.MustCompile(`^(AKIA|ASIA)[A-Z0-9]{16}$`)

// KeyID normalises a value that should be one AWS access key id: the
// whitespace around it is trimmed, and what is left must be exactly AKIA or
// ASIA and 16 upper-case letters or digits. Anything else (another word
// before or after it, two ids, a line break inside) is not a key id: the
// run would fail to identify it and the key would stay active, so it is
// refused rather than guessed at.
func KeyID(s string) (string, bool) {
	id := strings.TrimSpace(s)
	return id, awsKeyIDExact.MatchString(id)
}

// KeyIDIn returns the AWS access key id that text (a secret literal, a
// scanner's match) holds, and how many different ones it holds: the id is
// only returned when that is exactly one.
func KeyIDIn(text string) (string, int) {
	ids := AWSKeyID.FindAllString(text, -1)
	distinct := map[string]bool{}
	for _, id := range ids {
		distinct[id] = true
	}
	if len(distinct) != 1 {
		return "", len(distinct)
	}
	return ids[0], 1
}

// KindOf is what an AWS key id's prefix says it is: AKIA an IAM user's
// access key, ASIA temporary credentials of a role session. The prefix
// decides; what a source says about the key only informs.
func KindOf(id string) (string, bool) {
	switch {
	case strings.HasPrefix(id, "AKIA"):
		return CredentialAccessKey, true
	case strings.HasPrefix(id, "ASIA"):
		return CredentialRoleSession, true
	}
	return "", false
}

// ErrInvalid is wrapped by every validation error of Parse and Validate.
var ErrInvalid = errors.New("invalid alert")

// Parse decodes a stanch Alert JSON document strictly (unknown fields are
// errors), fills defaults and validates it. now is used when received_at is
// missing.
func Parse(data []byte, now time.Time) (Alert, error) {
	var a Alert
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		// The decoder quotes what it did not expect, such as an unknown
		// field's name, which may be a secret.
		return Alert{}, fmt.Errorf("%w: %s", ErrInvalid, RedactText(err.Error()))
	}
	if dec.More() {
		return Alert{}, fmt.Errorf("%w: more than one JSON document", ErrInvalid)
	}
	// Before anything reads it: neither the alert nor an error about it
	// may carry a secret.
	a.Redact()
	a.Normalise(now)
	if err := a.Validate(); err != nil {
		return Alert{}, RedactError(err)
	}
	return a, nil
}

// Normalise fills fields that can be derived: received time, credential kind
// from the key prefix, severity and the dedup key.
func (a *Alert) Normalise(now time.Time) {
	if a.ReceivedAt.IsZero() {
		a.ReceivedAt = now
	}
	a.ReceivedAt = a.ReceivedAt.UTC()
	// Only the whitespace around an id is forgiven (a copied id with its
	// line break); Validate refuses anything else around it.
	a.Credential.ID = strings.TrimSpace(a.Credential.ID)
	isKey := awsKeyIDExact.MatchString(a.Credential.ID)
	if a.Credential.Provider == "" && isKey {
		a.Credential.Provider = "aws"
	}
	if a.Credential.Kind == "" {
		if kind, ok := KindOf(a.Credential.ID); ok && isKey {
			a.Credential.Kind = kind
		} else {
			a.Credential.Kind = CredentialToken
		}
	}
	if a.Kind == "" {
		a.Kind = KindCredentialExposed
	}
	if a.Severity == "" {
		a.Severity = "high"
	}
	if a.DedupKey == "" {
		a.DedupKey = a.Source + ":" + a.Credential.Provider + ":" + a.Credential.ID
	}
}

// Validate reports every problem with the alert at once.
func (a Alert) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if a.Source == "" {
		add("source is required (github, guardduty, health, trufflehog, gitleaks or manual)")
	}
	// The value is never quoted: a field meant for a key id may hold a
	// secret, or escape sequences for the terminal that shows the error.
	id := a.Credential.ID
	isKey := awsKeyIDExact.MatchString(id)
	switch {
	case id == "":
		add("credential.id is required (for AWS, the access key id AKIA…/ASIA…)")
	case hasControl(id):
		add("credential.id contains control characters (line breaks, escape sequences); give the identifier alone")
	case a.Test:
		// Sample findings carry placeholders instead of key ids; they are
		// kept (marked test) so that the sender is answered, and contain
		// nothing.
	case isKey:
	case a.Credential.Provider == "aws" || (a.Credential.Provider == "" && awsKeyIDShape.MatchString(id)):
		// "key=AKIA…", "AKIA… AKIA…": taken as some other token it would
		// start no AWS playbook, and the key would stay active.
		add("credential.id is not an AWS access key id: give the one key id alone, AKIA or ASIA followed by 16 upper-case letters or digits")
	}
	if kind, ok := KindOf(id); ok && isKey && !a.Test && a.Credential.Kind != kind && a.Credential.Kind != "" {
		add("credential.kind %q does not match credential.id: the prefix %s makes it %s", a.Credential.Kind, id[:4], kind)
	}
	if a.Credential.Account != "" && a.Credential.Provider == "aws" && !awsAccount.MatchString(a.Credential.Account) {
		add("credential.account %q is not a 12-digit AWS account id", a.Credential.Account)
	}
	switch a.Credential.Kind {
	case CredentialAccessKey, CredentialRoleSession, CredentialToken:
	default:
		add("credential.kind %q is not one of access_key, role_session, token", a.Credential.Kind)
	}
	if !validSeverity(a.Severity) {
		add("severity %q is not one of %s", a.Severity, strings.Join(severities, ", "))
	}
	return errors.Join(errs...)
}

var awsAccount = regexp.MustCompile(`^[0-9]{12}$`)

// hasControl reports whether s holds a C0 or C1 control character or a
// bidirectional formatting character, none of which belongs in an
// identifier.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c || r == 0xfffd {
			return true
		}
	}
	return false
}

func validSeverity(s string) bool {
	for _, v := range severities {
		if v == s {
			return true
		}
	}
	return false
}

// ErrUnactionable is wrapped by errors about a report that can never become
// an alert stanch can act on as it stands: no credential id can be found in
// it, or its source refuses stanch the access it needs to read it. Retrying
// does not help; a person must fix what the error says, so such failures
// are shown where people look rather than retried.
var ErrUnactionable = errors.New("cannot be acted on")
