package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/apicall"
	"github.com/stanchhq/stanch/internal/crashpoint"
	"github.com/stanchhq/stanch/playbooks"
)

// A step's attempts: each begins with a journal entry, runs the action,
// and ends the step (a success, a permanent failure, the last attempt
// failed) or schedules the next attempt after a backoff. Between attempts
// the job sleeps with River's snooze, so a throttled step holds no worker:
// the next pass over the run starts the next attempt. Attempts count in the
// store, across passes and crashes.

// retryDue says an attempt failed and the next one is due after wait.
type retryDue struct{ wait time.Duration }

func (e *retryDue) Error() string { return "the next attempt is due in " + e.wait.String() }

// attempts runs the step's next attempt. When it fails and may be retried,
// the step returns a *retryDue error if mayLeave (the job sleeps until the
// next attempt is due), and otherwise sleeps here and goes on.
func (s *stepRun) attempts(ctx context.Context, action actions.Action, params any, mayLeave bool) (st playbooks.StepState, err error) {
	defer func() {
		if !errors.As(err, new(*retryDue)) {
			s.r.attemptClock.forget(s.run.ID)
		}
	}()
	for {
		st, err = s.attempt(ctx, action, params)
		var retry *retryDue
		if !errors.As(err, &retry) || mayLeave {
			return st, err
		}
		// The pass holds secret outputs that a snooze would lose.
		select {
		case <-ctx.Done():
			return playbooks.StepState{}, ctx.Err()
		case <-time.After(retry.wait):
		}
	}
}

// attempt begins the step's next attempt, runs the action and records the
// outcome.
func (s *stepRun) attempt(ctx context.Context, action actions.Action, params any) (playbooks.StepState, error) {
	begun, err := s.r.store.BeginAttempt(ctx, s.run.ID, s.step.ID, s.seq, s.step.Action)
	if err != nil {
		return playbooks.StepState{}, err
	}
	attempt := begun.Number
	if attempt > s.step.Retry.Attempts {
		// Earlier attempts died with their process; do not start more
		// than the playbook allows.
		return s.end(ctx, StepEnd{Attempt: attempt - 1, Status: StepFailed, Outcome: OutcomeFailed, Error: fmt.Sprintf("step %s used all %d attempts", s.step.ID, s.step.Retry.Attempts)})
	}
	s.r.emit(Event{Kind: EventStepStarted, RunID: s.run.ID, StepID: s.step.ID, Action: s.step.Action, Attempt: attempt})
	started := time.Now()
	s.r.attemptClock.start(*s.run, s.step.ID, started)
	res, err := s.r.doAttempt(ctx, *s.run, s.step, action, params, begun)
	if err != nil {
		return s.failed(ctx, attempt, err)
	}
	crashpoint.Hit("done:" + s.step.ID) // the effect happened; the journal does not know yet
	return s.succeeded(ctx, action, attempt, started, res)
}

// succeeded records a successful attempt: public outputs in the store, and
// the owner the step found on the run, unless it contradicts the one an
// earlier step found.
func (s *stepRun) succeeded(ctx context.Context, action actions.Action, attempt int, started time.Time, res actions.Result) (playbooks.StepState, error) {
	outputs := publicOutputs(action.Spec(), res.Outputs)
	outcome := string(res.Outcome)
	if outcome == "" {
		outcome = string(actions.Done)
	}
	if res.Owner != nil {
		owner := *res.Owner
		owner.By = s.step.ID
		if run := s.run; run.Owner.Known() && (owner.Account != run.Owner.Account || owner.User != run.Owner.User || owner.Role != run.Owner.Role) {
			return s.end(ctx, *failed(fmt.Sprintf("step %s found that %s belongs to %s, but step %s found %s belongs to %s; nothing more is done until people look: one run acts on one owner",
				s.step.ID, owner.Credential, owner, run.Owner.By, run.Owner.Credential, run.Owner)))
		}
		res.Owner, s.run.Owner = &owner, owner
	}
	s.log.Info("step succeeded", "step", s.step.ID, "action", s.step.Action, "attempt", attempt, "outcome", outcome, "took", time.Since(started))
	st, err := s.end(ctx, StepEnd{Attempt: attempt, Status: StepSucceeded, Outcome: outcome, Message: res.Message, Outputs: outputs, Owner: res.Owner})
	// Secret outputs reach later steps of this pass only.
	st.Outputs = res.Outputs
	return st, err
}

