package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/stanchhq/stanch/runner"
)

// progress prints a run's events as they happen and wakes whoever waits
// for the run to stop.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	started map[string]time.Time // step start, by run/step
	shown   map[string]time.Time // last progress line, by run/step
	wake    chan struct{}
	// quiet suppresses printing (for --json).
	quiet bool
	// delayed is when each run sleeping on a step's delay is due.
	delayed map[string]time.Time
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, started: map[string]time.Time{}, shown: map[string]time.Time{}, delayed: map[string]time.Time{}, wake: make(chan struct{}, 1)}
}

func (p *progress) observe(e runner.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer func() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}()
	switch e.Kind {
	case runner.EventStepDelayed:
		p.delayed[e.RunID] = e.Deadline
	case runner.EventRunContinued, runner.EventRunResumed, runner.EventStepStarted:
		delete(p.delayed, e.RunID)
	}
	if p.quiet {
		return
	}
	key := e.RunID + "/" + e.StepID
	switch e.Kind {
	case runner.EventRunStarted:
		say(p.w, "%s started\n", e.RunID)
	case runner.EventRunResumed:
		say(p.w, "%s resumed %s (finished steps are not repeated)\n", e.RunID, e.Message)
	case runner.EventRunContinued:
		if e.Message != "" {
			say(p.w, "%s continues %s\n", e.RunID, e.Message)
		}
	case runner.EventRunRetried:
		say(p.w, "%s retried %s\n", e.RunID, e.Message)
	case runner.EventStepEffect:
		say(p.w, "    ⚡ %-12s %s\n", e.StepID, oneLine(e.Message))
	case runner.EventStepStarted:
		p.started[key] = e.At
		say(p.w, "  → %-14s %s (attempt %d)\n", e.StepID, e.Action, e.Attempt)
	case runner.EventStepRetrying:
		say(p.w, "  ↻ %-14s attempt %d failed: %s; retrying in %s\n", e.StepID, e.Attempt, oneLine(e.Error), e.Duration.Round(time.Millisecond))
	case runner.EventStepSucceeded:
		took := ""
		if s, ok := p.started[key]; ok {
			took = " in " + e.At.Sub(s).Round(time.Millisecond).String()
		}
		say(p.w, "  ✓ %-14s %s%s: %s\n", e.StepID, e.Outcome, took, oneLine(e.Message))
	case runner.EventStepSkipped:
		say(p.w, "  – %-14s skipped: %s\n", e.StepID, oneLine(e.Message))
	case runner.EventStepFailed:
		say(p.w, "  ✗ %-14s failed: %s\n", e.StepID, oneLine(e.Error))
	case runner.EventStepDenied:
		say(p.w, "  ✗ %-14s %s\n", e.StepID, oneLine(e.Message))
	case runner.EventStepProgress:
		// Long steps report often; one line a second is enough to read.
		if last, ok := p.shown[key]; ok && e.At.Sub(last) < time.Second {
			return
		}
		p.shown[key] = e.At
		say(p.w, "    … %-12s %s\n", e.StepID, oneLine(e.Message))
	case runner.EventStepDelayed:
		say(p.w, "  ⏲ %-14s waits until %s (delay); the run sleeps without holding a worker\n", e.StepID, e.Deadline.Local().Format(time.TimeOnly))
	case runner.EventStepWaiting:
		say(p.w, "  ⏸ %-14s waiting for approval until %s: %s\n", e.StepID, e.Deadline.UTC().Format(time.RFC3339), oneLine(e.Message))
	case runner.EventStepEscalated:
		say(p.w, "  ⏫ %-14s nobody decided in time: %s, until %s\n", e.StepID, e.Message, e.Deadline.UTC().Format(time.RFC3339))
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// waitSettled waits until the run has ended, or waits for a decision that
// nobody has made yet and whose deadline is still ahead, or sleeps until a
// step's delay is over (minutes, typically: the run holds no worker, and
// the command need not hold the terminal). A decided approval, or one whose
// deadline has passed, is for this process's workers to act on (it works
// the store): the command's exit code must say what became of the run, not
// what it was a moment ago.
func (p *progress) waitSettled(ctx context.Context, store *runner.Store, runID string) (runner.Run, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		run, err := store.Run(ctx, runID)
		if err != nil {
			return runner.Run{}, err
		}
		if runner.Terminal(run.Status) {
			return run, nil
		}
		if _, ok := p.sleeping(run.ID); ok && run.Status == runner.RunRunning {
			return run, nil
		}
		if run.Status == runner.RunWaitingApproval {
			a, err := store.Approval(ctx, run.ID, run.WaitingStep)
			if err == nil && a.Decision == "" && time.Now().Before(a.Deadline) {
				return run, nil
			}
		}
		select {
		case <-ctx.Done():
			return run, fmt.Errorf("stopped while run %s was %s; run the same command again to resume it: %w", runID, run.Status, ctx.Err())
		case <-p.wake:
		case <-tick.C:
		}
	}
}

