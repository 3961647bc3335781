// Package vault is the vault.revoke_token action: it looks a leaked
// HashiCorp Vault token up with the token itself (its policies, creation,
// TTL, orphan status and accessor: what the token could do, the only
// "impact" Vault can tell), revokes it (revoke-self, or by accessor with an
// operator token when one is configured) and verifies that Vault refuses
// it. It uses Vault's official Go client, github.com/hashicorp/vault/api.
package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/stanchhq/stanch/actions"
	ghactions "github.com/stanchhq/stanch/actions/github"
	"github.com/stanchhq/stanch/actions/tokens"
	"github.com/stanchhq/stanch/apicall"
)

// Options say how stanch reaches Vault.
type Options struct {
	// Address is Vault's address, such as https://vault.example.com:8200
	// (the sandbox: <sandbox>/vault). Empty: VAULT_ADDR, else Vault's
	// default.
	Address string
	// Namespace is the Vault Enterprise namespace, if any.
	Namespace string
	// OperatorToken, when set, returns a token allowed to call
	// auth/token/revoke-accessor, for steps with method accessor; it is
	// read only when such a step runs, so that listing and validating
	// actions read no secret. An empty token means none is configured.
	OperatorToken func() (string, error)
	HTTPClient    *http.Client
	// AlertSecret, when set, reads a token this process has not seen from
	// the GitHub secret-scanning alert that reported it.
	AlertSecret ghactions.AlertSecret
}

// RevokeTokenParams are the parameters of vault.revoke_token.
type RevokeTokenParams struct {
	Credential  string `json:"credential" required:"true" doc:"the token's fingerprint (sha256:…), usually ${{ alert.credential.id }}; never the token itself"`
	Method      string `json:"method" doc:"self (default): revoke-self with the leaked token; accessor: revoke-accessor with the configured operator token"`
	Repository  string `json:"repository" doc:"owner/name of the GitHub secret-scanning alert that reported the token, usually ${{ alert.location.repo }}: read again when this process has not seen the token"`
	AlertNumber int    `json:"alert_number" doc:"that alert's number, usually ${{ alert.location.alert_number }}"`
}

// RevokeTokenOutputs are the outputs of vault.revoke_token: the token's
// lookup, which is all Vault tells of what it could do.
type RevokeTokenOutputs struct {
	Credential   string   `json:"credential" doc:"the token's fingerprint"`
	Accessor     string   `json:"accessor" doc:"the token's accessor (not a secret: it can look the token up and revoke it, not use it)"`
	DisplayName  string   `json:"display_name" doc:"the token's display name (the auth method and the user, such as github-octocat)"`
	Policies     []string `json:"policies" doc:"the token's policies: what it could read and change"`
	Path         string   `json:"path" doc:"the auth path that created it"`
	EntityID     string   `json:"entity_id" doc:"the identity entity it belongs to"`
	TokenType    string   `json:"token_type" doc:"service or batch"`
	CreationTime string   `json:"creation_time" doc:"when it was created (RFC 3339)"`
	ExpireTime   string   `json:"expire_time" doc:"when it would have expired (RFC 3339), empty for a token without TTL"`
	TTLSeconds   int      `json:"ttl_seconds" doc:"its TTL left at the lookup, in seconds (0: none)"`
	Orphan       bool     `json:"orphan" doc:"it has no parent; revoking it also revokes its children (tokens it created) either way"`
	Renewable    bool     `json:"renewable" doc:"it could renew itself"`
	NumUses      int      `json:"num_uses" doc:"uses left (0: unlimited)"`
	Revoked      bool     `json:"revoked" doc:"Vault now refuses the token"`
	Impact       string   `json:"impact" doc:"what Vault can tell of the token's use: its lookup, not a history (that is in Vault's audit devices, hashed)"`
}

const revokeByHand = "an operator revokes it with `vault token revoke <token>` or `vault token revoke -accessor <accessor>`, or in the UI (Access → Entities / Leases)"

