package sandbox

import (
	"net/http"
	"strings"
	"time"
)

// Slack's auth.test and auth.revoke for a leaked token (SeedToken with
// provider slack), under /slack/api/ like the rest of the Web API. The
// token comes from the form's token field, as slack-go sends it, or from
// Authorization: Bearer. A revoked token answers token_revoked, an expired
// one token_expired; both are HTTP 200 with ok false, as Slack answers.

// answerSlackToken runs a Web API method called with a seeded token;
// s.mu is held.
func (st *tokenState) answerSlackToken(w http.ResponseWriter, c *slackCall, t *token) slackReply {
	now := time.Now()
	switch {
	case !t.active:
		return slackErr("token_revoked")
	case !t.usable(now):
		return slackErr("token_expired")
	}
	switch c.method {
	case "auth.test":
		w.Header().Set("X-OAuth-Scopes", strings.Join(t.Scopes, ","))
		body := map[string]any{"url": "https://" + strings.ToLower(t.TeamID) + ".slack.com/", "team": t.TeamID, "user": t.Owner,
			"team_id": t.TeamID, "user_id": t.UserID, "is_enterprise_install": false}
		if strings.HasPrefix(t.Value, "xoxb-") {
			body["bot_id"] = "B" + strings.TrimPrefix(t.UserID, "U")
		}
		return slackOK(body)
	case "auth.revoke":
		if c.flag("test") {
			return slackOK(map[string]any{"revoked": false})
		}
		t.revoke(now, "auth.revoke")
		rep := slackOK(map[string]any{"revoked": true})
		rep.changed = true
		return rep
	default:
		// The sandbox serves leaked tokens only what stanch calls with them.
		return slackErr("not_allowed_token_type")
	}
}
