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
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, started: map[string]time.Time{}, shown: map[string]time.Time{}, wake: make(chan struct{}, 1)}
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
	if p.quiet {
		return
	}
	key := e.RunID + "/" + e.StepID
	switch e.Kind {
	case runner.EventRunStarted:
		fmt.Fprintf(p.w, "%s started\n", e.RunID)
	case runner.EventRunResumed:
		fmt.Fprintf(p.w, "%s resumed (finished steps are not repeated)\n", e.RunID)
	case runner.EventStepStarted:
		p.started[key] = e.At
		fmt.Fprintf(p.w, "  → %-14s %s (attempt %d)\n", e.StepID, e.Action, e.Attempt)
	case runner.EventStepRetrying:
		fmt.Fprintf(p.w, "  ↻ %-14s attempt %d failed: %s; retrying in %s\n", e.StepID, e.Attempt, oneLine(e.Error), e.Duration.Round(time.Millisecond))
	case runner.EventStepSucceeded:
		took := ""
		if s, ok := p.started[key]; ok {
			took = " in " + e.At.Sub(s).Round(time.Millisecond).String()
		}
		fmt.Fprintf(p.w, "  ✓ %-14s %s%s: %s\n", e.StepID, e.Outcome, took, oneLine(e.Message))
	case runner.EventStepSkipped:
		fmt.Fprintf(p.w, "  – %-14s skipped: %s\n", e.StepID, oneLine(e.Message))
	case runner.EventStepFailed:
		fmt.Fprintf(p.w, "  ✗ %-14s failed: %s\n", e.StepID, oneLine(e.Error))
	case runner.EventStepDenied:
		fmt.Fprintf(p.w, "  ✗ %-14s %s\n", e.StepID, oneLine(e.Message))
	case runner.EventStepProgress:
		// Long steps report often; one line a second is enough to read.
		if last, ok := p.shown[key]; ok && e.At.Sub(last) < time.Second {
			return
		}
		p.shown[key] = e.At
		fmt.Fprintf(p.w, "    … %-12s %s\n", e.StepID, oneLine(e.Message))
	case runner.EventStepDelayed:
		fmt.Fprintf(p.w, "  ⏲ %-14s waits until %s (delay); the run sleeps without holding a worker\n", e.StepID, e.Deadline.Local().Format(time.TimeOnly))
	case runner.EventStepWaiting:
		fmt.Fprintf(p.w, "  ⏸ %-14s waiting for approval until %s: %s\n", e.StepID, e.Deadline.UTC().Format(time.RFC3339), oneLine(e.Message))
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// waitRun waits until the run is finished or waits for approval of a step
// other than decided (the step a decision was just recorded for, which the
// run is about to leave).
func (p *progress) waitRun(ctx context.Context, store *runner.Store, runID, decided string) (runner.Run, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		run, err := store.Run(ctx, runID)
		if err != nil {
			return runner.Run{}, err
		}
		if runner.Terminal(run.Status) || (run.Status == runner.RunWaitingApproval && run.WaitingStep != decided) {
			return run, nil
		}
		select {
		case <-ctx.Done():
			return run, fmt.Errorf("stopped while run %s was %s; run the same command again to resume it: %w", runID, run.Status, ctx.Err())
		case <-p.wake:
		case <-tick.C:
		}
	}
}

// conclude prints how a run ended and returns the exit error for it.
func conclude(g *globals, run runner.Run, dbFlag string) error {
	switch run.Status {
	case runner.RunSucceeded:
		fmt.Fprintf(g.stdout, "%s succeeded\n", run.ID)
		return nil
	case runner.RunWaitingApproval:
		fmt.Fprintf(g.stdout, "%s is waiting for approval of step %q. To continue:\n  stanch approve %s %s --by NAME%s\n  (add --deny to refuse)\n",
			run.ID, run.WaitingStep, run.ID, run.WaitingStep, dbFlag)
		return &exitError{code: exitWaiting}
	case runner.RunCancelled:
		fmt.Fprintf(g.stdout, "%s cancelled at step %s: %s\n", run.ID, run.FailedStep, run.Error)
		return &exitError{code: exitFailed}
	default:
		fmt.Fprintf(g.stdout, "%s failed at step %s: %s\n", run.ID, run.FailedStep, run.Error)
		return &exitError{code: exitFailed}
	}
}

// databaseFlag renders --database for commands printed to the user, only
// when it differs from the default.
func databaseFlag(url string) string {
	if url == "" || url == runner.DefaultDatabaseURL() {
		return ""
	}
	return " --database " + shellQuote(url)
}

func shellQuote(s string) string {
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@=+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