// Actions returns the Vault actions: vault.revoke_token.
func Actions(opts Options) []actions.Action {
	return []actions.Action{revokeToken(opts)}
}

func revokeToken(opts Options) actions.Action {
	return actions.New(actions.Definition[RevokeTokenParams, RevokeTokenOutputs]{
		Name:        "vault.revoke_token",
		Summary:     "Revoke a leaked HashiCorp Vault token (hvs., s., …): look it up with itself (policies, TTL, orphan, accessor), revoke it with revoke-self (or by accessor with an operator token), verify that Vault refuses it.",
		Containment: true,
		Permissions: []actions.Permission{
			{Name: "none", Why: "method self: auth/token/lookup-self and auth/token/revoke-self are called with the leaked token itself (every token may)"},
			{Name: "auth/token/revoke-accessor (update)", Why: "method accessor only: the operator token's policy must allow update on auth/token/revoke-accessor"},
			tokens.AlertPermission,
		},
		Example: `- id: revoke_vault_token
  action: vault.revoke_token
  with:
    credential: ${{ alert.credential.id }}
`,
		Provision: func(p *RevokeTokenParams) {
			if p.Method == "" {
				p.Method = "self"
			}
		},
		Validate: func(p RevokeTokenParams) error {
			if err := tokens.ValidateFingerprint(p.Credential); err != nil {
				return err
			}
			if p.Method != "self" && p.Method != "accessor" {
				return fmt.Errorf("method %q is not self or accessor", p.Method)
			}
			return nil
		},
		PlanFunc: tokens.PlanFunc(open(opts)),
		DoFunc:   tokens.DoFunc(open(opts)),
	})
}

type leakedToken struct {
	fp       string
	method   string
	client   *vaultapi.Client // with the leaked token
	operator *vaultapi.Client // with the operator token, for method accessor
}

func newClient(opts Options, token string) (*vaultapi.Client, error) {
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		return nil, actions.Permanent(fmt.Errorf("vault configuration: %w", cfg.Error))
	}
	if opts.Address != "" {
		cfg.Address = opts.Address
	}
	if opts.HTTPClient != nil {
		cfg.HttpClient = opts.HTTPClient
	}
	cfg.HttpClient = apicall.Client("vault", cfg.HttpClient)
	cfg.MaxRetries = 0 // the runner retries the step
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, actions.Permanent(fmt.Errorf("vault client for %s: %w", cfg.Address, err))
	}
	if opts.Namespace != "" {
		c.SetNamespace(opts.Namespace)
	}
	c.SetToken(token)
	return c, nil
}

