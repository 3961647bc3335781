// Package tokens is the skeleton the actions that revoke a leaked token
// with the token itself share (gitlab, npm, slack and vault
// revoke_token): their parameters, naming the token by its fingerprint,
// and the check → act → verify flow of Revocation. Each provider keeps
// only its own API calls and messages.
package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/crashpoint"
)

// Params are the parameters of a revoke_token action that names the
// leaked token by its fingerprint, never by its value.
type Params struct {
	Credential  string `json:"credential" required:"true" doc:"the token's fingerprint (sha256:…), usually ${{ alert.credential.id }}; never the token itself"`
	Repository  string `json:"repository" doc:"owner/name of the GitHub secret-scanning alert that reported the token, usually ${{ alert.location.repo }}: read again when this process has not seen the token"`
	AlertNumber int    `json:"alert_number" doc:"that alert's number, usually ${{ alert.location.alert_number }}"`
}

// ValidateFingerprint refuses a credential that is not a fingerprint
// (sha256:…), such as the token itself.
func ValidateFingerprint(credential string) error {
	if !strings.HasPrefix(credential, "sha256:") {
		return errors.New("credential is not a token fingerprint (sha256:…): name the token by ${{ alert.credential.id }}, never by its value")
	}
	return nil
}

// Validate checks Params: the credential is a fingerprint.
func Validate(p Params) error { return ValidateFingerprint(p.Credential) }

// AlertPermission is the GitHub permission an action needs to read a
// token this process has not seen again from its alert.
var AlertPermission = actions.Permission{Name: "secret_scanning_alerts:read", Why: "GitHub, only when this process has not seen the token: read it again from the secret-scanning alert that reported it"}

// NoHistory is the impact line of a provider that keeps no usage
// history by token; more says what it offers instead.
func NoHistory(provider, more string) string {
	return provider + " offers no usage history by token" + more
}

// ByStatus marks err, an HTTP answer's, retryable (429, 5xx) or
// permanent, with api's code set to http_<status>.
func ByStatus(err error, api actions.APIError, status int) error {
	api.Code = fmt.Sprintf("http_%d", status)
	if status == http.StatusTooManyRequests || status >= 500 {
		return actions.Retryable(actions.WithAPIError(err, api))
	}
	return actions.Permanent(actions.WithAPIError(err, api))
}

// Spec describes a revoke_token action whose parameters are Params.
type Spec struct {
	// Name is <provider>.revoke_token.
	Name, Summary string
	// Uses says what the calls made with the leaked token itself need.
	Uses string
	// Validate, when set, replaces Validate.
	Validate func(Params) error
}

// Action is the action spec describes: a containment whose PlanFunc and
// DoFunc run the Revocation open returns.
func Action[S, O any](spec Spec, open func(context.Context, *Params) (*Revocation[S, O], error)) actions.Action {
	provider, _, _ := strings.Cut(spec.Name, ".")
	validate := spec.Validate
	if validate == nil {
		validate = Validate
	}
	return actions.New(actions.Definition[Params, O]{
		Name:        spec.Name,
		Summary:     spec.Summary,
		Containment: true,
		Permissions: []actions.Permission{{Name: "none", Why: spec.Uses}, AlertPermission},
		Example:     "- id: revoke_" + provider + "_token\n  action: " + spec.Name + "\n  with:\n    credential: ${{ alert.credential.id }}\n",
		Validate:    validate,
		PlanFunc:    PlanFunc(open),
		DoFunc:      DoFunc(open),
	})
}

