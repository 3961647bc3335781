// Package destinations delivers a rotated credential to the stores its
// consumers read: HashiCorp Vault KV v2 (vaultkv.go) today, beside AWS
// Secrets Manager, which the rotation itself keeps (actions/aws, rotate.go)
// because it also holds the new credential while the rotation is
// unfinished. Each destination writes idempotently, says whether it already
// holds the credential (by reading it back, or where a store cannot be
// read, by its metadata), lists the calls a plan shows and the permissions
// it needs. A new credential's secret parts are never logged, shown or
// stored by stanch: they go only to the destinations.
package destinations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/stanchhq/stanch/actions"
)

// Credential is a new credential to deliver: its fields by name (for an
// AWS access key: UserName, AccessKeyId, SecretAccessKey) and the public
// id people see.
type Credential struct {
	ID     string
	Fields map[string]string
	// Secret names the fields that are secret: they never appear in a
	// message, a log, a plan or the journal.
	Secret map[string]bool
}

// String and LogValue keep secret fields out of any %v or slog attribute.
func (c Credential) String() string { return "credential " + c.ID }

func (c Credential) LogValue() slog.Value { return slog.StringValue(c.ID) }

// Mark identifies the rotation that writes: stable across the attempts and
// resumes of one step, so that a destination can tell its own write.
type Mark struct {
	RunID, StepID string
	// Since is when the step's first attempt began: a write found after it
	// that carries the credential's id is this rotation's.
	Since time.Time
}

// Destination is one store a rotation writes the new credential to.
type Destination interface {
	// Describe names it for people: "Vault KV secret/ci/aws".
	Describe() string
	// Holds reports whether it already holds c (written by an earlier
	// attempt of this rotation, or this one).
	Holds(ctx context.Context, c Credential, m Mark) (bool, error)
	// Write stores c and returns what it wrote, for the journal ("version
	// 4"). It is called only when Holds said no.
	Write(ctx context.Context, c Credential, m Mark) (string, error)
	// Calls are the API calls a plan shows.
	Calls() []actions.Call
}

// Spec is one item of a rotation step's `destinations:`: exactly one of
// its fields is set.
type Spec struct {
	VaultKV       *VaultKVSpec       `json:"vault_kv,omitempty"`
	AzureKeyVault *AzureKeyVaultSpec `json:"azure_key_vault,omitempty"`
	GitHubActions *GitHubActionsSpec `json:"github_actions,omitempty"`
	SOPS          *SOPSSpec          `json:"sops,omitempty"`
}

// Deps are what destinations need from stanch's configuration.
type Deps struct {
	Vault  VaultDeps
	Azure  AzureDeps
	GitHub GitHubDeps
	SOPS   SOPSDeps
}

// Check reports every problem with specs at once.
func Check(specs []Spec) error {
	var problems []string
	for i, s := range specs {
		kinds := []struct {
			name  string
			set   bool
			check func() error
		}{
			{"vault_kv", s.VaultKV != nil, func() error { return s.VaultKV.check() }},
			{"azure_key_vault", s.AzureKeyVault != nil, func() error { return s.AzureKeyVault.check() }},
			{"github_actions", s.GitHubActions != nil, func() error { return s.GitHubActions.check() }},
			{"sops", s.SOPS != nil, func() error { return s.SOPS.check() }},
		}
		n := 0
		for _, k := range kinds {
			if !k.set {
				continue
			}
			n++
			if err := k.check(); err != nil {
				problems = append(problems, fmt.Sprintf("destinations[%d].%s: %v", i, k.name, err))
			}
		}
		if n != 1 {
			problems = append(problems, fmt.Sprintf("destinations[%d]: name exactly one kind of destination (vault_kv, azure_key_vault, github_actions or sops)", i))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Build returns the destinations specs name, in order.
func Build(specs []Spec, deps Deps) ([]Destination, error) {
	out := make([]Destination, 0, len(specs))
	for i, s := range specs {
		var d Destination
		var err error
		switch {
		case s.VaultKV != nil:
			d, err = newVaultKV(*s.VaultKV, deps.Vault)
		case s.AzureKeyVault != nil:
			d, err = newAzureKeyVault(*s.AzureKeyVault, deps.Azure)
		case s.GitHubActions != nil:
			d, err = newGitHubActions(*s.GitHubActions, deps.GitHub)
		case s.SOPS != nil:
			d, err = newSOPS(*s.SOPS, deps.SOPS)
		default:
			return nil, fmt.Errorf("destinations[%d]: no destination named", i)
		}
		if err != nil {
			return nil, fmt.Errorf("destinations[%d]: %w", i, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// Permissions are what each kind of destination needs, for `stanch
// actions` and `stanch permissions`.
func Permissions() []actions.Permission {
	out := []actions.Permission{
		{Provider: "vault", Name: "read on {mount}/data/{path}, {mount}/metadata/{path}", Why: "destinations vault_kv: read the current version (check-and-set) and tell this rotation's write"},
		{Provider: "vault", Name: "create, update on {mount}/data/{path}", Why: "destinations vault_kv: write the new credential as a new version"},
		{Provider: "vault", Name: "patch on {mount}/metadata/{path}", Why: "destinations vault_kv: record the run in the secret's custom metadata"},
	}
	out = append(out, azurePermissions...)
	out = append(out, githubActionsPermissions...)
	return append(out, sopsPermissions...)
}

// mapped returns the values to write: fields maps a destination's key to
// a credential field; empty means every field under its own name.
func mapped(c Credential, fields map[string]string) (map[string]string, error) {
	out := map[string]string{}
	if len(fields) == 0 {
		for k, v := range c.Fields {
			out[k] = v
		}
		return out, nil
	}
	for key, field := range fields {
		v, ok := c.Fields[field]
		if !ok {
			return nil, fmt.Errorf("fields: %s maps to %s, which the credential does not have (it has %s)", key, field, strings.Join(fieldNames(c), ", "))
		}
		out[key] = v
	}
	return out, nil
}

func fieldNames(c Credential) []string {
	names := make([]string, 0, len(c.Fields))
	for k := range c.Fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
