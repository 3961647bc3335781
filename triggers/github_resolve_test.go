package triggers

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// pairSecret is the literal of the aws_secret_access_key alerts below.
const pairSecret = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbPAIREDKEY1"

const resolverSeed = `
accounts:
  - id: "111122223333"
    users: [` + sandbox.ResponderSeedUser + `]
github:
  token: ghp_resolver
  no_access: [acme/secret-service]
  alerts:
    - {repo: acme/secret-service, number: 3, secret_type: aws_access_key_id, secret: AKIAIOSFODNN7EXAMPLE}
    # A key id and its secret in the same file of the same commit: GitHub
    # raises one alert for each half.
    - repo: acme/payments-service
      number: 7
      secret_type: aws_access_key_id
      secret: AKIAI44QH8DHBEXAMPLE
      locations: [{path: config/aws.py, line: 4, commit: 1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e}]
    - repo: acme/payments-service
      number: 8
      secret_type: aws_secret_access_key
      secret: ` + pairSecret + `
      locations: [{path: config/aws.py, line: 5, commit: 1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e}]
    # A key id elsewhere, and a secret without its pair.
    - repo: acme/payments-service
      number: 9
      secret_type: aws_access_key_id
      secret: AKIAIOSFODNN7EXAMPLE
      locations: [{path: deploy/settings.py, line: 12, commit: 4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d}]
    - repo: acme/payments-service
      number: 10
      secret_type: aws_secret_access_key
      secret: ` + pairSecret + `
      locations: [{path: legacy/creds.txt, line: 2, commit: 4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d}]
`

func resolverSandbox(t *testing.T, token string) (*sandbox.Sandbox, *GitHubResolver) {
	t.Helper()
	sb := testkit.Sandbox(t, testkit.Seed(t, resolverSeed))
	client := sb.GitHubClient(t, token)
	return sb.Sandbox, &GitHubResolver{Client: client}
}

func resolve(t *testing.T, r *GitHubResolver, ref string) ([]alert.Alert, error) {
	t.Helper()
	alerts, err := r.Resolve(context.Background(), []byte(ref))
	if err != nil {
		require.NotContains(t, err.Error(), pairSecret)
	}
	for _, a := range alerts {
		require.NotContains(t, string(a.Raw)+a.Title, pairSecret)
	}
	return alerts, err
}

// TestGitHubResolverRefusalsAreUnactionable: GitHub answers 404 for an alert
// the token may not read (as for one that does not exist) and 401 for bad
// credentials. Retrying will not help; the error says what to fix.
func TestGitHubResolverRefusalsAreUnactionable(t *testing.T) {
	t.Parallel()
	_, r := resolverSandbox(t, "ghp_resolver")
	_, err := resolve(t, r, `{"repo":"acme/secret-service","number":3,"action":"created"}`)
	require.ErrorIs(t, err, alert.ErrUnactionable)
	require.ErrorContains(t, err, "GitHub answered 404 to get alert acme/secret-service#3: it does not exist, or the token or App lacks secret_scanning_alerts read permission on acme/secret-service (GitHub answers 404 then too); give it that permission, then redeliver the webhook")

	_, err = resolve(t, r, `{"repo":"acme/payments-service","number":404,"action":"created"}`)
	require.ErrorIs(t, err, alert.ErrUnactionable)

	_, bad := resolverSandbox(t, "ghp_revoked")
	_, err = resolve(t, bad, `{"repo":"acme/payments-service","number":7,"action":"created"}`)
	require.ErrorIs(t, err, alert.ErrUnactionable)
	require.ErrorContains(t, err, "GitHub answered 401 (bad credentials)")
}

// TestGitHubResolverRetriesWhatMayPass: server errors and rate limits are
// plain errors, which River retries.
func TestGitHubResolverRetriesWhatMayPass(t *testing.T) {
	t.Parallel()
	for name, fault := range map[string]sandbox.Fault{"503": {ErrorRate: 1}, "429": {ThrottleRate: 1}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sb, r := resolverSandbox(t, "ghp_resolver")
			sb.SetFault("github", fault)
			_, err := resolve(t, r, `{"repo":"acme/payments-service","number":7,"action":"created"}`)
			require.Error(t, err)
			require.False(t, errors.Is(err, alert.ErrUnactionable), "%v", err)
			sb.SetFault("github", sandbox.Fault{})
			alerts, err := resolve(t, r, `{"repo":"acme/payments-service","number":7,"action":"created"}`)
			require.NoError(t, err)
			require.Equal(t, "AKIAI44QH8DHBEXAMPLE", alerts[0].Credential.ID)
		})
	}
}

// TestGitHubResolverPairsTheSecretWithItsKeyID: an aws_secret_access_key
// alert's literal is the secret alone; its key id is the literal of the
// aws_access_key_id alert in the same file and commit, listed with the
// secret_type filter.
func TestGitHubResolverPairsTheSecretWithItsKeyID(t *testing.T) {
	t.Parallel()
	sb, r := resolverSandbox(t, "ghp_resolver")
	alerts, err := resolve(t, r, `{"repo":"acme/payments-service","number":8,"action":"created"}`)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	a := alerts[0]
	require.Equal(t, alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: "AKIAI44QH8DHBEXAMPLE"}, a.Credential)
	require.Equal(t, "github:acme/payments-service#8", a.DedupKey)
	require.Equal(t, alert.Location{Repo: "acme/payments-service", Path: "config/aws.py", Line: 5, Commit: "1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e",
		URL: "https://github.com/acme/payments-service/security/secret-scanning/8", AlertNumber: 8}, a.Location)
	require.Contains(t, a.Title, "key id from the paired alert #7")

	var filters []string
	for _, c := range sb.Calls() {
		if c.Action == "ListSecretScanningAlertsForRepo" {
			filters = append(filters, c.Params["secret_type"])
		}
	}
	require.Equal(t, []string{"aws_access_key_id,aws_temporary_access_key_id"}, filters)
}

// Without a key id alert at the same place, the alert is unactionable and
// says where the secret is.
func TestGitHubResolverSecretWithoutPair(t *testing.T) {
	t.Parallel()
	_, r := resolverSandbox(t, "ghp_resolver")
	_, err := resolve(t, r, `{"repo":"acme/payments-service","number":10,"action":"created"}`)
	require.ErrorIs(t, err, alert.ErrUnactionable)
	require.ErrorContains(t, err, "GitHub alert acme/payments-service#10 (aws_secret_access_key) holds the secret without its key id, and no aws_access_key_id or aws_temporary_access_key_id alert sits at the same place (legacy/creds.txt:2 in commit 4f1c9d2a7e3b, within 3 lines)")
}
