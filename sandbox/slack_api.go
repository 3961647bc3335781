package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The Slack Web API's methods, as the sandbox answers them: a call's
// parameters (form or JSON, as slack-go sends them), the answer, and each
// method stanch uses. The workspace they act on is in slack.go.

// slackCall is one Web API call being answered.
type slackCall struct {
	method string
	params url.Values
}

func (c *slackCall) get(name string) string { return c.params.Get(name) }

func (c *slackCall) has(name string) bool { _, ok := c.params[name]; return ok }

func (c *slackCall) flag(name string) bool {
	v := c.get(name)
	return v == "1" || v == "true"
}

// slackReply is an answer: the fields besides ok, or an error code.
type slackReply struct {
	body map[string]any
	err  string
	// changed is true when a method outside slackWrites changed state
	// (auth.revoke revoking a token).
	changed bool
}

func slackOK(body map[string]any) slackReply { return slackReply{body: body} }

func slackErr(code string) slackReply { return slackReply{err: code} }

// slackWrites are the methods that change state when they succeed.
var slackWrites = map[string]bool{"chat.postMessage": true, "chat.update": true, "chat.postEphemeral": true}

func (s *Sandbox) serveSlack(w http.ResponseWriter, r *http.Request) {
	call := &slackCall{method: strings.TrimPrefix(r.URL.Path, slackPrefix)}
	req := &request{service: "slack", action: call.method}
	params, token, perr := readSlackParams(w, r)
	call.params = params
	req.params = slackLogParams(params)
	if s.tokens.lookup(ProviderSlack, token) != nil { // the map is not written after New
		req.token = fingerprintOf(token)
	}

	fault := s.fault("slack")
	s.mu.Lock()
	delay := s.slack.delays[call.method]
	s.mu.Unlock()
	if err := sleepCtx(r.Context(), fault.Latency+delay); err != nil {
		s.mu.Lock()
		s.recordLocked(req, 499, false) // the client went away before the answer
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	if l := s.slack.limits[call.method]; l != nil {
		if l.remaining--; l.remaining <= 0 {
			delete(s.slack.limits, call.method)
		}
		s.recordLocked(req, http.StatusTooManyRequests, false)
		writeSlackRateLimited(w, l.retryAfter)
		return
	}
	if apiErr := fault.inject(); apiErr != nil {
		if apiErr.code == "Throttling" {
			s.recordLocked(req, http.StatusTooManyRequests, false)
			writeSlackRateLimited(w, time.Second)
			return
		}
		s.recordLocked(req, apiErr.status, false)
		writeSlack(w, apiErr.status, slackErr("service_unavailable"))
		return
	}
	var rep slackReply
	switch {
	case perr != "":
		rep = slackErr(perr)
	case s.tokens.lookup(ProviderSlack, token) != nil:
		rep = s.tokens.answerSlackToken(w, call, s.tokens.lookup(ProviderSlack, token))
	case s.slack.token == "" || token != s.slack.token:
		rep = slackErr("invalid_auth")
	default:
		rep = s.slack.answer(call)
	}
	if rep.err != "" {
		s.log.Debug("sandbox call refused", "service", "slack", "action", call.method, "code", rep.err)
	}
	s.recordLocked(req, http.StatusOK, rep.err == "" && (slackWrites[call.method] || rep.changed))
	writeSlack(w, http.StatusOK, rep)
}

// answer runs a Web API method; s.mu is held.
func (st *slackState) answer(c *slackCall) slackReply {
	switch c.method {
	case "auth.test":
		return slackOK(map[string]any{"url": "https://sandbox.slack.com/", "team": "sandbox", "user": slackBotName,
			"team_id": st.team, "user_id": slackBotUser, "bot_id": slackBotID, "is_enterprise_install": false})
	case "chat.postMessage":
		return st.postMessage(c)
	case "chat.update":
		return st.update(c)
	case "chat.postEphemeral":
		return st.postEphemeral(c)
	case "conversations.history":
		return st.history(c)
	case "conversations.replies":
		return st.replies(c)
	case "conversations.list":
		return st.list(c)
	case "usergroups.users.list":
		g, ok := st.groups[c.get("usergroup")]
		if !ok {
			return slackErr("no_such_subteam")
		}
		return slackOK(map[string]any{"users": append([]string{}, g.Users...)})
	case "users.info":
		return st.usersInfo(c)
	default:
		return slackErr("unknown_method")
	}
}

func (st *slackState) postMessage(c *slackCall) slackReply {
	ch := st.channel(c.get("channel"), true)
	if ch == nil {
		return slackErr("channel_not_found")
	}
	blocks, code := slackBlocks(c.get("blocks"))
	if code != "" {
		return slackErr(code)
	}
	if c.get("text") == "" && blocks == nil && c.get("attachments") == "" {
		return slackErr("no_text")
	}
	var metadata json.RawMessage
	if c.get("metadata") != "" {
		if metadata, code = slackMetadata(c.get("metadata")); code != "" {
			return slackErr(code)
		}
	}
	m := &slackMsg{text: c.get("text"), blocks: blocks, metadata: metadata}
	var parent *slackMsg
	if thread := c.get("thread_ts"); thread != "" {
		if parent = ch.byTS[thread]; parent == nil {
			return slackErr("thread_not_found")
		}
		if parent.threadTS != "" { // a reply to a reply joins the same thread
			parent = ch.byTS[parent.threadTS]
		}
		m.threadTS = parent.ts
	}
	m.ts = st.nextTS()
	ch.messages = append(ch.messages, m)
	ch.byTS[m.ts] = m
	if parent != nil {
		parent.replies = append(parent.replies, m)
	}
	return slackOK(map[string]any{"channel": ch.id, "ts": m.ts, "message": st.messageJSON(m, true)})
}

func (st *slackState) update(c *slackCall) slackReply {
	ch := st.channel(c.get("channel"), true)
	if ch == nil {
		return slackErr("channel_not_found")
	}
	m := ch.byTS[c.get("ts")]
	if m == nil {
		return slackErr("message_not_found")
	}
	// Fields left out keep their values; an empty blocks array clears them.
	text, blocks, metadata := m.text, m.blocks, m.metadata
	var code string
	if c.has("blocks") {
		if blocks, code = slackBlocks(c.get("blocks")); code != "" {
			return slackErr(code)
		}
	}
	if c.has("text") {
		text = c.get("text")
	}
	if text == "" && blocks == nil && c.get("attachments") == "" {
		return slackErr("no_text")
	}
	if c.get("metadata") != "" {
		if metadata, code = slackMetadata(c.get("metadata")); code != "" {
			return slackErr(code)
		}
	}
	m.text, m.blocks, m.metadata = text, blocks, metadata
	m.editedTS = formatSlackTS(time.Now().UnixMicro())
	return slackOK(map[string]any{"channel": ch.id, "ts": m.ts, "text": m.text, "message": st.messageJSON(m, true)})
}

func (st *slackState) postEphemeral(c *slackCall) slackReply {
	ch := st.channel(c.get("channel"), true)
	if ch == nil {
		return slackErr("channel_not_found")
	}
	user := c.get("user")
	if _, ok := st.users[user]; !ok {
		return slackErr("user_not_in_channel")
	}
	blocks, code := slackBlocks(c.get("blocks"))
	if code != "" {
		return slackErr(code)
	}
	if c.get("text") == "" && blocks == nil && c.get("attachments") == "" {
		return slackErr("no_text")
	}
	e := SlackEphemeral{Channel: ch.id, User: user, TS: st.nextTS(), ThreadTS: c.get("thread_ts"), Text: c.get("text"), Blocks: blocks}
	st.ephemerals = append(st.ephemerals, e)
	return slackOK(map[string]any{"message_ts": e.TS})
}

// window is the part of a conversation a history or replies call asks for.
type window struct {
	oldest, latest int64
	inclusive      bool
	limit          int
	cursor         int64 // 0: none
}

func (w window) contains(ts int64) bool {
	if w.inclusive {
		return ts >= w.oldest && ts <= w.latest
	}
	return ts > w.oldest && ts < w.latest
}

func readWindow(c *slackCall) (window, string) {
	w := window{latest: math.MaxInt64, inclusive: c.flag("inclusive"), limit: 100}
	var ok bool
	if v := c.get("oldest"); v != "" {
		if w.oldest, ok = parseSlackTS(v); !ok {
			return w, "invalid_ts_oldest"
		}
	}
	if v := c.get("latest"); v != "" {
		if w.latest, ok = parseSlackTS(v); !ok {
			return w, "invalid_ts_latest"
		}
	}
	if v := c.get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return w, "invalid_limit"
		}
		if n > 0 {
			w.limit = min(n, 999)
		}
	}
	if v := c.get("cursor"); v != "" {
		if w.cursor, ok = parseSlackCursor(v); !ok {
			return w, "invalid_cursor"
		}
	}
	return w, ""
}

