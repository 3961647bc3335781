package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	gh "github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/actions"
)

// Provider gives the GitHub actions their client, built on first use, so
// that listing or validating actions needs no credentials.
type Provider struct {
	opts Options

	once   sync.Once
	client *gh.Client
	err    error
}

// NewProvider returns a provider for opts.
func NewProvider(opts Options) *Provider { return &Provider{opts: opts} }

// Configured reports whether the provider has credentials.
func (p *Provider) Configured() bool { return p != nil && p.opts.Configured() }

// Client returns the shared client; configuration problems are permanent
// errors.
func (p *Provider) Client() (*gh.Client, error) {
	if !p.Configured() {
		return nil, actions.Permanent(ErrNotConfigured)
	}
	p.once.Do(func() {
		p.client, p.err = NewClient(p.opts)
		if p.err != nil {
			p.err = actions.Permanent(p.err)
		}
	})
	return p.client, p.err
}

// Actions returns every GitHub action, sharing p.
func Actions(p *Provider) []actions.Action {
	return []actions.Action{resolveAlert(p), openIssue(p), tokenImpact(p)}
}

// splitRepo splits owner/name.
func splitRepo(repo string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("repository %q is not owner/name", repo)
	}
	return owner, name, nil
}

// classify marks err retryable or permanent for the runner, and adds what
// a person needs to fix a permanent one: rate limits, server errors and
// network trouble are retryable; GitHub's refusals (bad credentials,
// missing permission, not found, validation) are permanent.
func classify(err error, need string) error {
	if err == nil {
		return nil
	}
	err = withAPIError(err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return actions.Retryable(err)
	}
	var te *TokenError
	if errors.As(err, &te) {
		if te.Retryable() {
			return actions.Retryable(err)
		}
		return actions.Permanent(err)
	}
	var rl *gh.RateLimitError
	var abuse *gh.AbuseRateLimitError
	if errors.As(err, &rl) || errors.As(err, &abuse) {
		return actions.Retryable(err)
	}
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		switch code := er.Response.StatusCode; {
		case code == http.StatusTooManyRequests || code >= 500:
			return actions.Retryable(err)
		case code == http.StatusUnauthorized:
			return actions.Permanent(fmt.Errorf("%w (GitHub refused stanch's credentials)", err))
		case code == http.StatusForbidden || code == http.StatusNotFound:
			// GitHub answers 404 rather than 403 for what the credentials
			// may not see.
			return actions.Permanent(fmt.Errorf("%w (missing, or not visible to stanch's credentials: they need %s)", err, need))
		default:
			return actions.Permanent(err)
		}
	}
	return actions.Retryable(err)
}

// withAPIError attaches what GitHub answered to err (for metrics), when it
// answered.
func withAPIError(err error) error {
	api := actions.APIError{Provider: "github", Service: "rest"}
	var rl *gh.RateLimitError
	var abuse *gh.AbuseRateLimitError
	var er *gh.ErrorResponse
	switch {
	case errors.As(err, &rl):
		api.Code = "rate_limited"
	case errors.As(err, &abuse):
		api.Code = "secondary_rate_limit"
	case errors.As(err, &er) && er.Response != nil:
		api.Code = fmt.Sprintf("http_%d", er.Response.StatusCode)
	default:
		return err
	}
	return actions.WithAPIError(err, api)
}
