// Package notify keeps the Slack messages of runs in step with the runs:
// the incident message a slack.notify step posted (updated as steps finish,
// with each step's detail in its thread) and the approval requests with
// their buttons (replaced by the decision once someone decides).
package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/stanchhq/stanch/actions"
	slackact "github.com/stanchhq/stanch/actions/slack"
	"github.com/stanchhq/stanch/internal/crashpoint"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
)

// Slack is the runner's Notifier for Slack.
type Slack struct {
	client *slackact.Client
	tokens *slackact.Tokens
	log    *slog.Logger
	// runs reports runs and records messages; set by Attach, because the
	// runner is built with the notifier in its configuration.
	runs *runner.Runner

	mu    sync.Mutex
	locks map[string]*runLock
}

type runLock struct {
	sync.Mutex
	users int
}

// NewSlack returns a notifier posting through client, signing approval
// buttons with tokens.
func NewSlack(client *slackact.Client, tokens *slackact.Tokens, log *slog.Logger) *Slack {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Slack{client: client, tokens: tokens, log: log, locks: map[string]*runLock{}}
}

// Attach gives the notifier the runner whose runs it shows.
func (s *Slack) Attach(r *runner.Runner) { s.runs = r }

// Wants is true for playbooks that post an incident message or ask for
// approval in Slack.
func (s *Slack) Wants(pb *playbooks.Playbook) bool {
	for _, st := range pb.Steps {
		if st.Action == "slack.notify" || (st.Approval != nil && st.Approval.Channel != "") {
			return true
		}
	}
	return false
}

// lock serialises syncs of one run in this process, so an older rendering
// never lands after a newer one.
func (s *Slack) lock(runID string) func() {
	s.mu.Lock()
	l := s.locks[runID]
	if l == nil {
		l = &runLock{}
		s.locks[runID] = l
	}
	l.users++
	s.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		s.mu.Lock()
		if l.users--; l.users == 0 {
			delete(s.locks, runID)
		}
		s.mu.Unlock()
	}
}