// history answers top-level messages, newest first, a page at a time.
func (st *slackState) history(c *slackCall) slackReply {
	ch := st.channel(c.get("channel"), false)
	if ch == nil {
		return slackErr("channel_not_found")
	}
	w, code := readWindow(c)
	if code != "" {
		return slackErr(code)
	}
	withMetadata := c.flag("include_all_metadata")
	msgs := []map[string]any{}
	next := int64(0)
	for i := len(ch.messages) - 1; i >= 0; i-- {
		m := ch.messages[i]
		ts, _ := parseSlackTS(m.ts)
		if m.threadTS != "" || !w.contains(ts) || (w.cursor != 0 && ts > w.cursor) {
			continue
		}
		if len(msgs) == w.limit {
			next = ts
			break
		}
		msgs = append(msgs, st.messageJSON(m, withMetadata))
	}
	return slackOK(pageBody(msgs, next))
}

// replies answers a thread, oldest first: the parent, then its replies.
func (st *slackState) replies(c *slackCall) slackReply {
	ch := st.channel(c.get("channel"), false)
	if ch == nil {
		return slackErr("channel_not_found")
	}
	parent := ch.byTS[c.get("ts")]
	if parent == nil {
		return slackErr("thread_not_found")
	}
	if parent.threadTS != "" {
		parent = ch.byTS[parent.threadTS]
	}
	w, code := readWindow(c)
	if code != "" {
		return slackErr(code)
	}
	withMetadata := c.flag("include_all_metadata")
	// The parent always comes first; oldest and latest select replies.
	thread := []*slackMsg{parent}
	for _, m := range parent.replies {
		if ts, _ := parseSlackTS(m.ts); w.contains(ts) {
			thread = append(thread, m)
		}
	}
	msgs := []map[string]any{}
	next := int64(0)
	for _, m := range thread {
		ts, _ := parseSlackTS(m.ts)
		if w.cursor != 0 && ts < w.cursor {
			continue
		}
		if len(msgs) == w.limit {
			next = ts
			break
		}
		msgs = append(msgs, st.messageJSON(m, withMetadata))
	}
	return slackOK(pageBody(msgs, next))
}