// failed records a failed attempt: the step fails when the error is
// permanent or it was the last attempt; otherwise the failure is journalled
// and the next attempt is due after a backoff (a *retryDue error).
func (s *stepRun) failed(ctx context.Context, attempt int, err error) (playbooks.StepState, error) {
	if ctx.Err() != nil {
		return playbooks.StepState{}, ctx.Err() // shutting down: the job resumes later
	}
	if api, ok := actions.APIErrorOf(err); ok {
		s.r.emit(Event{Kind: EventStepAPIError, RunID: s.run.ID, StepID: s.step.ID, Action: s.step.Action, Attempt: attempt, API: api})
	}
	kind := actions.KindOf(err)
	var later RetryAfter
	if kind != actions.KindPermanent && errors.As(err, &later) {
		// The provider named when to come back (GitHub's hourly budget of
		// revocations): wait for it, whatever the step's retry policy.
		wait := max(later.RetryAfter(), time.Second)
		if err := s.r.store.AttemptDeferred(ctx, s.run.ID, s.step.ID, attempt, err, s.r.cfg.Now().Add(wait)); err != nil {
			return playbooks.StepState{}, err
		}
		s.r.emit(Event{Kind: EventStepRetrying, RunID: s.run.ID, StepID: s.step.ID, Action: s.step.Action, Attempt: attempt, Error: err.Error(), Duration: wait})
		return playbooks.StepState{}, &retryDue{wait: wait}
	}
	if kind == actions.KindPermanent || attempt >= s.step.Retry.Attempts {
		s.log.Warn("step failed", "step", s.step.ID, "action", s.step.Action, "attempt", attempt, "kind", kind.String(), "error", alert.RedactText(err.Error()))
		return s.end(ctx, StepEnd{Attempt: attempt, Status: StepFailed, Outcome: OutcomeFailed, Error: fmt.Sprintf("%s (%s, attempt %d of %d)", err, kind, attempt, s.step.Retry.Attempts)})
	}
	wait := backoff(s.step.Retry, attempt)
	if err := s.r.store.AttemptFailed(ctx, s.run.ID, s.step.ID, attempt, err, wait); err != nil {
		return playbooks.StepState{}, err
	}
	s.r.emit(Event{Kind: EventStepRetrying, RunID: s.run.ID, StepID: s.step.ID, Action: s.step.Action, Attempt: attempt, Error: err.Error(), Duration: wait})
	return playbooks.StepState{}, &retryDue{wait: wait}
}

// env is what an action is told about the step it runs in.
func (r *Runner) env(run Run, step *playbooks.Step, attempt Attempt) actions.Env {
	return actions.Env{
		RunID:          run.ID,
		StepID:         step.ID,
		Attempt:        attempt.Number,
		IdempotencyKey: run.ID + "/" + step.ID,
		StepStartedAt:  attempt.StepStarted,
		Resumed:        attempt.Checkpoint,
		Owner:          run.Owner,
		Logger:         r.log.With("run", run.ID, "step", step.ID, "action", step.Action),
		Report:         func(ctx context.Context) (actions.Report, error) { return r.Report(ctx, run.ID) },
	}
}

