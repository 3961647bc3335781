package testkit

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/sandbox"
)

// Fixture is a sandbox serving over HTTP until the test ends.
type Fixture struct {
	*sandbox.Sandbox
	// URL is the server's base: AWS is served at it, GitHub under
	// /api/v3/, Slack under /slack/api/.
	URL string
}

// Seed parses a seed written in YAML, as sandbox.ParseSeed does.
func Seed(t testing.TB, yaml string) sandbox.Seed {
	t.Helper()
	seed, err := sandbox.ParseSeed("seed.yaml", []byte(yaml))
	require.NoError(t, err)
	return seed
}

// Sandbox starts a sandbox holding seed and serves it until the test ends.
func Sandbox(t testing.TB, seed sandbox.Seed) *Fixture {
	t.Helper()
	sb, err := sandbox.New(seed, sandbox.Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return &Fixture{Sandbox: sb, URL: srv.URL}
}

// AWSConfig is an AWS SDK configuration that calls the sandbox as the
// responder (sandbox.ResponderKeyID), which the seed must hold.
func (f *Fixture) AWSConfig() aws.Config {
	return AWSConfig(f.URL, sandbox.ResponderKeyID, sandbox.ResponderSecret)
}

// GitHubAPI is the base URL of the sandbox's GitHub REST API.
func (f *Fixture) GitHubAPI() string { return f.URL + "/api/v3/" }

// SlackAPI is the base URL of the sandbox's Slack Web API.
func (f *Fixture) SlackAPI() string { return f.URL + "/slack/api/" }

// GitHubClient is a go-github client of the sandbox's GitHub, with token.
func (f *Fixture) GitHubClient(t testing.TB, token string) *github.Client {
	t.Helper()
	client, err := github.NewClient(nil).WithAuthToken(token).WithEnterpriseURLs(f.GitHubAPI(), f.GitHubAPI())
	require.NoError(t, err)
	return client
}

// AWSConfig is an AWS SDK configuration that calls url (a sandbox, moto,
// a test server) in us-east-1 with a static key.
func AWSConfig(url, keyID, secret string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(keyID, secret, ""),
		BaseEndpoint: aws.String(url),
		// A connection per request: under -race with tests in parallel a
		// kept-alive connection was seen closed under a response being
		// read ("use of closed network connection"), and moto's server
		// drops idle ones; the SDK then retried calls that had taken
		// effect.
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
}
