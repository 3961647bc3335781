package triggers

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
)

// TestGitHubWebhookRefusesNamesGitHubWouldNotMake: a signed delivery with
// repository.full_name "../../../orgs/acme" made stanch request a path
// outside the API's repository routes with its token, and alert number -5
// was accepted. Both are refused with 400 naming the field.
func TestGitHubWebhookRefusesNamesGitHubWouldNotMake(t *testing.T) {
	t.Parallel()
	secret := []byte("github webhook secret")
	sink := &deferred{}
	h := NewGitHub(secret, sink, nil)
	deliver := func(body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader([]byte(body)))
		r.Header.Set("X-GitHub-Event", "secret_scanning_alert")
		r.Header.Set("X-Hub-Signature-256", signGitHub(secret, []byte(body)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	for _, tc := range []struct{ repo, number, field string }{
		{"../../../orgs/acme", "7", "repository.full_name"},
		{"acme/../../orgs/acme", "7", "repository.full_name"},
		{"acme/api?x=1", "7", "repository.full_name"},
		{"acme/..", "7", "repository.full_name"},
		{"-acme/api", "7", "repository.full_name"},
		{"acme/api", "-5", "alert.number"},
	} {
		rec := deliver(`{"action":"created","alert":{"number":` + tc.number + `,"secret_type":"aws_access_key_id"},"repository":{"full_name":"` + tc.repo + `"}}`)
		require.Equal(t, http.StatusBadRequest, rec.Code, "%s#%s: %s", tc.repo, tc.number, rec.Body.String())
		require.Contains(t, rec.Body.String(), tc.field)
		require.NotContains(t, rec.Body.String(), tc.repo, "the value is not echoed")
	}
	require.Empty(t, sink.keys)
	require.Equal(t, http.StatusOK, deliver(`{"action":"created","alert":{"number":7,"secret_type":"aws_access_key_id"},"repository":{"full_name":"acme-corp/api.v2_x"}}`).Code)
	require.Equal(t, []string{"github:acme-corp/api.v2_x#7"}, sink.keys)
}

// A reference recorded before these checks existed (or otherwise) is
// checked again before its names become a request path.
func TestGitHubResolverChecksTheRecordedReference(t *testing.T) {
	t.Parallel()
	sb, r := resolverSandbox(t, "ghp_resolver")
	for _, ref := range []string{
		`{"repo":"../../../orgs/acme","number":7,"action":"created"}`,
		`{"repo":"acme/payments-service","number":-5,"action":"created"}`,
	} {
		_, err := r.Resolve(context.Background(), []byte(ref))
		require.ErrorIs(t, err, alert.ErrUnactionable, ref)
		require.ErrorContains(t, err, "the recorded")
	}
	require.Empty(t, sb.Calls(), "nothing was requested with the token")
}

// The backstop's repositories and organisations are names too.
func TestGitHubBackstopChecksNames(t *testing.T) {
	t.Parallel()
	sb, r := resolverSandbox(t, "ghp_resolver")
	for _, b := range []*GitHubBackstop{
		{Client: r.Client, Repos: []string{"../../orgs/acme"}, Sink: &deferred{}},
		{Client: r.Client, Orgs: []string{"acme/../x"}, Sink: &deferred{}},
	} {
		err := b.Poll(context.Background())
		require.Error(t, err)
		require.ErrorContains(t, err, "--github-poll-")
	}
	require.Empty(t, sb.Calls())
	require.NoError(t, CheckRepo("x", "acme/payments-service"))
	require.NoError(t, CheckOwner("x", "octocat_acme"), "Enterprise Managed Users' logins have an underscore")
}