func pageBody(msgs []map[string]any, next int64) map[string]any {
	body := map[string]any{"messages": msgs, "has_more": next != 0, "pin_count": 0}
	if next != 0 {
		body["response_metadata"] = map[string]any{"next_cursor": slackCursor(next)}
	}
	return body
}

// list answers conversations.list: the seeded channels, all of which the
// bot is a member of.
func (st *slackState) list(c *slackCall) slackReply {
	limit := 100
	if n, err := strconv.Atoi(c.get("limit")); err == nil && n > 0 {
		limit = min(n, 1000)
	}
	start := 0
	if cur := c.get("cursor"); cur != "" {
		raw, _ := base64.StdEncoding.DecodeString(cur)
		rest, _ := strings.CutPrefix(string(raw), "offset:")
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 || n > len(st.channels) {
			return slackErr("invalid_cursor")
		}
		start = n
	}
	end := min(start+limit, len(st.channels))
	chans := []map[string]any{}
	for _, ch := range st.channels[start:end] {
		chans = append(chans, map[string]any{"id": ch.id, "name": ch.name, "name_normalized": ch.name,
			"is_channel": ch.id[0] == 'C', "is_group": false, "is_im": false, "is_private": ch.id[0] == 'G',
			"is_archived": false, "is_member": true, "created": 1735689600, "context_team_id": st.team})
	}
	next := ""
	if end < len(st.channels) {
		next = base64.StdEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
	}
	return slackOK(map[string]any{"channels": chans, "response_metadata": map[string]any{"next_cursor": next}})
}

// usersInfo answers users.info for user, or for users (a comma-separated
// list, which slack-go's GetUsersInfo sends).
func (st *slackState) usersInfo(c *slackCall) slackReply {
	if list := c.get("users"); list != "" {
		users := []map[string]any{}
		for _, id := range strings.Split(list, ",") {
			u, ok := st.users[strings.TrimSpace(id)]
			if !ok {
				return slackErr("user_not_found")
			}
			users = append(users, st.userJSON(u))
		}
		return slackOK(map[string]any{"users": users})
	}
	u, ok := st.users[c.get("user")]
	if !ok {
		return slackErr("user_not_found")
	}
	return slackOK(map[string]any{"user": st.userJSON(u)})
}

func (st *slackState) userJSON(u SeedSlackUser) map[string]any {
	return map[string]any{"id": u.ID, "team_id": st.team, "name": u.Name, "deleted": false, "real_name": u.RealName,
		"is_bot": false, "is_admin": false, "tz": "Etc/UTC", "tz_offset": 0,
		"profile": map[string]any{"real_name": u.RealName, "real_name_normalized": u.RealName,
			"display_name": u.DisplayName, "display_name_normalized": u.DisplayName, "team": st.team}}
}

