package runner

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/apicall"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// A replica resumed after a pause longer than its lease, with a request
// in flight: its lease's timer has not fired yet, so nothing has cancelled
// the pass, but by its own clock the lease is over. The next request,
// through the real AWS SDK or an HTTP client, is not sent.
func TestAPausedReplicaSendsNoRequestPastItsLease(t *testing.T) {
	t.Parallel()
	f := testkit.Sandbox(t, testkit.Seed(t, "accounts:\n  - id: \"111122223333\"\n    users:\n      - "+sandbox.ResponderSeedUser+"\n"))
	cfg := f.AWSConfig()
	cfg.APIOptions = append(cfg.APIOptions, apicall.AWS(func() string { return "111122223333" }))
	client := iam.NewFromConfig(cfg)
	web := apicall.Client("github", nil)

	term := newTerm(1, time.Now().Add(time.Hour))
	t.Cleanup(term.lapse)
	ctx := withFence(context.Background(), fence{run: "run_paused", term: term})
	ctx = apicall.WithGate(ctx, leaseGate(ctx))

	// While the lease holds, requests leave.
	_, err := client.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(sandbox.ResponderUser)})
	require.NoError(t, err)
	require.Equal(t, 1, f.Sandbox.Count("ListAccessKeys"))

	// The pause: the clock passed the lease's end, its timer is yet to run.
	term.mu.Lock()
	term.until = time.Now().Add(-time.Second)
	term.mu.Unlock()

	_, err = client.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{AccessKeyId: aws.String(sandbox.ResponderKeyID), Status: "Inactive", UserName: aws.String(sandbox.ResponderUser)})
	require.ErrorIs(t, err, apicall.ErrGateClosed)
	require.ErrorIs(t, err, errLeaseLost)
	require.Zero(t, f.Sandbox.Count("UpdateAccessKey"), "no request reached AWS")

	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, f.GitHubAPI()+"repos/acme/app/secret-scanning/alerts/1", nil)
	require.NoError(t, err)
	_, err = web.Do(req)
	require.True(t, errors.Is(err, apicall.ErrGateClosed), "%v", err)
	for _, c := range f.Sandbox.Calls() {
		require.NotEqual(t, "github", c.Service, "no request reached GitHub: %+v", c)
	}
	select {
	case <-term.lapsed:
	default:
		t.Fatal("the gate ends the term it found over")
	}
}
