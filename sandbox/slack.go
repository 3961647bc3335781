package sandbox

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Slack Web API methods stanch calls, under /slack/api/{method}: point
// slack-go at it with slack.OptionAPIURL(sandboxURL + "/slack/api/"). Every
// answer is HTTP 200 with {"ok":true,…} or {"ok":false,"error":code}, as
// Slack answers, except rate limits (429 with Retry-After) and injected
// server errors (503).

// slackPrefix is where the Slack Web API is served.
const slackPrefix = "/slack/api/"

// Identities of the sandbox's own Slack app: the bot that posts messages.
const (
	slackDefaultTeam = "T0SANDBOX"
	slackBotUser     = "U0SANDBOXBOT"
	slackBotID       = "B0SANDBOXBOT"
	slackAppID       = "A0SANDBOXAPP"
	slackBotName     = "stanch"
)

// SeedSlack is the Slack workspace of the sandbox.
type SeedSlack struct {
	// Token is the one bot token accepted (form field token, or
	// Authorization: Bearer).
	Token string `yaml:"token" json:"token"`
	// TeamID is the workspace id (default T0SANDBOX).
	TeamID     string               `yaml:"team_id" json:"team_id"`
	Channels   []SeedSlackChannel   `yaml:"channels" json:"channels"`
	Users      []SeedSlackUser      `yaml:"users" json:"users"`
	UserGroups []SeedSlackUserGroup `yaml:"usergroups" json:"usergroups"`
}

// SeedSlackChannel is a channel the bot is a member of.
type SeedSlackChannel struct {
	ID   string `yaml:"id" json:"id"`     // C… or G…
	Name string `yaml:"name" json:"name"` // without '#'
}

// SeedSlackUser is a person in the workspace.
type SeedSlackUser struct {
	ID          string `yaml:"id" json:"id"` // U… or W…
	Name        string `yaml:"name" json:"name"`
	RealName    string `yaml:"real_name" json:"real_name"`
	DisplayName string `yaml:"display_name" json:"display_name"`
}

// SeedSlackUserGroup is a user group (a "subteam") and its members.
type SeedSlackUserGroup struct {
	ID     string   `yaml:"id" json:"id"` // S…
	Handle string   `yaml:"handle" json:"handle"`
	Users  []string `yaml:"users" json:"users"`
}

func (s *SeedSlack) validate() error {
	if s == nil {
		return nil
	}
	if s.Token == "" {
		return fmt.Errorf("slack: token is empty")
	}
	if s.TeamID != "" && !slackID(s.TeamID, "T") {
		return fmt.Errorf("slack: team_id %q is not T followed by capital letters and digits", s.TeamID)
	}
	ids, names := map[string]bool{}, map[string]bool{}
	for _, c := range s.Channels {
		if !slackID(c.ID, "C") && !slackID(c.ID, "G") {
			return fmt.Errorf("slack: channel id %q is not C… or G… (capital letters and digits)", c.ID)
		}
		if c.Name == "" || strings.HasPrefix(c.Name, "#") || strings.ContainsAny(c.Name, " \t") {
			return fmt.Errorf("slack: channel %s: name %q must be given without '#' or spaces", c.ID, c.Name)
		}
		if ids[c.ID] || names[c.Name] {
			return fmt.Errorf("slack: channel %s (%s) is repeated", c.ID, c.Name)
		}
		ids[c.ID], names[c.Name] = true, true
	}
	users := map[string]bool{}
	for _, u := range s.Users {
		if !slackID(u.ID, "U") && !slackID(u.ID, "W") {
			return fmt.Errorf("slack: user id %q is not U… or W… (capital letters and digits)", u.ID)
		}
		if u.Name == "" || users[u.ID] {
			return fmt.Errorf("slack: user %s: name is empty or the id is repeated", u.ID)
		}
		users[u.ID] = true
	}
	groups := map[string]bool{}
	for _, g := range s.UserGroups {
		if !slackID(g.ID, "S") || groups[g.ID] {
			return fmt.Errorf("slack: usergroup id %q is not a unique S… id", g.ID)
		}
		groups[g.ID] = true
		for _, u := range g.Users {
			if !users[u] {
				return fmt.Errorf("slack: usergroup %s (%s): member %q is not a seeded user", g.ID, g.Handle, u)
			}
		}
	}
	return nil
}