// followToEnd waits for the run to settle (see waitSettled), brings its
// Slack messages up to date and says how it stands, with the exit error
// for it: what every command that works a run here ends with.
func (p *progress) followToEnd(ctx context.Context, g *globals, r *runner.Runner, runID string) error {
	run, err := p.waitSettled(ctx, r.Store(), runID)
	if err != nil {
		return err
	}
	settleSlack(ctx, g, r, run.ID)
	if due, ok := p.sleeping(run.ID); ok && run.Status == runner.RunRunning {
		say(g.stdout, "%s sleeps until %s (a step's delay); the process that works this store continues it then: stanch serve, or else the next command that works it (stanch run of the same alert, ingest, approve, runs retry)\n",
			run.ID, due.Local().Format(time.RFC3339))
		return &exitError{code: exitWaiting}
	}
	return conclude(ctx, g, r.Store(), run, g.hint)
}

// sleeping returns when the run's delayed step is due, if it sleeps until
// a time still ahead.
func (p *progress) sleeping(runID string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	due, ok := p.delayed[runID]
	return due, ok && time.Now().Before(due)
}

// conclude prints how a run ended, or what it waits for, and returns the
// exit error for it.
func conclude(ctx context.Context, g *globals, store *runner.Store, run runner.Run, dbFlag string) error {
	switch run.Status {
	case runner.RunSucceeded:
		say(g.stdout, "%s succeeded\n", run.ID)
		return nil
	case runner.RunWaitingApproval:
		a, err := store.Approval(ctx, run.ID, run.WaitingStep)
		if err != nil {
			return err
		}
		say(g.stdout, "%s is waiting for approval of step %q", run.ID, run.WaitingStep)
		if a.Escalation != nil && !a.EscalatedAt.IsZero() {
			say(g.stdout, ", escalated to %s (approvers %s)", a.Escalation.Channel, strings.Join(a.Approvers, ", "))
		}
		say(g.stdout, " until %s.\n", a.Deadline.UTC().Format(time.RFC3339))
		if a.Plan != "" {
			say(g.stdout, "  %s\n", a.Plan)
		}
		printEffects(g, "  ", a.Effects)
		say(g.stdout, "To continue:\n  stanch approve %s %s --by NAME%s\n  (add --deny to refuse)\n",
			run.ID, run.WaitingStep, dbFlag)
		return &exitError{code: exitWaiting}
	case runner.RunCancelled:
		say(g.stdout, "%s cancelled", run.ID)
		if run.FailedStep != "" {
			say(g.stdout, " at step %s", run.FailedStep)
		}
		say(g.stdout, ": %s\n", run.Error)
		printRetry(g, run, dbFlag)
		return &exitError{code: exitFailed}
	default:
		say(g.stdout, "%s failed at step %s: %s\n", run.ID, run.FailedStep, run.Error)
		printRetry(g, run, dbFlag)
		return &exitError{code: exitFailed}
	}
}

// printRetry says how to go on with a run that failed or was cancelled.
func printRetry(g *globals, run runner.Run, dbFlag string) {
	if !run.ClosedAt.IsZero() {
		say(g.stdout, "  closed by %s: %s\n", run.ClosedBy, run.CloseNote)
		return
	}
	say(g.stdout, "To run it again from there once the cause is fixed:\n  stanch runs retry %s%s\n", run.ID, dbFlag)
}

func shellQuote(s string) string {
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@=+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
