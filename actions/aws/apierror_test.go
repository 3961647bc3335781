package aws

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// Errors say which AWS service answered and its code, for the metrics,
// without changing what they say to people.
func TestErrorsNameTheServiceAndCode(t *testing.T) {
	t.Parallel()
	b, _ := sandboxBackend(t)
	_, err := testkit.RunAction(t, b.actions(t)["aws.deactivate_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": "nobody"})
	require.Error(t, err)
	api, ok := actions.APIErrorOf(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, actions.APIError{Provider: "aws", Service: "iam", Code: "NoSuchEntity"}, api)

	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(unavailable.Close)
	cfg := testkit.AWSConfig(unavailable.URL, sandbox.ResponderKeyID, "x")
	cfg.RetryMaxAttempts = 1
	p := NewProvider(ProviderOptions{Config: func(context.Context, string) (awssdk.Config, error) { return cfg, nil }})
	_, err = testkit.RunAction(t, Actions(p)[0], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked})
	require.Error(t, err)
	api, ok = actions.APIErrorOf(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "aws", api.Provider)
	require.Contains(t, []string{"iam", "sts"}, api.Service)
	require.Equal(t, "http_503", api.Code, "an answer without an AWS error code: its HTTP status")
}

func TestContainmentActions(t *testing.T) {
	t.Parallel()
	var contain []string
	for _, a := range Actions(NewProvider(ProviderOptions{})) {
		if a.Spec().Containment {
			contain = append(contain, a.Spec().Name)
		}
	}
	require.ElementsMatch(t, []string{"aws.deactivate_key", "aws.delete_key", "aws.revoke_sessions", "aws.quarantine"}, contain)
}
