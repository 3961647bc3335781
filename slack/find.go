package slack

import (
	"context"
	"fmt"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"
)

// ChannelID returns the id of a channel given by id (C…, G…) or name
// (#name or name): posting takes either, reading history only an id.
func (c *Client) ChannelID(ctx context.Context, channel string) (string, error) {
	if IsChannelID(channel) {
		return channel, nil
	}
	name := strings.TrimPrefix(channel, "#")
	c.mu.Lock()
	id, ok := c.channels[name]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	cursor := ""
	for {
		var chans []slackapi.Channel
		var next string
		err := c.call(ctx, "conversations.list", func() error {
			var err error
			chans, next, err = c.api.GetConversationsContext(ctx, &slackapi.GetConversationsParameters{
				Cursor: cursor, ExcludeArchived: true, Limit: 1000, Types: []string{"public_channel", "private_channel"}})
			return err
		})
		if err != nil {
			return "", err
		}
		c.mu.Lock()
		for _, ch := range chans {
			c.channels[ch.Name] = ch.ID
		}
		id, ok = c.channels[name]
		c.mu.Unlock()
		if ok {
			return id, nil
		}
		if next == "" {
			return "", fmt.Errorf("slack: no channel named %q that the bot can see", channel)
		}
		cursor = next
	}
}

// Find looks for the message of run and key that an earlier attempt may
// have posted to channel (in the thread of threadTS, if given) since
// since. It returns the channel id and ts, or empty strings.
func (c *Client) Find(ctx context.Context, channel, threadTS, runID, key string, since time.Time) (string, string, error) {
	oldest := ""
	if !since.IsZero() {
		// A minute of slack for clocks that disagree.
		oldest = fmt.Sprintf("%d.000000", since.Add(-time.Minute).Unix())
	}
	channel, err := c.ChannelID(ctx, channel)
	if err != nil {
		return "", "", err
	}
	match := func(ms []slackapi.Message) string {
		for _, m := range ms {
			md := m.Metadata
			if md.EventType == MetadataType && md.EventPayload["run_id"] == runID && md.EventPayload["key"] == key {
				return m.Timestamp
			}
		}
		return ""
	}
	cursor := ""
	for {
		var found, next, channelID string
		err := c.call(ctx, "conversations.history", func() error {
			if threadTS != "" {
				msgs, _, nc, err := c.api.GetConversationRepliesContext(ctx, &slackapi.GetConversationRepliesParameters{
					ChannelID: channel, Timestamp: threadTS, Cursor: cursor, Oldest: oldest, Limit: 200, IncludeAllMetadata: true})
				if err != nil {
					return err
				}
				found, next, channelID = match(msgs), nc, channel
				return nil
			}
			resp, err := c.api.GetConversationHistoryContext(ctx, &slackapi.GetConversationHistoryParameters{
				ChannelID: channel, Cursor: cursor, Oldest: oldest, Limit: 200, IncludeAllMetadata: true})
			if err != nil {
				return err
			}
			found, next, channelID = match(resp.Messages), resp.ResponseMetaData.NextCursor, channel
			return nil
		})
		if err != nil {
			return "", "", err
		}
		if found != "" {
			return channelID, found, nil
		}
		if next == "" {
			return "", "", nil
		}
		cursor = next
	}
}