// Revocation is one leaked token's check → act → verify: S is what the
// provider learns identifying the token, O the action's outputs. Plan and
// Do identify the token; a token refused already is settled (Already);
// Do then revokes it, records the effect and verifies that the provider
// refuses it (else the step is retried).
type Revocation[S, O any] struct {
	// Provider names the crash point <provider>:token_revoked.
	Provider string
	// Identify asks the provider with the token; refused says it no
	// longer takes it.
	Identify func(ctx context.Context) (s S, refused bool, err error)
	// Prepare, when set, runs once the token is known to be taken, before
	// a plan's calls or the revocation: a look-up or a refusal.
	Prepare func(ctx context.Context, s S) error
	// IdentifyCall is Identify's call in a plan.
	IdentifyCall actions.Call
	// PlanAlready and PlanRevoke are a plan's summary, calls after
	// IdentifyCall and outputs, for a refused and a taken token.
	PlanAlready func(s S) (string, *O)
	PlanRevoke  func(s S) (string, []actions.Call, *O)
	// Already is Do's message and outputs for a token refused already.
	Already func(s S) (string, *O)
	// Revoke revokes the token; a token revoked meanwhile is no error.
	Revoke func(ctx context.Context, s S) error
	// Effect is the effect recorded; Log the log line, with its attributes.
	Effect func(s S) string
	Log    func(s S) (string, []any)
	// StillAccepted is the (retryable) error when the provider still
	// takes the token after Revoke.
	StillAccepted func(s S) error
	// Done is Do's message and outputs once the token is refused.
	Done func(s S) (string, *O)
}

// Plan identifies the token and says what Do would do.
func (r *Revocation[S, O]) Plan(ctx context.Context) (actions.PlanOf[O], error) {
	type plan = actions.PlanOf[O]
	s, refused, err := r.Identify(ctx)
	if err != nil {
		return plan{}, err
	}
	calls := []actions.Call{r.IdentifyCall}
	if refused {
		summary, out := r.PlanAlready(s)
		return plan{Summary: summary, Calls: calls, Outputs: out, Settled: actions.Already}, nil
	}
	if r.Prepare != nil {
		if err := r.Prepare(ctx, s); err != nil {
			return plan{}, err
		}
	}
	summary, more, out := r.PlanRevoke(s)
	return plan{Summary: summary, Calls: append(calls, more...), Outputs: out}, nil
}

// Do revokes the token unless the provider refuses it already, then
// verifies that it does.
func (r *Revocation[S, O]) Do(ctx context.Context, env actions.Env) (actions.ResultOf[O], error) {
	type result = actions.ResultOf[O]
	s, refused, err := r.Identify(ctx)
	if err != nil {
		return result{}, err
	}
	if refused {
		msg, out := r.Already(s)
		return result{Outcome: actions.Already, Message: msg, Outputs: out}, nil
	}
	if r.Prepare != nil {
		if err := r.Prepare(ctx, s); err != nil {
			return result{}, err
		}
	}
	if err := r.Revoke(ctx, s); err != nil {
		return result{}, err
	}
	crashpoint.Hit(r.Provider + ":token_revoked")
	env.Record(actions.Effect{Description: r.Effect(s), Irreversible: true})
	msg, attrs := r.Log(s)
	env.Log().Info(msg, attrs...)
	if _, refused, err := r.Identify(ctx); err != nil {
		return result{}, fmt.Errorf("verify: %w", err)
	} else if !refused {
		return result{}, r.StillAccepted(s)
	}
	msg, out := r.Done(s)
	return result{Outcome: actions.Done, Message: msg, Outputs: out}, nil
}

// PlanFunc and DoFunc are an action definition's PlanFunc and DoFunc for
// open, which reads the leaked token named by the parameters.
func PlanFunc[P, S, O any](open func(ctx context.Context, in *P) (*Revocation[S, O], error)) func(context.Context, actions.Env, *P) (actions.PlanOf[O], error) {
	return func(ctx context.Context, _ actions.Env, in *P) (actions.PlanOf[O], error) {
		r, err := open(ctx, in)
		if err != nil {
			return actions.PlanOf[O]{}, err
		}
		return r.Plan(ctx)
	}
}

// DoFunc: see PlanFunc.
func DoFunc[P, S, O any](open func(ctx context.Context, in *P) (*Revocation[S, O], error)) func(context.Context, actions.Env, *P) (actions.ResultOf[O], error) {
	return func(ctx context.Context, env actions.Env, in *P) (actions.ResultOf[O], error) {
		r, err := open(ctx, in)
		if err != nil {
			return actions.ResultOf[O]{}, err
		}
		return r.Do(ctx, env)
	}
}
