package slack

import "time"

// Redacted lets the external tests check what the client sends.
var Redacted = redacted

// SetUserClock replaces the clock of c's cache of user names.
func SetUserClock(c *Client, now func() time.Time) {
	c.users.mu.Lock()
	defer c.users.mu.Unlock()
	c.users.now = now
}