func (r *Runner) doAttempt(ctx context.Context, run Run, step *playbooks.Step, action actions.Action, params any, begun Attempt) (res actions.Result, err error) {
	attempt := begun.Number
	actx, cancel := context.WithTimeout(ctx, step.Timeout)
	defer cancel()
	defer func() {
		// A panicking action must not take the run's journal down with it.
		if p := recover(); p != nil {
			err = actions.Permanent(fmt.Errorf("action %s panicked: %v", step.Action, p))
		}
	}()
	env := r.env(run, step, begun)
	env.Progress = func(msg string) {
		r.emit(Event{Kind: EventStepProgress, RunID: run.ID, StepID: step.ID, Action: step.Action, Attempt: attempt, Message: msg})
	}
	// Every provider API call the action makes with actx is recorded: those
	// before an effect with the effect, the rest when Do returns.
	calls := &callLog{}
	actx = apicall.WithRecorder(actx, calls.add)
	actx = apicall.WithGate(actx, leaseGate(ctx))
	saveCalls := func(made []apicall.Call) { r.saveCalls(ctx, run, step, attempt, made) }
	defer func() { saveCalls(calls.unsaved()) }()
	env.Effect = func(e actions.Effect) {
		// Journalled at once, outside the step's own record, with the
		// calls that made it: an effect made by an attempt that then dies
		// is still on record.
		made := calls.unsaved()
		if err := r.store.Effect(context.WithoutCancel(ctx), run.ID, step.ID, attempt, e, made); err != nil {
			// Whatever failed, the effect must not wait on its calls'
			// records: journalled alone, then the calls on their own.
			if err := r.store.Effect(context.WithoutCancel(ctx), run.ID, step.ID, attempt, e, nil); err != nil {
				r.log.Warn("could not journal an effect", "run", run.ID, "step", step.ID, "error", err)
			}
			saveCalls(made)
		}
		r.emit(Event{Kind: EventStepEffect, RunID: run.ID, StepID: step.ID, Action: step.Action, Attempt: attempt, Message: e.String()})
	}
	env.Checkpoint = func(_ context.Context, state []byte) error {
		// On the pass's context, whatever the action hands in: it carries
		// the fence, so a replica that lost the run (or its lease) cannot
		// checkpoint over its successor (fence.go).
		return r.store.SaveCheckpoint(ctx, run.ID, step.ID, state)
	}
	res, err = action.Do(actx, env, params)
	if err != nil && errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = actions.Retryable(fmt.Errorf("step %s timed out after %s: %w", step.ID, step.Timeout, err))
	}
	return res, err
}

// backoff is the exponential delay before attempt+1, with jitter so that
// many runs throttled together do not retry together.
func backoff(p playbooks.Retry, attempt int) time.Duration {
	d := p.Backoff << (attempt - 1)
	if d <= 0 || (p.MaxBackoff > 0 && d > p.MaxBackoff) {
		d = p.MaxBackoff
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(half+1)
}

// publicOutputs drops outputs the action declares secret and redacts
// secret-looking text, so that nothing secret reaches the store.
func publicOutputs(spec actions.Spec, outputs map[string]any) map[string]any {
	secret := map[string]bool{}
	for _, o := range spec.Outputs {
		if o.Secret {
			secret[o.Name] = true
		}
	}
	out := make(map[string]any, len(outputs))
	for k, v := range outputs {
		if secret[k] {
			continue
		}
		if s, ok := v.(string); ok {
			v = alert.RedactText(s)
		}
		out[k] = v
	}
	return out
}

// holdsSecrets reports whether outputs hold a value the action declares
// secret.
func holdsSecrets(spec actions.Spec, outputs map[string]any) bool {
	for _, o := range spec.Outputs {
		if _, ok := outputs[o.Name]; ok && o.Secret {
			return true
		}
	}
	return false
}

// callLog holds the API calls of one attempt until they are stored.
type callLog struct {
	mu    sync.Mutex
	calls []apicall.Call
}

func (l *callLog) add(c apicall.Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

// unsaved returns the calls not yet handed out, and forgets them.
func (l *callLog) unsaved() []apicall.Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.calls
	l.calls = nil
	return out
}

// saveCalls stores the calls an attempt made; a failure is logged and
// counted (stanch_call_records_lost_total): the run's record then lacks
// them, and people must be able to see that.
func (r *Runner) saveCalls(ctx context.Context, run Run, step *playbooks.Step, attempt int, made []apicall.Call) {
	err := r.store.AddCalls(context.WithoutCancel(ctx), run.ID, step.ID, attempt, made)
	if err == nil {
		return
	}
	r.log.Warn("could not record API calls: the run's record lacks them", "run", run.ID, "step", step.ID, "calls", len(made), "error", err)
	r.emit(Event{Kind: EventCallsLost, RunID: run.ID, StepID: step.ID, Action: step.Action, Attempt: attempt, Calls: len(made), Error: err.Error()})
}
