package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/playbooks"
)

// These tests play two replicas on one PostgreSQL store in one test
// process. A replica that "dies" is one whose lease row the test expires
// while its renewals are stretched out of reach: the other replica cannot
// tell that from a SIGKILL (cmd/stanch's replica test kills real
// processes), and the test can then also let the "dead" one go on, as a
// paused process that resumes would.

// pagesWorld is a test provider whose step reads pages one by one,
// checkpointing after each, and whose effects are counted per replica.
type pagesWorld struct {
	mu sync.Mutex
	// read lists the pages each replica read.
	read map[string][]int
	// effects counts the step's effect per replica.
	effects map[string]int
	// resumed is the checkpoint each replica's attempt started from.
	resumed map[string]string
	// holdAfter: a replica's attempt stops after the first page it reads
	// from this one on, until its gate opens.
	holdAfter int
	held      map[string]bool
	gates     map[string]chan struct{}
	entered   map[string]chan struct{} // closed once the replica holds
	exited    map[string]chan error    // each attempt's end
}

type pagesParams struct {
	Pages int `json:"pages" required:"true"`
}

type pagesOutputs struct {
	Read int `json:"read" doc:"pages read by the attempt that finished"`
}

func newPagesWorld(holdAfter int, replicas ...string) *pagesWorld {
	w := &pagesWorld{read: map[string][]int{}, effects: map[string]int{}, resumed: map[string]string{}, holdAfter: holdAfter,
		held: map[string]bool{}, gates: map[string]chan struct{}{}, entered: map[string]chan struct{}{}, exited: map[string]chan error{}}
	for _, r := range replicas {
		w.gates[r] = make(chan struct{})
		w.entered[r] = make(chan struct{})
		w.exited[r] = make(chan error, 10)
	}
	return w
}

// registry is the provider as replica sees it.
func (w *pagesWorld) registry(t *testing.T, replica string) *actions.Registry {
	t.Helper()
	pages := actions.New(actions.Definition[pagesParams, pagesOutputs]{
		Name: "test.pages",
		Slow: true,
		PlanFunc: func(context.Context, actions.Env, *pagesParams) (actions.PlanOf[pagesOutputs], error) {
			return actions.PlanOf[pagesOutputs]{Summary: "would read pages"}, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, p *pagesParams) (_ actions.ResultOf[pagesOutputs], err error) {
			type result = actions.ResultOf[pagesOutputs]
			defer func() { w.exited[replica] <- err }()
			var state struct {
				Next int `json:"next"`
			}
			state.Next = 1
			if env.Resumed != nil {
				require.NoError(t, json.Unmarshal(env.Resumed, &state))
			}
			w.mu.Lock()
			w.resumed[replica] = string(env.Resumed)
			w.mu.Unlock()
			for page := state.Next; page <= p.Pages; page++ {
				if err := ctx.Err(); err != nil {
					return result{}, actions.Retryable(err)
				}
				w.mu.Lock()
				w.read[replica] = append(w.read[replica], page)
				w.mu.Unlock()
				state.Next = page + 1
				doc, _ := json.Marshal(state)
				if err := env.Checkpoint(ctx, doc); err != nil {
					return result{}, err
				}
				w.mu.Lock()
				hold := page >= w.holdAfter && !w.held[replica]
				w.held[replica] = w.held[replica] || hold
				w.mu.Unlock()
				if hold {
					close(w.entered[replica])
					select {
					case <-w.gates[replica]:
					case <-ctx.Done():
						return result{}, actions.Retryable(ctx.Err())
					}
				}
			}
			w.mu.Lock()
			w.effects[replica]++
			w.mu.Unlock()
			return result{Outcome: actions.Done, Message: "read by " + replica, Outputs: &pagesOutputs{Read: len(w.read[replica])}}, nil
		},
	})
	reg, err := actions.NewRegistry(pages)
	require.NoError(t, err)
	return reg
}

const pagesPlaybook = `
name: pages
steps:
  - id: read
    action: test.pages
    with: {pages: 5}
`