// Sync brings every Slack message of a run up to date: posts what is
// missing (once, even across crashes) and updates what changed.
func (s *Slack) Sync(ctx context.Context, runID string) error {
	if s.runs == nil {
		return errors.New("notify: no runner attached")
	}
	if !s.client.Configured() {
		return nil // nothing can be shown; stanch approve still works
	}
	defer s.lock(runID)()
	rep, err := s.runs.Report(ctx, runID)
	if err != nil {
		return err
	}
	var errs []error
	var incident *runner.Message // the first incident message: threads hang off it
	for _, st := range rep.Steps {
		if st.Action != "slack.notify" || st.Status != runner.StepSucceeded {
			continue
		}
		channel, _ := st.Outputs["channel"].(string)
		ts, _ := st.Outputs["ts"].(string)
		if channel == "" || ts == "" {
			continue
		}
		title, _ := st.Outputs["title"].(string)
		m := slackact.Incident(rep, title)
		m.Channel = channel
		rec := runner.Message{Key: slackact.NotifyKey(st.ID), Channel: channel, TS: ts}
		if err := s.update(ctx, runID, rec, m); err != nil {
			errs = append(errs, err)
		}
		if incident == nil {
			incident = &rec
		}
	}
	if incident != nil {
		for _, st := range rep.Steps {
			if st.Action == "slack.notify" || !finished(st.Status) {
				continue
			}
			m := detail(st)
			m.Channel, m.ThreadTS = incident.Channel, incident.TS
			if err := s.ensure(ctx, rep, "thread/"+st.ID, m); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, st := range rep.Steps {
		ap := st.Approval
		if ap == nil {
			continue
		}
		first := slackact.Approval(rep, st, s.tokens, false)
		switch {
		case ap.Channel != "":
			first.Channel = ap.Channel
		case incident != nil:
			first.Channel, first.ThreadTS = incident.Channel, incident.TS
		default:
			continue // nowhere to ask: stanch approve only
		}
		if err := s.ensure(ctx, rep, approvalKey(st.ID, ap.Generation, 0), first); err != nil {
			errs = append(errs, err)
		}
		if ap.EscalatedTo != "" {
			second := slackact.Approval(rep, st, s.tokens, true)
			second.Channel = ap.EscalatedTo
			if err := s.ensure(ctx, rep, approvalKey(st.ID, ap.Generation, 1), second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// approvalKey names a step's approval message of one round; a request
// asked again after a retry gets messages of its own.
func approvalKey(stepID string, generation, round int) string {
	if generation > 0 {
		return fmt.Sprintf("approval/%s/g%d/%d", stepID, generation, round)
	}
	return fmt.Sprintf("approval/%s/%d", stepID, round)
}

func finished(status string) bool {
	switch status {
	case runner.StepSucceeded, runner.StepFailed, runner.StepDenied:
		return true
	}
	return false
}

// detail is a step's line in the incident thread.
func detail(st actions.StepReport) slackact.Message {
	text := fmt.Sprintf("%s %s (%s): %s", statusWord[st.Status], st.ID, st.Action, st.Status)
	switch {
	case st.Error != "":
		text += " — " + st.Error
	case st.Message != "":
		text += " — " + st.Message
	}
	if ap := st.Approval; ap != nil && ap.Decision != "" {
		text += fmt.Sprintf(" (%s by %s via %s)", ap.Decision, ap.DecidedBy, ap.Via)
	}
	return slackact.Message{Text: slackact.Escape(text)}
}

var statusWord = map[string]string{runner.StepSucceeded: "✅", runner.StepFailed: "❌", runner.StepDenied: "🚫"}

func digest(m slackact.Message) string {
	sum := sha256.Sum256([]byte(m.Text + "\x00" + slackact.BlocksJSON(m)))
	return hex.EncodeToString(sum[:12])
}

// update sends m to a message stanch knows was posted, unless it already
// shows exactly that.
func (s *Slack) update(ctx context.Context, runID string, rec runner.Message, m slackact.Message) error {
	d := digest(m)
	if known, err := s.runs.Store().Message(ctx, runID, rec.Key); err == nil && known.TS == rec.TS && known.Digest == d {
		return nil
	}
	if err := s.client.Update(ctx, rec.Channel, rec.TS, m); err != nil {
		return err
	}
	rec.Digest = d
	return s.runs.Store().SaveMessage(ctx, runID, rec)
}

// ensure posts m under key once and keeps it up to date. The intent is
// recorded before posting: a post whose answer was lost (stanch died in
// between) is looked for by its metadata before anything is posted again.
func (s *Slack) ensure(ctx context.Context, rep actions.Report, key string, m slackact.Message) error {
	store := s.runs.Store()
	rec, err := store.Message(ctx, rep.RunID, key)
	switch {
	case err == nil && rec.TS != "":
		return s.update(ctx, rep.RunID, rec, m)
	case err == nil:
		channel, ts, err := s.client.Find(ctx, m.Channel, m.ThreadTS, rep.RunID, key, rec.PostedAt)
		if err != nil {
			return err
		}
		if ts != "" {
			s.log.Info("found a message an interrupted sync posted", "run", rep.RunID, "key", key, "ts", ts)
			return s.update(ctx, rep.RunID, runner.Message{Key: key, Channel: channel, TS: ts}, m)
		}
	case errors.Is(err, runner.ErrNotFound):
		if err := store.SaveMessage(ctx, rep.RunID, runner.Message{Key: key, Channel: m.Channel}); err != nil {
			return err
		}
	default:
		return err
	}
	channel, ts, err := s.client.Post(ctx, rep.RunID, key, m)
	if err != nil {
		return err
	}
	crashpoint.Hit("slack:sync-posted")
	return store.SaveMessage(ctx, rep.RunID, runner.Message{Key: key, Channel: channel, TS: ts, Digest: digest(m)})
}
