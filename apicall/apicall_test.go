package apicall_test

import (
	"context"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/apicall"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

const seed = `
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
      - {name: ci-bot, keys: [{id: AKIAIOSFODNN7EXAMPLE, secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY}]}
github:
  token: ghp_seeded
  alerts:
    - {repo: acme/app, number: 7, secret_type: aws_access_key_id, secret: AKIAIOSFODNN7EXAMPLE}
`

// log collects what a recorder is handed.
type log struct {
	mu    sync.Mutex
	calls []apicall.Call
}

func (l *log) add(c apicall.Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

func (l *log) all() []apicall.Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]apicall.Call(nil), l.calls...)
}

var awsRequestID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func iamClient(f *testkit.Fixture, attempts int) *iam.Client {
	cfg := f.AWSConfig()
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.RateLimiter = ratelimit.None
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	}
	cfg.APIOptions = append(cfg.APIOptions, apicall.AWS(func() string { return "111122223333" }))
	return iam.NewFromConfig(cfg)
}

// TestAWSCallsAreRecordedWithTheirRequestIDs: an answered call, a refused
// one and each attempt the SDK's retryer makes are recorded with the
// service, operation, account, region and the id the answer carried; the
// parameters (a user name) are not.
func TestAWSCallsAreRecordedWithTheirRequestIDs(t *testing.T) {
	f := testkit.Sandbox(t, testkit.Seed(t, seed))
	c := iamClient(f, 3)
	var got log
	ctx := apicall.WithRecorder(context.Background(), got.add)

	_, err := c.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("ci-bot")})
	require.NoError(t, err)
	_, err = c.GetUser(ctx, &iam.GetUserInput{UserName: aws.String("nobody-here")})
	require.Error(t, err)
	f.Sandbox.SetFault("iam", sandbox.Fault{ThrottleRate: 1})
	_, err = c.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("ci-bot")})
	require.Error(t, err)

	calls := got.all()
	require.Len(t, calls, 5, "one answered, one refused, three throttled attempts: %+v", calls)
	require.Equal(t, "iam", calls[0].Service)
	require.Equal(t, "ListAccessKeys", calls[0].Operation)
	require.Equal(t, "111122223333", calls[0].Account)
	require.Equal(t, "us-east-1", calls[0].Region)
	require.Equal(t, apicall.OK, calls[0].Outcome)
	require.Empty(t, calls[0].Error)
	require.False(t, calls[0].At.IsZero())
	require.Equal(t, "GetUser", calls[1].Operation)
	require.Equal(t, apicall.Failed, calls[1].Outcome)
	require.Equal(t, "NoSuchEntity", calls[1].Error)
	for i, c := range calls[2:] {
		require.Equal(t, apicall.Failed, c.Outcome, "attempt %d", i+1)
		require.Equal(t, "Throttling", c.Error, "attempt %d", i+1)
	}
	ids := map[string]bool{}
	for _, c := range calls {
		require.Regexp(t, awsRequestID, c.RequestID, "%+v", c)
		ids[c.RequestID] = true
		require.NotContains(t, c.Operation+c.Error, "ci-bot")
		require.NotContains(t, c.Operation+c.Error, "nobody-here")
	}
	require.Len(t, ids, len(calls), "each attempt has its own request id")
}

// TestCallsGoToTheRecorderOfTheirContext: steps running at once through
// one client each see only their own calls, and calls made outside a step
// (the notifier's, the triggers') are recorded nowhere.
func TestCallsGoToTheRecorderOfTheirContext(t *testing.T) {
	f := testkit.Sandbox(t, testkit.Seed(t, seed))
	c := iamClient(f, 1)
	logs := make([]log, 4)
	var wg sync.WaitGroup
	for i := range logs {
		wg.Go(func() {
			ctx := apicall.WithRecorder(context.Background(), logs[i].add)
			for range i + 1 {
				_, err := c.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("ci-bot")})
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	_, err := c.ListAccessKeys(context.Background(), &iam.ListAccessKeysInput{UserName: aws.String("ci-bot")})
	require.NoError(t, err)
	for i := range logs {
		require.Len(t, logs[i].all(), i+1, "step %d", i)
	}
	require.Equal(t, 1+2+3+4+1, f.Sandbox.Count("ListAccessKeys"), "the sandbox saw every call")
}

// TestHTTPCallsAreRecordedWithTheirRequestIDs: go-github through the
// recording transport; the path is kept, the query and the token are not.
func TestHTTPCallsAreRecordedWithTheirRequestIDs(t *testing.T) {
	f := testkit.Sandbox(t, testkit.Seed(t, seed))
	hc := &http.Client{Transport: apicall.Transport("github", nil)}
	gh, err := github.NewClient(hc).WithAuthToken("ghp_seeded").WithEnterpriseURLs(f.GitHubAPI(), f.GitHubAPI())
	require.NoError(t, err)
	var got log
	ctx := apicall.WithRecorder(context.Background(), got.add)
	_, _, err = gh.SecretScanning.GetAlert(ctx, "acme", "app", 7)
	require.NoError(t, err)
	_, _, err = gh.SecretScanning.GetAlert(ctx, "acme", "app", 99)
	require.Error(t, err)
	_, _, err = gh.SecretScanning.ListAlertsForRepo(ctx, "acme", "app", &github.SecretScanningAlertListOptions{SecretType: "aws_access_key_id"})
	require.NoError(t, err)

	calls := got.all()
	require.Len(t, calls, 3)
	require.Equal(t, "github", calls[0].Service)
	require.Equal(t, "GET /api/v3/repos/acme/app/secret-scanning/alerts/7", calls[0].Operation)
	require.Equal(t, apicall.OK, calls[0].Outcome)
	require.Regexp(t, `^[0-9A-F]{4}:[0-9A-F]{4}:[0-9A-F]{4}:[0-9A-F]{4}:[0-9A-F]{8}$`, calls[0].RequestID)
	require.Equal(t, apicall.Failed, calls[1].Outcome)
	require.Equal(t, "HTTP 404", calls[1].Error)
	require.Equal(t, "GET /api/v3/repos/acme/app/secret-scanning/alerts", calls[2].Operation, "no query")
}

func TestOperationHidesOpaquePathSegments(t *testing.T) {
	for url, want := range map[string]string{
		"https://registry.example/-/npm/v1/tokens/token/0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978": "DELETE /-/npm/v1/tokens/token/{id}",
		"https://slack.example/api/auth.revoke?token=xoxb-1":                                              "auth.revoke",
		"https://gitlab.example/api/v4/personal_access_tokens/self?x=1":                                   "DELETE /api/v4/personal_access_tokens/self",
	} {
		req, err := http.NewRequest(http.MethodDelete, url, nil)
		require.NoError(t, err)
		require.Equal(t, want, apicall.Operation(req), url)
	}
}