// messageJSON is a message as Slack's methods answer it; metadata only
// when asked for (conversations.* without include_all_metadata omit it).
func (st *slackState) messageJSON(m *slackMsg, withMetadata bool) map[string]any {
	out := map[string]any{"type": "message", "user": slackBotUser, "bot_id": slackBotID, "app_id": slackAppID,
		"text": m.text, "ts": m.ts, "team": st.team,
		"bot_profile": map[string]any{"id": slackBotID, "app_id": slackAppID, "name": slackBotName, "team_id": st.team, "deleted": false}}
	if m.blocks != nil {
		out["blocks"] = m.blocks
	}
	if withMetadata && m.metadata != nil {
		out["metadata"] = m.metadata
	}
	if m.editedTS != "" {
		out["edited"] = map[string]any{"user": slackBotUser, "ts": m.editedTS}
	}
	switch {
	case m.threadTS != "":
		out["thread_ts"], out["parent_user_id"] = m.threadTS, slackBotUser
	case len(m.replies) > 0:
		out["thread_ts"] = m.ts
		out["reply_count"] = len(m.replies)
		out["reply_users_count"] = 1
		out["reply_users"] = []string{slackBotUser}
		out["latest_reply"] = m.replies[len(m.replies)-1].ts
	}
	return out
}

// slackBlocks checks a blocks parameter: a JSON array of at most 50 objects
// with a type. An empty parameter or array is no blocks.
func slackBlocks(raw string) (json.RawMessage, string) {
	if strings.TrimSpace(raw) == "" {
		return nil, ""
	}
	var blocks []map[string]any
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return nil, "invalid_blocks_format"
	}
	if len(blocks) == 0 {
		return nil, ""
	}
	if len(blocks) > 50 {
		return nil, "invalid_blocks"
	}
	for _, b := range blocks {
		if t, _ := b["type"].(string); t == "" {
			return nil, "invalid_blocks"
		}
	}
	return compactJSON(raw), ""
}

// slackMetadata checks a metadata parameter: {"event_type": …,
// "event_payload": {…}}.
func slackMetadata(raw string) (json.RawMessage, string) {
	var md struct {
		EventType    string          `json:"event_type"`
		EventPayload json.RawMessage `json:"event_payload"`
	}
	if err := json.Unmarshal([]byte(raw), &md); err != nil || md.EventType == "" {
		return nil, "invalid_metadata_format"
	}
	payload := bytes.TrimSpace(md.EventPayload)
	if len(payload) == 0 || bytes.Equal(payload, []byte("null")) {
		payload = []byte("{}")
	}
	if payload[0] != '{' {
		return nil, "invalid_metadata_format"
	}
	out, _ := json.Marshal(map[string]any{"event_type": md.EventType, "event_payload": json.RawMessage(payload)})
	return compactJSON(string(out)), ""
}

func compactJSON(raw string) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, []byte(raw)) != nil {
		return json.RawMessage(raw)
	}
	return b.Bytes()
}

// readSlackParams reads a call's arguments from the query and a form or
// JSON body, and its token from the form or an Authorization: Bearer
// header. errCode is Slack's error for an unreadable body.
func readSlackParams(w http.ResponseWriter, r *http.Request) (params url.Values, token, errCode string) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<20)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	params = url.Values{}
	switch ct {
	case "application/json":
		for k, v := range r.URL.Query() {
			params[k] = v
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return params, "", "invalid_json"
		}
		if len(bytes.TrimSpace(body)) > 0 {
			var top map[string]json.RawMessage
			if err := json.Unmarshal(body, &top); err != nil {
				return params, "", "invalid_json"
			}
			for k, v := range top {
				var s string
				switch {
				case json.Unmarshal(v, &s) == nil:
					params.Set(k, s)
				case bytes.Equal(v, []byte("null")):
				default: // arrays and objects (blocks, metadata) as their JSON text
					params.Set(k, string(v))
				}
			}
		}
	case "multipart/form-data":
		if err := r.ParseMultipartForm(4 << 20); err != nil {
			return params, "", "invalid_form_data"
		}
		params = r.Form
	default:
		if err := r.ParseForm(); err != nil {
			return params, "", "invalid_form_data"
		}
		params = r.Form
	}
	token = params.Get("token")
	if token == "" {
		token, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	return params, token, ""
}

// slackLogParams is a call's arguments for the call log, without the token.
func slackLogParams(params url.Values) map[string]string {
	out := map[string]string{}
	for k, v := range params {
		if k != "token" {
			out[k] = strings.Join(v, ",")
		}
	}
	return redactParams(out)
}

func writeSlack(w http.ResponseWriter, status int, rep slackReply) {
	body := map[string]any{}
	for k, v := range rep.body {
		body[k] = v
	}
	body["ok"] = rep.err == ""
	if rep.err != "" {
		body["error"] = rep.err
	}
	out, err := json.Marshal(body)
	if err != nil {
		status, out = http.StatusInternalServerError, []byte(`{"ok":false,"error":"internal_error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func writeSlackRateLimited(w http.ResponseWriter, retryAfter time.Duration) {
	secs := int64((retryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeSlack(w, http.StatusTooManyRequests, slackErr("ratelimited"))
}

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
