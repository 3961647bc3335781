package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// Seed is the sandbox's initial state. The first account's first user's
// first key is "the responder": the credentials stanch itself uses, which
// Serve prints as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
type Seed struct {
	Accounts []SeedAccount `yaml:"accounts" json:"accounts"`
	// GitHub holds secret-scanning alerts served under /api/v3/ (the GitHub
	// Enterprise Server layout the GitHub clients use for a custom URL).
	GitHub *SeedGitHub `yaml:"github" json:"github"`
	// Slack is a Slack workspace served under /slack/api/ (the Web API).
	Slack *SeedSlack `yaml:"slack" json:"slack"`
	// Vault is HashiCorp Vault's KV v2 mounts, secrets and ACL policies,
	// served under /vault/v1/ (see vault_kv.go).
	Vault *SeedVault `yaml:"vault" json:"vault"`
	// Azure is Azure Key Vault: vaults with secrets, served over HTTPS
	// (see azure.go).
	Azure *SeedAzure `yaml:"azure" json:"azure"`
	// Tokens are tokens of GitHub, Slack, Vault, GitLab and npm that may
	// leak, answered by each provider's identify and revoke endpoints (see
	// tokens.go); TokenLimits tune those endpoints' rate limits.
	Tokens      []SeedToken     `yaml:"tokens" json:"tokens"`
	TokenLimits SeedTokenLimits `yaml:"token_limits" json:"token_limits"`
	// Faults make services slow or unreliable from the start, by service
	// (see FaultServices): {iam: {latency: 200ms, error_rate: 0.1,
	// throttle_rate: 0.2}}. The /_sandbox/faults endpoint changes them.
	Faults map[string]FaultSpec `yaml:"faults" json:"faults"`
}

// SeedAccount is one AWS account.
type SeedAccount struct {
	ID    string     `yaml:"id" json:"id"`
	Users []SeedUser `yaml:"users" json:"users"`
	Roles []SeedRole `yaml:"roles" json:"roles"`
	// Sessions are STS temporary credentials (ASIA…) of roles.
	Sessions []SeedSession `yaml:"sessions" json:"sessions"`
	// Regions are the account's enabled regions (default: five common ones).
	Regions []string `yaml:"regions" json:"regions"`
	// Events and EventGenerators are the account's CloudTrail history.
	Events          []SeedEvent          `yaml:"events" json:"events"`
	EventGenerators []SeedEventGenerator `yaml:"event_generators" json:"event_generators"`
	// Secrets are Secrets Manager secrets, each with one AWSCURRENT version.
	Secrets []SeedSecret `yaml:"secrets" json:"secrets"`
	// Queues are SQS queue names.
	Queues []string `yaml:"queues" json:"queues"`
	// CustomerPolicies are customer managed policies users and roles may attach.
	CustomerPolicies []SeedCustomerPolicy `yaml:"customer_policies" json:"customer_policies"`
}

// SeedUser is an IAM user with its access keys and inline policies.
type SeedUser struct {
	Name     string            `yaml:"name" json:"name"`
	Keys     []SeedKey         `yaml:"keys" json:"keys"`
	Policies map[string]string `yaml:"policies" json:"policies"`
	// ManagedPolicies are the ARNs of attached managed policies.
	ManagedPolicies []string `yaml:"managed_policies" json:"managed_policies"`
}

// SeedKey is an access key.
type SeedKey struct {
	ID       string        `yaml:"id" json:"id"`
	Secret   string        `yaml:"secret" json:"secret"`
	Status   string        `yaml:"status" json:"status"`
	Created  time.Time     `yaml:"created" json:"created"`
	LastUsed *SeedLastUsed `yaml:"last_used" json:"last_used"`
}

// SeedLastUsed is when and where a key was last used.
type SeedLastUsed struct {
	Date    time.Time `yaml:"date" json:"date"`
	Service string    `yaml:"service" json:"service"`
	Region  string    `yaml:"region" json:"region"`
}

// SeedRole is an IAM role with inline policies.
type SeedRole struct {
	Name     string            `yaml:"name" json:"name"`
	Policies map[string]string `yaml:"policies" json:"policies"`
	// ManagedPolicies are the ARNs of attached managed policies.
	ManagedPolicies []string `yaml:"managed_policies" json:"managed_policies"`
	// TrustedAccounts may assume the role with sts:AssumeRole (its trust
	// policy, reduced to what stanch needs); ExternalID, when set, must be
	// presented.
	TrustedAccounts []string `yaml:"trusted_accounts" json:"trusted_accounts"`
	ExternalID      string   `yaml:"external_id" json:"external_id"`
}

// SeedSession is a role session's temporary credentials.
type SeedSession struct {
	ID     string `yaml:"id" json:"id"`
	Secret string `yaml:"secret" json:"secret"`
	Role   string `yaml:"role" json:"role"`
}

// LoadSeed reads a seed file (YAML or JSON).
func LoadSeed(path string) (Seed, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Seed{}, fmt.Errorf("read seed: %w", err)
	}
	return ParseSeed(path, data)
}