// slackID reports whether id is prefix followed by at least two capital
// letters or digits, the shape of Slack's ids.
func slackID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) < 2 {
		return false
	}
	for _, r := range rest {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// SlackMetadata is the metadata of a message, as chat.postMessage takes it.
type SlackMetadata struct {
	EventType    string         `json:"event_type"`
	EventPayload map[string]any `json:"event_payload"`
}

// SlackMessage is a message the bot posted, top-level or in a thread.
type SlackMessage struct {
	Channel string `json:"channel"` // id
	TS      string `json:"ts"`
	// ThreadTS is the parent's ts for a reply, empty for a top-level message.
	ThreadTS string          `json:"thread_ts,omitempty"`
	Text     string          `json:"text"`
	Blocks   json.RawMessage `json:"blocks,omitempty"`
	Metadata *SlackMetadata  `json:"metadata,omitempty"`
	// User, BotID and AppID say who posted: always the sandbox's bot.
	User  string `json:"user"`
	BotID string `json:"bot_id"`
	AppID string `json:"app_id"`
	// EditedTS is when chat.update last changed the message.
	EditedTS string `json:"edited_ts,omitempty"`
}

// SlackEphemeral is a message shown to one user with chat.postEphemeral.
type SlackEphemeral struct {
	Channel  string          `json:"channel"` // id
	User     string          `json:"user"`    // who sees it
	TS       string          `json:"ts"`
	ThreadTS string          `json:"thread_ts,omitempty"`
	Text     string          `json:"text"`
	Blocks   json.RawMessage `json:"blocks,omitempty"`
}

// SlackView is the Slack part of the sandbox's state.
type SlackView struct {
	Channels   []SlackChannelView `json:"channels"`
	Ephemerals []SlackEphemeral   `json:"ephemerals,omitempty"`
}

// SlackChannelView is a channel and its messages, oldest first.
type SlackChannelView struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Messages []SlackMessage `json:"messages"`
}

type slackState struct {
	token      string
	team       string
	channels   []*slackChannel // seed order
	byID       map[string]*slackChannel
	byName     map[string]*slackChannel
	users      map[string]SeedSlackUser
	groups     map[string]SeedSlackUserGroup
	ephemerals []SlackEphemeral
	// lastTS is the last ts handed out, in microseconds: ts values are
	// unique and increasing, as in one Slack channel.
	lastTS int64
	limits map[string]*slackLimit // by method
	// delays hold a method's answers back (SlackDelay), by method.
	delays map[string]time.Duration
}

type slackChannel struct {
	id, name string
	messages []*slackMsg // every message, oldest first
	byTS     map[string]*slackMsg
}

type slackMsg struct {
	ts, threadTS, text, editedTS string
	blocks, metadata             json.RawMessage
	replies                      []*slackMsg // of a parent, oldest first
}

type slackLimit struct {
	remaining  int
	retryAfter time.Duration
}

func newSlackState(seed *SeedSlack) *slackState {
	st := &slackState{team: slackDefaultTeam, byID: map[string]*slackChannel{}, byName: map[string]*slackChannel{},
		users: map[string]SeedSlackUser{}, groups: map[string]SeedSlackUserGroup{}, limits: map[string]*slackLimit{},
		delays: map[string]time.Duration{}}
	if seed == nil {
		return st
	}
	st.token = seed.Token
	if seed.TeamID != "" {
		st.team = seed.TeamID
	}
	for _, c := range seed.Channels {
		ch := &slackChannel{id: c.ID, name: c.Name, byTS: map[string]*slackMsg{}}
		st.channels = append(st.channels, ch)
		st.byID[ch.id], st.byName[ch.name] = ch, ch
	}
	for _, u := range seed.Users {
		st.users[u.ID] = u
	}
	for _, g := range seed.UserGroups {
		g.Users = slices.Clone(g.Users)
		st.groups[g.ID] = g
	}
	return st
}

