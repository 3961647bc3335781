package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"
)

// Approvals are recorded with the approver's display name beside their id
// (an auditor reads "Alice Smith", not U0123ABC), found with users.info.
// Names are cached: the same people click again and again, and each click
// must stay within the few seconds Slack gives an app to answer.
const (
	// userTTL bounds how stale a recorded name may be after someone
	// renames themselves.
	userTTL = time.Hour
	// userFailTTL is how long a failed lookup is remembered, so that while
	// Slack is down or slow each click does not wait for users.info again,
	// yet a name is found again soon after it is back.
	userFailTTL = 30 * time.Second
	// userCacheSize bounds the memory the cache may hold: far more than
	// the people who approve in one workspace.
	userCacheSize = 4096
)

// UserName returns the name Slack shows for a user: their display name,
// else their real name, else their handle. Answers, failures included, are
// cached (see userTTL, userFailTTL) and concurrent calls for the same user
// share one users.info call. It needs the users:read scope.
func (c *Client) UserName(ctx context.Context, id string) (string, error) {
	if !c.Configured() {
		return "", ErrNotConfigured
	}
	if !IsUserID(id) {
		return "", fmt.Errorf("look up Slack user %q: not a user id (U… or W…)", id)
	}
	e, lead := c.users.claim(id)
	if lead {
		// This call looks the user up for everyone who asks meanwhile.
		name, err := c.lookupUser(ctx, id)
		c.users.settle(e, name, err)
	}
	select {
	case <-e.done:
		return e.name, e.err
	case <-ctx.Done():
		return "", fmt.Errorf("look up Slack user %s: %w", id, ctx.Err())
	}
}

// lookupUser calls users.info.
func (c *Client) lookupUser(ctx context.Context, id string) (string, error) {
	var u *slackapi.User
	err := c.call(ctx, "users.info", func() error {
		var err error
		u, err = c.api.GetUserInfoContext(ctx, id)
		return err
	})
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) && se.Err == "missing_scope" {
		return "", fmt.Errorf("look up Slack user %s: %w (add the users:read scope to the bot token to record approvers' names)", id, err)
	}
	if err != nil {
		return "", fmt.Errorf("look up Slack user %s: %w", id, err)
	}
	return displayName(u), nil
}

// displayName is the name Slack shows for u.
func displayName(u *slackapi.User) string {
	for _, name := range []string{u.Profile.DisplayName, u.Profile.RealName, u.RealName, u.Name} {
		if name = strings.TrimSpace(name); name != "" {
			return name
		}
	}
	return ""
}

// userCache holds users.info answers by user id. The zero value is ready
// to use.
type userCache struct {
	mu      sync.Mutex
	entries map[string]*userEntry
	// now is the clock, replaced by tests.
	now func() time.Time
}

// userEntry is one user's answer; done is closed once it is settled, after
// which name and err do not change.
type userEntry struct {
	done    chan struct{}
	name    string
	err     error
	settled bool      // under userCache.mu
	expires time.Time // under userCache.mu, once settled
}

func (uc *userCache) clock() time.Time {
	if uc.now != nil {
		return uc.now()
	}
	return time.Now()
}

// claim returns the entry of id. lead is true when the caller must look
// the user up and settle it: there was none, or it expired.
func (uc *userCache) claim(id string) (e *userEntry, lead bool) {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	now := uc.clock()
	if e, ok := uc.entries[id]; ok && (!e.settled || now.Before(e.expires)) {
		return e, false
	}
	if uc.entries == nil {
		uc.entries = map[string]*userEntry{}
	}
	uc.makeRoom(now)
	e = &userEntry{done: make(chan struct{})}
	uc.entries[id] = e
	return e, true
}

// settle records the answer of a lookup and releases whoever waits for it.
func (uc *userCache) settle(e *userEntry, name string, err error) {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	e.name, e.err, e.settled = name, err, true
	ttl := userTTL
	if err != nil {
		ttl = userFailTTL
	}
	e.expires = uc.clock().Add(ttl)
	close(e.done)
}

// makeRoom keeps the cache within userCacheSize before an entry is added:
// expired entries go first, then the one closest to expiring. Lookups in
// flight stay, so the cache may briefly exceed the bound by those.
func (uc *userCache) makeRoom(now time.Time) {
	if len(uc.entries) < userCacheSize {
		return
	}
	var oldest string
	for id, e := range uc.entries {
		if !e.settled {
			continue
		}
		if !now.Before(e.expires) {
			delete(uc.entries, id)
			continue
		}
		if oldest == "" || e.expires.Before(uc.entries[oldest].expires) {
			oldest = id
		}
	}
	if len(uc.entries) >= userCacheSize && oldest != "" {
		delete(uc.entries, oldest)
	}
}