// replicaOn starts a runner on url as replica name, with a lease of ttl
// renewed every renewEvery.
func replicaOn(t *testing.T, url string, reg *actions.Registry, ttl, renewEvery time.Duration) *Runner {
	t.Helper()
	ctx := context.Background()
	db := openTestDatabase(t, url)
	r, err := New(ctx, Config{DB: db, Registry: reg, LeaseTTL: ttl, Logger: slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	require.NoError(t, err)
	r.member.renewEvery = renewEvery
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	})
	return r
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func waitFor(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !done() {
		require.True(t, time.Now().Before(deadline), "timed out waiting for %s", what)
		time.Sleep(20 * time.Millisecond)
	}
}

func journalEvents(t *testing.T, r *Runner, runID string) []Entry {
	t.Helper()
	entries, err := r.Store().Journal(context.Background(), runID)
	require.NoError(t, err)
	return entries
}

func count(entries []Entry, event string) int {
	n := 0
	for _, e := range entries {
		if e.Event == event {
			n++
		}
	}
	return n
}

// A replica stops renewing its lease in the middle of a long step (it died,
// as far as anyone can tell): another replica takes the run over once the
// lease expired, and goes on from the step's last checkpoint, not from the
// first page. When the first one then comes back and finishes its attempt,
// nothing it writes is recorded: the run is the successor's.
func TestTakenOverRunResumesFromItsCheckpointAndTheOldReplicaIsFenced(t *testing.T) {
	url := testkit.PostgresURL(t)
	w := newPagesWorld(2, "a", "b")
	regA, regB := w.registry(t, "a"), w.registry(t, "b")
	// A renews never: its lease lasts a minute by its own clock, so that
	// it can play a paused process that has not noticed yet.
	a := replicaOn(t, url, regA, time.Minute, time.Hour)
	pb, err := playbooks.Parse("pages.yaml", []byte(pagesPlaybook), regA)
	require.NoError(t, err)
	sub, err := a.Submit(context.Background(), testAlert("AKIAIOSFODNN7LEASE01"), []*playbooks.Playbook{pb})
	require.NoError(t, err)
	run := sub.Started[0]
	<-w.entered["a"] // A has read pages 1 and 2, checkpointed, and holds

	// A is paused: it fetches no more jobs, and its lease, as PostgreSQL
	// sees it, expires; by its own clock it still holds it.
	go func() { _ = a.client.Stop(context.Background()) }()
	_, err = a.cfg.DB.Pool.Exec(context.Background(), `UPDATE stanch_replicas SET expires_at = now() - interval '1 second' WHERE id = $1`, a.member.id)
	require.NoError(t, err)
	b := replicaOn(t, url, regB, 5*time.Second, 0)
	<-w.entered["b"] // B took the run over and resumed at page 3

	entries := journalEvents(t, b, run.ID)
	require.Equal(t, 1, count(entries, "run_taken_over"), "journal: %+v", entries)
	for _, e := range entries {
		if e.Event == "run_taken_over" {
			require.Contains(t, e.Detail, a.member.id)
		}
	}
	chain, err := b.Store().VerifyJournal(context.Background(), run.ID)
	require.NoError(t, err)
	require.True(t, chain.OK(), "the takeover's entry is chained: %+v", chain.Breaks)
	w.mu.Lock()
	require.Equal(t, []int{1, 2}, w.read["a"])
	require.Equal(t, []int{3}, w.read["b"], "B must resume after the last checkpointed page")
	require.JSONEq(t, `{"next":3}`, w.resumed["b"])
	w.mu.Unlock()

	// The old replica comes back and goes on with its attempt: its next
	// checkpoint is refused, and it stops without acting.
	close(w.gates["a"])
	require.ErrorIs(t, <-w.exited["a"], ErrFenced)
	close(w.gates["b"])
	got := waitRun(t, b, run.ID, RunSucceeded, RunFailed)
	require.Equal(t, RunSucceeded, got.Status, "run: %+v", got)
	require.Equal(t, 1, got.Takeover)
	steps, err := b.Store().Steps(context.Background(), run.ID)
	require.NoError(t, err)
	require.Equal(t, "read by b", steps["read"].Message, "the step's record must be the successor's")
	w.mu.Lock()
	require.Equal(t, []int{1, 2, 3}, w.read["a"])
	require.Equal(t, []int{3, 4, 5}, w.read["b"])
	require.Zero(t, w.effects["a"], "the fenced replica acted")
	require.Equal(t, 1, w.effects["b"])
	w.mu.Unlock()
	entries = journalEvents(t, b, run.ID)
	require.Equal(t, 1, count(entries, "step_succeeded"), "journal: %+v", entries)
	for _, e := range entries {
		require.NotContains(t, e.Detail, "read by a", "the fenced replica wrote to the journal: %+v", e)
	}
}

// A replica whose own clock says its lease lapsed (it could not renew:
// cut off, or paused) stops its passes before anyone takes its runs, and
// acts no more; another replica finishes the run.
func TestAReplicaWhoseLeaseLapsedStopsActing(t *testing.T) {
	url := testkit.PostgresURL(t)
	w := newPagesWorld(2, "a", "b")
	regA, regB := w.registry(t, "a"), w.registry(t, "b")
	a := replicaOn(t, url, regA, 2*time.Second, time.Hour) // renews never
	pb, err := playbooks.Parse("pages.yaml", []byte(pagesPlaybook), regA)
	require.NoError(t, err)
	sub, err := a.Submit(context.Background(), testAlert("AKIAIOSFODNN7LEASE02"), []*playbooks.Playbook{pb})
	require.NoError(t, err)
	run := sub.Started[0]
	<-w.entered["a"]
	b := replicaOn(t, url, regB, 5*time.Second, 0)
	close(w.gates["b"])
	got := waitRun(t, b, run.ID, RunSucceeded, RunFailed)
	require.Equal(t, RunSucceeded, got.Status, "run: %+v", got)

	w.mu.Lock()
	defer w.mu.Unlock()
	require.Zero(t, w.effects["a"], "the replica whose lease lapsed acted")
	require.Equal(t, 1, w.effects["b"])
	require.Equal(t, []int{1, 2}, w.read["a"])
	require.Equal(t, []int{3, 4, 5}, w.read["b"], "B must resume after A's last checkpoint")
	require.Nil(t, a.member.term(), "A's lease lapsed and it never renewed")
}

// A replica stopped with SIGTERM gives its lease up: what it could not
// finish is taken over at once, not when the lease would have lapsed.
func TestAStoppedReplicaGivesItsLeaseUp(t *testing.T) {
	url := testkit.PostgresURL(t)
	w := newPagesWorld(2, "a", "b")
	regA, regB := w.registry(t, "a"), w.registry(t, "b")
	a := replicaOn(t, url, regA, time.Hour, 0)
	ctx := context.Background()
	var expires time.Time
	require.NoError(t, a.cfg.DB.Pool.QueryRow(ctx, `SELECT expires_at FROM stanch_replicas WHERE id = $1`, a.member.id).Scan(&expires))
	require.True(t, time.Until(expires) > 30*time.Minute, "the lease lasts its TTL: %s", expires)
	_ = regB
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, a.Stop(sctx))
	require.NoError(t, a.cfg.DB.Pool.QueryRow(ctx, `SELECT expires_at FROM stanch_replicas WHERE id = $1`, a.member.id).Scan(&expires))
	require.False(t, expires.After(time.Now().Add(time.Second)), "a stopped replica's lease must end at once: %s", expires)
}

