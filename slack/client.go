package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/apicall"
)

// Options configure the Slack client.
type Options struct {
	// Token is a bot token (xoxb-…) with chat:write, channels:history
	// (groups:history for private channels), usergroups:read and
	// users:read (approvers' names, see UserName).
	Token string
	// APIURL is the Web API base, ending in "/"; empty means Slack's own.
	// The sandbox serves one at <sandbox>/slack/api/.
	APIURL     string
	HTTPClient *http.Client
	// MaxRetryAfter is the longest Retry-After a call waits out in place
	// (default 30 s); a longer one is returned as a *RateLimited error.
	MaxRetryAfter time.Duration
}

// Client posts and updates stanch's Slack messages through slack-go. The
// zero value is not usable; a Client without a token refuses every call
// with an error that says how to configure one.
type Client struct {
	api  *slackapi.Client
	opts Options

	mu       sync.Mutex
	groups   map[string]cachedGroup
	channels map[string]string // name → id

	users userCache // display names, see UserName
}

type cachedGroup struct {
	members []string
	at      time.Time
}

// groupTTL bounds how stale a user group's membership may be when deciding
// who may approve.
const groupTTL = time.Minute

// NewClient returns a client; without a token it is unconfigured.
func NewClient(opts Options) *Client {
	c := &Client{opts: opts, groups: map[string]cachedGroup{}, channels: map[string]string{}}
	if c.opts.MaxRetryAfter == 0 {
		c.opts.MaxRetryAfter = 30 * time.Second
	}
	if opts.Token == "" {
		return c
	}
	var o []slackapi.Option
	if opts.APIURL != "" {
		u := opts.APIURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		o = append(o, slackapi.OptionAPIURL(u))
	}
	// Calls made for a step (slack.notify) are recorded in its run's
	// record (apicall); the notifier's own calls carry no recorder.
	o = append(o, slackapi.OptionHTTPClient(apicall.Client("slack", opts.HTTPClient)))
	c.api = slackapi.New(opts.Token, o...)
	return c
}

// ErrNotConfigured is returned by every call of a client without a token.
var ErrNotConfigured = errors.New("slack is not configured: set STANCH_SLACK_TOKEN to a bot token")

// Configured reports whether the client has a token.
func (c *Client) Configured() bool { return c != nil && c.api != nil }

// RateLimited is a 429 whose Retry-After was longer than the client waits
// in place.
type RateLimited struct {
	Method string
	After  time.Duration
}

func (e *RateLimited) Error() string {
	return fmt.Sprintf("slack %s: rate limited, retry after %s", e.Method, e.After)
}

// RetryAfter tells the runner how long to wait before trying again.
func (e *RateLimited) RetryAfter() time.Duration { return e.After }

// call runs fn, waiting out Slack's 429 Retry-After in place up to three
// times when it is short.
func (c *Client) call(ctx context.Context, method string, fn func() error) error {
	if !c.Configured() {
		return ErrNotConfigured
	}
	for tries := 0; ; tries++ {
		err := fn()
		var rl *slackapi.RateLimitedError
		if !errors.As(err, &rl) {
			if err != nil {
				return fmt.Errorf("slack %s: %w", method, err)
			}
			return nil
		}
		wait := max(rl.RetryAfter, time.Second)
		if wait > c.opts.MaxRetryAfter || tries == 3 {
			return &RateLimited{Method: method, After: wait}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("slack %s: %w", method, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// Message is what stanch posts: fallback text, blocks, and where.
type Message struct {
	Channel  string
	ThreadTS string
	Text     string
	Blocks   []slackapi.Block
}

// Post posts m carrying runID and key in its metadata (see MetadataType),
// and returns the channel id and timestamp. It posts each time it is
// called: PostOnce is what posts a message once.
func (c *Client) Post(ctx context.Context, runID, key string, m Message) (channel, ts string, err error) {
	m = redacted(m)
	opts := []slackapi.MsgOption{
		slackapi.MsgOptionText(m.Text, false),
		slackapi.MsgOptionBlocks(m.Blocks...),
		slackapi.MsgOptionMetadata(slackapi.SlackMetadata{EventType: MetadataType, EventPayload: map[string]any{"run_id": runID, "key": key}}),
	}
	if m.ThreadTS != "" {
		opts = append(opts, slackapi.MsgOptionTS(m.ThreadTS))
	}
	err = c.call(ctx, "chat.postMessage", func() error {
		channel, ts, err = c.api.PostMessageContext(ctx, m.Channel, opts...)
		return err
	})
	return channel, ts, err
}

// Update replaces the text and blocks of a posted message.
func (c *Client) Update(ctx context.Context, channel, ts string, m Message) error {
	m = redacted(m)
	return c.call(ctx, "chat.update", func() error {
		_, _, _, err := c.api.UpdateMessageContext(ctx, channel, ts, slackapi.MsgOptionText(m.Text, false), slackapi.MsgOptionBlocks(m.Blocks...))
		return err
	})
}

// Ephemeral shows text to one user in a channel.
func (c *Client) Ephemeral(ctx context.Context, channel, user, text string) error {
	text = alert.RedactText(text)
	return c.call(ctx, "chat.postEphemeral", func() error {
		_, err := c.api.PostEphemeralContext(ctx, channel, user, slackapi.MsgOptionText(text, false))
		return err
	})
}

// GroupMembers returns the user ids of a user group, cached for a minute.
func (c *Client) GroupMembers(ctx context.Context, group string) ([]string, error) {
	c.mu.Lock()
	cached, ok := c.groups[group]
	c.mu.Unlock()
	if ok && time.Since(cached.at) < groupTTL {
		return cached.members, nil
	}
	var members []string
	err := c.call(ctx, "usergroups.users.list", func() error {
		var err error
		members, err = c.api.GetUserGroupMembersContext(ctx, group)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.groups[group] = cachedGroup{members: members, at: time.Now()}
	c.mu.Unlock()
	return members, nil
}