// SlackRateLimit makes the next times calls of a Slack method (such as
// "chat.postMessage") answer HTTP 429 with Retry-After, in whole seconds
// rounded up; times <= 0 clears it.
func (s *Sandbox) SlackRateLimit(method string, times int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if times <= 0 {
		delete(s.slack.limits, method)
		return
	}
	s.slack.limits[method] = &slackLimit{remaining: times, retryAfter: max(retryAfter, 0)}
}

// SlackDelay makes every call of a Slack method (such as "users.info")
// wait d before it is answered, as a slow Slack does, while the other
// methods answer at once; d <= 0 clears it. A caller that gives up first
// is logged with status 499. Fault latency (SetFault "slack") slows every
// method instead.
func (s *Sandbox) SlackDelay(method string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.slack.delays, method)
		return
	}
	s.slack.delays[method] = d
}

// SlackMessages returns the messages of a channel (by id, or by name with
// or without '#'), top-level ones and replies, oldest first.
func (s *Sandbox) SlackMessages(channel string) []SlackMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.slack.channel(channel, true)
	if ch == nil {
		return nil
	}
	out := make([]SlackMessage, 0, len(ch.messages))
	for _, m := range ch.messages {
		out = append(out, m.export(ch.id))
	}
	return out
}

// SlackEphemerals returns the ephemeral messages posted, oldest first.
func (s *Sandbox) SlackEphemerals() []SlackEphemeral {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SlackEphemeral, 0, len(s.slack.ephemerals))
	for _, e := range s.slack.ephemerals {
		e.Blocks = bytes.Clone(e.Blocks)
		out = append(out, e)
	}
	return out
}

// viewLocked is the Slack part of State; nil for a sandbox without Slack.
func (st *slackState) viewLocked() *SlackView {
	if st.token == "" {
		return nil
	}
	v := &SlackView{Channels: []SlackChannelView{}}
	for _, ch := range st.channels {
		cv := SlackChannelView{ID: ch.id, Name: ch.name, Messages: []SlackMessage{}}
		for _, m := range ch.messages {
			cv.Messages = append(cv.Messages, m.export(ch.id))
		}
		v.Channels = append(v.Channels, cv)
	}
	for _, e := range st.ephemerals {
		e.Blocks = bytes.Clone(e.Blocks)
		v.Ephemerals = append(v.Ephemerals, e)
	}
	return v
}

func (m *slackMsg) export(channel string) SlackMessage {
	out := SlackMessage{Channel: channel, TS: m.ts, ThreadTS: m.threadTS, Text: m.text, Blocks: bytes.Clone(m.blocks),
		User: slackBotUser, BotID: slackBotID, AppID: slackAppID, EditedTS: m.editedTS}
	if m.metadata != nil {
		out.Metadata = &SlackMetadata{}
		_ = json.Unmarshal(m.metadata, out.Metadata)
	}
	return out
}

// channel finds a channel by id or, when byName, by name with or without
// '#'. Slack's chat methods take names; conversations.* only ids.
func (st *slackState) channel(ref string, byName bool) *slackChannel {
	if ch, ok := st.byID[ref]; ok {
		return ch
	}
	if !byName {
		return nil
	}
	return st.byName[strings.TrimPrefix(ref, "#")]
}

// nextTS returns a new ts: the current time, or just after the last one.
func (st *slackState) nextTS() string {
	now := time.Now().UnixMicro()
	if now <= st.lastTS {
		now = st.lastTS + 1
	}
	st.lastTS = now
	return formatSlackTS(now)
}

func formatSlackTS(micros int64) string {
	return fmt.Sprintf("%d.%06d", micros/1e6, micros%1e6)
}

// parseSlackTS reads "1732838400.000100" (or "1732838400") into microseconds.
func parseSlackTS(ts string) (int64, bool) {
	sec, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s < 0 || len(frac) > 6 {
		return 0, false
	}
	var f int64
	if frac != "" {
		if f, err = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64); err != nil || f < 0 {
			return 0, false
		}
	}
	return s*1e6 + f, true
}

// slackCursor is Slack's opaque cursor: base64 of "next_ts:<ts digits>".
func slackCursor(micros int64) string {
	return base64.StdEncoding.EncodeToString([]byte("next_ts:" + strconv.FormatInt(micros, 10)))
}

func parseSlackCursor(c string) (int64, bool) {
	raw, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(raw), "next_ts:")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil
}