func waitRun(t *testing.T, r *Runner, runID string, statuses ...RunStatus) Run {
	t.Helper()
	var run Run
	waitFor(t, fmt.Sprintf("run %s to reach %v", runID, statuses), func() bool {
		var err error
		run, err = r.Store().Run(context.Background(), runID)
		require.NoError(t, err)
		for _, s := range statuses {
			if run.Status == s {
				return true
			}
		}
		return false
	})
	return run
}

// An approval decided through one replica resumes the run on whichever
// replica its job wakes on, promptly, with the step run once.
func TestAnApprovalDecidedOnAnotherReplicaResumesTheRun(t *testing.T) {
	url := testkit.PostgresURL(t)
	w := newPagesWorld(100, "a", "b") // never holds
	regA, regB := w.registry(t, "a"), w.registry(t, "b")
	a := replicaOn(t, url, regA, 5*time.Second, 0)
	pb, err := playbooks.Parse("approve.yaml", []byte(`
name: approve
steps:
  - id: read
    action: test.pages
    approval:
      approvers: [alice]
      timeout: 1h
      on_timeout: deny
    with: {pages: 2}
`), regA)
	require.NoError(t, err)
	ctx := context.Background()
	sub, err := a.Submit(ctx, testAlert("AKIAIOSFODNN7LEASE03"), []*playbooks.Playbook{pb})
	require.NoError(t, err)
	run := waitRun(t, a, sub.Started[0].ID, RunWaitingApproval)
	b := replicaOn(t, url, regB, 5*time.Second, 0)
	_, first, err := b.Decide(ctx, Decision{RunID: run.ID, StepID: "read", Decision: Approved, By: "alice", Via: "cli"})
	require.NoError(t, err)
	require.True(t, first)
	got := waitRun(t, b, run.ID, RunSucceeded, RunFailed)
	require.Equal(t, RunSucceeded, got.Status)
	w.mu.Lock()
	defer w.mu.Unlock()
	require.Equal(t, 1, w.effects["a"]+w.effects["b"], "the approved step ran once: %v", w.effects)
}