// ParseSeed decodes a seed strictly: unknown keys are errors that name the
// file and line.
func ParseSeed(name string, data []byte) (Seed, error) {
	var s Seed
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("{")) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return Seed{}, fmt.Errorf("seed %s: %w", name, err)
		}
	} else if err := yaml.UnmarshalWithOptions(data, &s, yaml.DisallowUnknownField()); err != nil {
		return Seed{}, fmt.Errorf("seed %s: %s", name, strings.TrimSpace(yaml.FormatError(err, false, false)))
	}
	if err := s.validate(); err != nil {
		var at *seedPathError
		if errors.As(err, &at) {
			if pos := yamlPosition(data, at.path); pos != "" {
				return Seed{}, fmt.Errorf("seed %s: %s %w", name, pos, err)
			}
		}
		return Seed{}, fmt.Errorf("seed %s: %w", name, err)
	}
	return s, nil
}

// seedPathError is a seed error about one value, which path (a YAML path
// such as $.faults.iam.error_rate) finds in the file.
type seedPathError struct {
	path string
	err  error
}

func (e *seedPathError) Error() string { return e.err.Error() }
func (e *seedPathError) Unwrap() error { return e.err }

// yamlPosition is "[line:column]" of the value at path in a YAML (or JSON)
// document, the way the decoder's own errors say where, or "" when it is
// not found.
func yamlPosition(data []byte, path string) string {
	p, err := yaml.PathString(path)
	if err != nil {
		return ""
	}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return ""
	}
	node, err := p.FilterFile(file)
	if err != nil || node == nil {
		return ""
	}
	pos := node.GetToken().Position
	return fmt.Sprintf("[%d:%d]", pos.Line, pos.Column)
}

// validateFaults checks the seed's faults: known services, durations and
// shares of calls.
func validateFaults(faults map[string]FaultSpec) error {
	for _, service := range sortedKeys(faults) {
		if err := checkFaultService(service); err != nil {
			return &seedPathError{"$.faults." + service, fmt.Errorf("faults: %w", err)}
		}
		if _, err := faults[service].Fault(); err != nil {
			var fe *faultFieldError
			if errors.As(err, &fe) {
				return &seedPathError{"$.faults." + service + "." + fe.field, fmt.Errorf("faults: %s: %w", service, err)}
			}
			return fmt.Errorf("faults: %s: %w", service, err)
		}
	}
	return nil
}

func (s Seed) validate() error {
	if len(s.Accounts) == 0 || len(s.Accounts[0].Users) == 0 || len(s.Accounts[0].Users[0].Keys) == 0 {
		return fmt.Errorf("the first account needs a user with a key: the responder whose credentials stanch uses")
	}
	if err := s.GitHub.validate(); err != nil {
		return err
	}
	if err := validateFaults(s.Faults); err != nil {
		return err
	}
	if err := validateTokens(s.Tokens, s.TokenLimits); err != nil {
		return err
	}
	if err := s.Vault.validate(); err != nil {
		return err
	}
	if err := s.Azure.validate(); err != nil {
		return err
	}
	keys := map[string]bool{}
	for _, a := range s.Accounts {
		if len(a.ID) != 12 || strings.Trim(a.ID, "0123456789") != "" {
			return fmt.Errorf("account id %q is not 12 digits", a.ID)
		}
		users := map[string]bool{}
		for _, u := range a.Users {
			if u.Name == "" || users[u.Name] {
				return fmt.Errorf("account %s: user name %q is empty or repeated", a.ID, u.Name)
			}
			users[u.Name] = true
			if len(u.Keys) > 2 {
				return fmt.Errorf("user %s has %d keys; IAM allows 2", u.Name, len(u.Keys))
			}
			for _, k := range u.Keys {
				if !validKeyID(k.ID, "AKIA") || k.Secret == "" || keys[k.ID] {
					return fmt.Errorf("user %s: key %q needs a unique AKIA… id (20 characters) and a secret", u.Name, k.ID)
				}
				keys[k.ID] = true
				if k.Status != "" && k.Status != statusActive && k.Status != statusInactive {
					return fmt.Errorf("key %s: status %q is not Active or Inactive", k.ID, k.Status)
				}
			}
		}
		for _, e := range a.Events {
			if e.Ago != "" {
				if _, err := time.ParseDuration(e.Ago); err != nil {
					return fmt.Errorf("account %s: event %s: ago %q is not a duration such as 50m", a.ID, e.Name, e.Ago)
				}
			}
		}
		roles := map[string]bool{}
		for _, r := range a.Roles {
			roles[r.Name] = true
		}
		if err := validateManagedSeed(a); err != nil {
			return err
		}
		for _, ses := range a.Sessions {
			if !validKeyID(ses.ID, "ASIA") || keys[ses.ID] || !roles[ses.Role] {
				return fmt.Errorf("account %s: session %q needs a unique ASIA… id and a seeded role (got role %q)", a.ID, ses.ID, ses.Role)
			}
			keys[ses.ID] = true
		}
	}
	return s.Slack.validate()
}

func validKeyID(id, prefix string) bool {
	if len(id) != 20 || !strings.HasPrefix(id, prefix) {
		return false
	}
	for _, r := range id {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