func newLeakedToken(ctx context.Context, opts Options, in *RevokeTokenParams) (*leakedToken, error) {
	t := &leakedToken{fp: in.Credential, method: in.Method}
	operator := ""
	if t.method == "accessor" && opts.OperatorToken != nil {
		var err error
		if operator, err = opts.OperatorToken(); err != nil {
			return nil, actions.Permanent(fmt.Errorf("read the Vault operator token: %w", err))
		}
	}
	if t.method == "accessor" && operator == "" {
		return nil, actions.Permanentf("method accessor needs an operator token (STANCH_VAULT_OPERATOR_TOKEN); none is configured: use method self, which needs none")
	}
	value, err := ghactions.LeakedValue(ctx, in.Credential, in.Repository, in.AlertNumber, opts.AlertSecret, "Vault token", revokeByHand)
	if err != nil {
		return nil, err
	}
	if t.client, err = newClient(opts, value); err != nil {
		return nil, err
	}
	if t.method == "accessor" {
		if t.operator, err = newClient(opts, operator); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// lookup is the token's lookup-self; refused says Vault no longer takes it.
type lookup struct {
	Accessor, DisplayName, Path, EntityID, Type string
	Policies                                    []string
	Created, Expires                            time.Time
	TTL                                         time.Duration
	Orphan, Renewable                           bool
	NumUses                                     int
}

func (t *leakedToken) lookup(ctx context.Context) (*lookup, bool, error) {
	s, err := t.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		var re *vaultapi.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			return nil, true, nil
		}
		return nil, false, classify(fmt.Errorf("look up Vault token %s: %w", t.fp, err))
	}
	if s == nil || s.Data == nil {
		return nil, false, actions.Retryable(fmt.Errorf("look up Vault token %s: Vault answered without data", t.fp))
	}
	l := &lookup{}
	l.Accessor, _ = s.TokenAccessor()
	l.Policies, _ = s.TokenPolicies()
	l.TTL, _ = s.TokenTTL()
	l.Renewable, _ = s.TokenIsRenewable()
	str := func(k string) string { v, _ := s.Data[k].(string); return v }
	l.DisplayName, l.Path, l.EntityID, l.Type = str("display_name"), str("path"), str("entity_id"), str("type")
	if l.Type == "" {
		l.Type = "service"
	}
	l.Orphan, _ = s.Data["orphan"].(bool)
	if n, ok := s.Data["num_uses"].(interface{ Int64() (int64, error) }); ok {
		v, _ := n.Int64()
		l.NumUses = int(v)
	}
	if n, ok := s.Data["creation_time"].(interface{ Int64() (int64, error) }); ok {
		v, _ := n.Int64()
		l.Created = time.Unix(v, 0).UTC()
	}
	if e := str("expire_time"); e != "" {
		l.Expires, _ = time.Parse(time.RFC3339Nano, e)
	}
	if l.Policies == nil {
		l.Policies = []string{}
	}
	return l, false, nil
}

func (t *leakedToken) describe(l *lookup) string {
	s := "Vault token " + t.fp
	if l != nil {
		s += fmt.Sprintf(" (%s, policies %s)", l.DisplayName, strings.Join(l.Policies, ", "))
	}
	return s
}

// revocable refuses batch tokens, which Vault cannot revoke.
func (t *leakedToken) revocable(l *lookup) error {
	if l.Type == "batch" {
		return actions.Permanentf("%s is a batch token, which Vault cannot revoke: it lives until its TTL ends (%s); revoke its parent, or the auth method's role, to stop more", t.fp, l.Expires.Format(time.RFC3339))
	}
	return nil
}

func (t *leakedToken) outputs(l *lookup, revoked bool) *RevokeTokenOutputs {
	out := &RevokeTokenOutputs{Credential: t.fp, Revoked: revoked, Policies: []string{},
		Impact: "Vault keeps no usage history by token that stanch can read: the lookup (policies, creation, TTL, orphan) says what it could do; what it did is in Vault's audit devices, keyed by the token's HMAC"}
	if l == nil {
		return out
	}
	out.Accessor, out.DisplayName, out.Policies, out.Path, out.EntityID, out.TokenType = l.Accessor, l.DisplayName, l.Policies, l.Path, l.EntityID, l.Type
	if !l.Created.IsZero() {
		out.CreationTime = l.Created.Format(time.RFC3339)
	}
	if !l.Expires.IsZero() {
		out.ExpireTime = l.Expires.UTC().Format(time.RFC3339)
	}
	out.TTLSeconds, out.Orphan, out.Renewable, out.NumUses = int(l.TTL.Seconds()), l.Orphan, l.Renewable, l.NumUses
	out.Impact = fmt.Sprintf("it could use policies %s (created %s, TTL left %s, orphan %t, %s); %s", strings.Join(l.Policies, ", "), out.CreationTime, l.TTL, l.Orphan, l.Path, out.Impact)
	return out
}

// open reads the leaked token (and the operator token, for method
// accessor) and returns its revocation.
func open(opts Options) func(context.Context, *RevokeTokenParams) (*tokens.Revocation[*lookup, RevokeTokenOutputs], error) {
	return func(ctx context.Context, in *RevokeTokenParams) (*tokens.Revocation[*lookup, RevokeTokenOutputs], error) {
		t, err := newLeakedToken(ctx, opts, in)
		if err != nil {
			return nil, err
		}
		return t.revocation(), nil
	}
}

