package sandbox

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Button clicks as Slack delivers them to an app's Interactivity Request
// URL: a signed form POST whose one field, payload, holds a block_actions
// interaction. Tests and the demo use them to press stanch's approval
// buttons without Slack.

// SignSlack signs a request body the way Slack does (signature version v0):
// the hex HMAC-SHA256, keyed with the app's signing secret, of
// "v0:<unix seconds>:<body>". It returns the values of the
// X-Slack-Request-Timestamp and X-Slack-Signature headers.
func SignSlack(signingSecret string, ts time.Time, body []byte) (timestampHeader, signatureHeader string) {
	timestampHeader = strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(signingSecret))
	mac.Write([]byte("v0:" + timestampHeader + ":"))
	mac.Write(body)
	return timestampHeader, "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// SlackClick is a click on a button of a message the bot posted.
type SlackClick struct {
	// URL is the app's Interactivity Request URL, where the click is sent.
	URL           string
	SigningSecret string
	// User is the id (U…) of who clicked; UserName defaults to it.
	User     string
	UserName string
	// Channel is the id of the message's channel; ChannelName is optional.
	Channel     string
	ChannelName string
	// MessageTS is the ts of the message whose button was clicked.
	MessageTS string
	ActionID  string
	BlockID   string
	Value     string
	// ButtonText is the button's label (default: ActionID).
	ButtonText string
	// At is when the click happened and is signed (zero: now).
	At time.Time
	// TeamID and AppID default to the sandbox's workspace and app.
	TeamID string
	AppID  string
}

// Request returns the signed POST of the click.
func (c SlackClick) Request(ctx context.Context) (*http.Request, error) {
	switch {
	case c.URL == "":
		return nil, errors.New("slack click: no URL")
	case c.SigningSecret == "":
		return nil, errors.New("slack click: no signing secret")
	case c.User == "" || c.ActionID == "":
		return nil, errors.New("slack click: the user and the action id are required")
	}
	at := c.At
	if at.IsZero() {
		at = time.Now()
	}
	payload, err := json.Marshal(c.payload(at))
	if err != nil {
		return nil, fmt.Errorf("slack click: %w", err)
	}
	body := []byte(url.Values{"payload": {string(payload)}}.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("slack click: %w", err)
	}
	ts, sig := SignSlack(c.SigningSecret, at, body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sig)
	return req, nil
}

// Send posts the click with client (nil: http.DefaultClient). The caller
// closes the response's body.
func (c SlackClick) Send(ctx context.Context, client *http.Client) (*http.Response, error) {
	req, err := c.Request(ctx)
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("slack click: %w", err)
	}
	return resp, nil
}

// payload is the block_actions interaction, with the fields Slack sends.
func (c SlackClick) payload(at time.Time) map[string]any {
	team, app := c.TeamID, c.AppID
	if team == "" {
		team = slackDefaultTeam
	}
	if app == "" {
		app = slackAppID
	}
	userName := c.UserName
	if userName == "" {
		userName = c.User
	}
	label := c.ButtonText
	if label == "" {
		label = c.ActionID
	}
	actionTS := formatSlackTS(at.UnixMicro())
	return map[string]any{
		"type":                  "block_actions",
		"team":                  map[string]any{"id": team, "domain": "sandbox"},
		"user":                  map[string]any{"id": c.User, "username": userName, "name": userName, "team_id": team},
		"api_app_id":            app,
		"token":                 "sandboxVerificationToken",
		"container":             map[string]any{"type": "message", "message_ts": c.MessageTS, "channel_id": c.Channel, "is_ephemeral": false},
		"trigger_id":            fmt.Sprintf("%d.%d.%s", randDigits(13), randDigits(13), randHex(16)),
		"channel":               map[string]any{"id": c.Channel, "name": c.ChannelName},
		"message":               map[string]any{"type": "message", "ts": c.MessageTS, "user": slackBotUser, "bot_id": slackBotID, "app_id": app, "team": team},
		"state":                 map[string]any{"values": map[string]any{}},
		"response_url":          fmt.Sprintf("https://hooks.slack.com/actions/%s/%d/%s", team, randDigits(13), randHex(12)),
		"is_enterprise_install": false,
		"enterprise":            nil,
		"actions": []map[string]any{{
			"type": "button", "action_id": c.ActionID, "block_id": c.BlockID, "value": c.Value, "action_ts": actionTS,
			"text": map[string]any{"type": "plain_text", "text": label, "emoji": true},
		}},
	}
}

// randDigits returns a random number of n digits.
func randDigits(n int) int64 {
	lo := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n-1)), nil)
	v, _ := rand.Int(rand.Reader, new(big.Int).Mul(lo, big.NewInt(9)))
	return v.Add(v, lo).Int64()
}

// randHex returns n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ButtonValue returns the value of the message's button with actionID, or
// "": what a click on it would send.
func (m SlackMessage) ButtonValue(actionID string) string {
	var blocks []struct {
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	_ = json.Unmarshal(m.Blocks, &blocks)
	for _, b := range blocks {
		for _, e := range b.Elements {
			if e.ActionID == actionID {
				return e.Value
			}
		}
	}
	return ""
}
