package triggers

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/alert"
)

// githubFailure sorts a failed GitHub call about what (an alert, a
// repository's alerts) in repo. GitHub's refusals do not improve with
// retries and say what a person must fix, so they wrap
// alert.ErrUnactionable; rate limits, server errors and network errors are
// returned plain, to be retried.
func githubFailure(op, what, repo string, err error) error {
	var limited *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	if errors.As(err, &limited) || errors.As(err, &abuse) {
		return fmt.Errorf("%s %s: GitHub rate limit; will retry: %w", op, what, err)
	}
	var resp *github.ErrorResponse
	if !errors.As(err, &resp) || resp.Response == nil {
		return fmt.Errorf("%s %s: %w", op, what, err)
	}
	retry := "then redeliver the webhook (the webhook's Recent deliveries in GitHub) or let the backstop poll (--github-poll-repo) pick the alert up"
	switch resp.Response.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("%w: GitHub answered 401 (bad credentials) to %s %s: the token or GitHub App credentials stanch uses are wrong, expired or revoked; fix them ($STANCH_GITHUB_TOKEN, or the App's id, installation id and private key), %s: %w",
			alert.ErrUnactionable, op, what, retry, err)
	case http.StatusForbidden:
		return fmt.Errorf("%w: GitHub answered 403 to %s %s: the token or App may not read the secret-scanning alerts of %s; give it secret_scanning_alerts read permission (a classic token: the repo or security_events scope), %s: %w",
			alert.ErrUnactionable, op, what, repo, retry, err)
	case http.StatusNotFound:
		return fmt.Errorf("%w: GitHub answered 404 to %s %s: it does not exist, or the token or App lacks secret_scanning_alerts read permission on %s (GitHub answers 404 then too); give it that permission, %s: %w",
			alert.ErrUnactionable, op, what, repo, retry, err)
	}
	return fmt.Errorf("%s %s: %w", op, what, err)
}
