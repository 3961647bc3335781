package slack_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
	"github.com/stanchhq/stanch/slack"
)

const usersSeed = `
accounts:
  - id: "111122223333"
    users: [` + sandbox.ResponderSeedUser + `]
slack:
  token: xoxb-sandbox-users
  users:
    - {id: U0ALICE, name: alice, real_name: Alice Smith, display_name: Alice S.}
    - {id: U0BOB, name: bob, real_name: Bob Jones}
    - {id: W0CAROL, name: carol}
`

// usersClient returns a client of a sandbox workspace of three people and a
// clock the test moves.
func usersClient(t *testing.T) (*slack.Client, *testkit.Fixture, *atomic.Int64) {
	t.Helper()
	sb := testkit.Sandbox(t, testkit.Seed(t, usersSeed))
	c := slack.NewClient(slack.Options{Token: "xoxb-sandbox-users", APIURL: sb.SlackAPI()})
	var offset atomic.Int64
	slack.SetUserClock(c, func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	return c, sb, &offset
}

// The name people see in Slack: the display name, else the real name,
// else the handle.
func TestUserNameAsSlackShowsIt(t *testing.T) {
	t.Parallel()
	c, _, _ := usersClient(t)
	ctx := context.Background()
	for id, want := range map[string]string{"U0ALICE": "Alice S.", "U0BOB": "Bob Jones", "W0CAROL": "carol"} {
		name, err := c.UserName(ctx, id)
		require.NoError(t, err, id)
		require.Equal(t, want, name, id)
	}
}

// A name is asked once an hour, however many ask for it, even at once.
func TestUserNameCached(t *testing.T) {
	t.Parallel()
	c, sb, clock := usersClient(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			name, err := c.UserName(ctx, "U0ALICE")
			require.NoError(t, err)
			require.Equal(t, "Alice S.", name)
		})
	}
	wg.Wait()
	require.Equal(t, 1, sb.Count("users.info"), "twenty callers, one users.info")

	clock.Store(int64(59 * time.Minute))
	_, err := c.UserName(ctx, "U0ALICE")
	require.NoError(t, err)
	require.Equal(t, 1, sb.Count("users.info"))
	clock.Store(int64(61 * time.Minute))
	_, err = c.UserName(ctx, "U0ALICE")
	require.NoError(t, err)
	require.Equal(t, 2, sb.Count("users.info"), "an hour later the name is asked again")
}

// A failed lookup is an error for its caller and is remembered for a short
// while: during an outage each click does not wait for Slack again.
func TestUserNameFailureRememberedBriefly(t *testing.T) {
	t.Parallel()
	c, sb, clock := usersClient(t)
	ctx := context.Background()

	_, err := c.UserName(ctx, "U0NOBODY")
	require.ErrorContains(t, err, "user_not_found")
	_, err = c.UserName(ctx, "U0NOBODY")
	require.ErrorContains(t, err, "user_not_found")
	require.Equal(t, 1, sb.Count("users.info"))

	// Rate limited for longer than the client waits in place: it fails at
	// once, and the failure is kept.
	sb.SlackRateLimit("users.info", 1, time.Hour)
	start := time.Now()
	_, err = c.UserName(ctx, "U0BOB")
	var rl *slack.RateLimited
	require.True(t, errors.As(err, &rl), "%v", err)
	require.Less(t, time.Since(start), 30*time.Second, "it did not wait out the hour")
	_, err = c.UserName(ctx, "U0BOB")
	require.True(t, errors.As(err, &rl), "%v", err)
	require.Equal(t, 2, sb.Count("users.info"))

	clock.Store(int64(31 * time.Second))
	name, err := c.UserName(ctx, "U0BOB")
	require.NoError(t, err, "half a minute later Slack is asked again")
	require.Equal(t, "Bob Jones", name)
	require.Equal(t, 3, sb.Count("users.info"))
}

// A caller's deadline ends its wait even when Slack does not answer; the
// lookup's failure is then remembered like any other.
func TestUserNameHonoursDeadline(t *testing.T) {
	t.Parallel()
	c, sb, _ := usersClient(t)
	sb.SetFault("slack", sandbox.Fault{Latency: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.UserName(ctx, "U0ALICE")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 30*time.Second, "it did not wait for the minute Slack takes")
}

func TestUserNameRefusesWhatIsNotAUser(t *testing.T) {
	t.Parallel()
	c, sb, _ := usersClient(t)
	_, err := c.UserName(context.Background(), "S0SECURITY")
	require.ErrorContains(t, err, "not a user id")
	require.Zero(t, sb.Count("users.info"))
	_, err = slack.NewClient(slack.Options{}).UserName(context.Background(), "U0ALICE")
	require.ErrorIs(t, err, slack.ErrNotConfigured)
}