func (t *leakedToken) revocation() *tokens.Revocation[*lookup, RevokeTokenOutputs] {
	how := "revoke-self"
	if t.method == "accessor" {
		how = "revoke-accessor"
	}
	return &tokens.Revocation[*lookup, RevokeTokenOutputs]{
		Provider:     "vault",
		Identify:     t.lookup,
		Prepare:      func(_ context.Context, l *lookup) error { return t.revocable(l) },
		IdentifyCall: actions.Call{Service: "vault", Operation: "GET /v1/auth/token/lookup-self", Params: map[string]any{"token": "the leaked token " + t.fp}, Made: true},
		PlanAlready: func(*lookup) (string, *RevokeTokenOutputs) {
			return fmt.Sprintf("Vault already refuses %s: nothing to revoke", t.fp), t.outputs(nil, true)
		},
		PlanRevoke: func(look *lookup) (string, []actions.Call, *RevokeTokenOutputs) {
			revoke := actions.Call{Service: "vault", Operation: "PUT /v1/auth/token/revoke-self", Params: map[string]any{"token": "the leaked token " + t.fp}, Mutates: true, Irreversible: true, Effect: "revoke " + t.describe(look) + " and its child tokens and leases"}
			if t.method == "accessor" {
				revoke.Operation = "POST /v1/auth/token/revoke-accessor"
				revoke.Params = map[string]any{"accessor": look.Accessor, "token": "the operator token"}
			}
			return fmt.Sprintf("would revoke %s (%s), then check that lookup-self is refused", t.describe(look), revoke.Operation),
				[]actions.Call{revoke, {Service: "vault", Operation: "GET /v1/auth/token/lookup-self", Params: map[string]any{"token": "the leaked token " + t.fp, "expect": "403"}}},
				t.outputs(look, true)
		},
		Already: func(*lookup) (string, *RevokeTokenOutputs) {
			return fmt.Sprintf("Vault already refuses %s (lookup-self: 403): nothing revoked", t.fp), t.outputs(nil, true)
		},
		Revoke: func(ctx context.Context, l *lookup) error {
			var err error
			if t.method == "accessor" {
				err = t.operator.Auth().Token().RevokeAccessorWithContext(ctx, l.Accessor)
			} else {
				err = t.client.Auth().Token().RevokeSelfWithContext(ctx, "")
			}
			if err != nil {
				var re *vaultapi.ResponseError
				if !(errors.As(err, &re) && re.StatusCode == http.StatusForbidden && t.method == "self") { // 403: revoked meanwhile
					return classify(fmt.Errorf("%s %s: %w", how, t.describe(l), err))
				}
			}
			return nil
		},
		Effect: func(l *lookup) string {
			return fmt.Sprintf("revoked %s with %s, with its child tokens and leases", t.describe(l), how)
		},
		Log: func(l *lookup) (string, []any) {
			return "Vault token revoked", []any{"credential", t.fp, "accessor", l.Accessor, "method", how}
		},
		StillAccepted: func(*lookup) error {
			return actions.Retryable(fmt.Errorf("lookup-self still accepts %s after %s; the step checks again", t.fp, how))
		},
		Done: func(l *lookup) (string, *RevokeTokenOutputs) {
			out := t.outputs(l, true)
			return fmt.Sprintf("revoked %s with %s; lookup-self now refused. %s", t.describe(l), how, out.Impact), out
		},
	}
}

// classify marks a Vault error retryable (5xx, 429, network) or permanent.
func classify(err error) error {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return tokens.ByStatus(err, actions.APIError{Provider: "vault", Service: "token"}, re.StatusCode)
	}
	return actions.Retryable(err)
}
