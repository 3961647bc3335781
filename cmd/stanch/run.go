package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/leaked"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
)

func newRunCmd(g *globals) *cobra.Command {
	var playbookPath, alertPath, dbURL string
	var detach bool
	cmd := &cobra.Command{
		Use:   "run --playbook FILE --alert FILE",
		Short: "Run a playbook against an alert and follow it",
		Long: `Run a playbook against an alert, printing each step as it happens.

The alert file (or - for stdin) is a stanch Alert JSON document (docs/alerts.md), a GuardDuty
finding or AWS Health event as EventBridge delivers it (one, or a batch), truffleHog JSON lines
or a gitleaks JSON report: the format is recognised. A file with several findings starts a run
for each. For AWS, a credential.id must be one AWS access key id (whitespace around it is
trimmed); anything else is refused, naming the field. For a leaked GitHub, Slack, GitLab, npm or
Vault token, credential.id may be the token itself (examples/alerts/github-token.json): stanch
keeps the value in this process's memory only, for the step that revokes it, and stores, prints
and logs only its fingerprint (sha256:…; docs/tokens.md). Every alert is stored before anything runs. An alert whose dedup key already has a
run of this playbook starts no second run: stanch says which run exists and, if it is
unfinished (for example because the process running it was killed), resumes it without
repeating finished steps.

Exit codes: 0 the run succeeded, 1 it failed (the failing step and its error are printed),
3 it waits for approval (the exact 'stanch approve' command is printed) or sleeps until a
step's delay is over (stanch serve, or the next command that works the store, continues it
then). With several alerts, a failure outranks waiting, which outranks success.

With --detach, stanch run returns as soon as the alert and its run are committed to the store,
printing the run id and how to follow it (exit 0), and leaves the run to the process that works
the store: stanch serve, else the next stanch run, ingest, approve or runs retry on that store.
A token value given in the alert file is not stored: when a process works the store, the value is
handed to it first, over its socket beside the store (docs/tokens.md), and stanch run says so, or
names the token it could not hand and exits 1; when none does, the process that later works the
run never sees the value: run without --detach to revoke a token, unless GitHub's
secret-scanning alert still holds it.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if playbookPath == "" || alertPath == "" {
				return usageError{fmt.Errorf("run needs --playbook FILE and --alert FILE")}
			}
			if detach {
				return submitDetached(cmd.Context(), g, playbookPath, alertPath, dbURL)
			}
			return runPlaybook(cmd.Context(), g, playbookPath, alertPath, dbURL)
		},
	}
	cmd.Flags().StringVar(&playbookPath, "playbook", "", "playbook YAML file (required)")
	cmd.Flags().StringVar(&alertPath, "alert", "", "alert JSON file, or - for stdin (required)")
	cmd.Flags().BoolVar(&detach, "detach", false, "return once the run is stored, leaving it to the process that works the store (stanch serve)")
	cmd.Flags().StringVar(&dbURL, "database", runner.DefaultDatabaseURL(), "store: file:PATH (embedded SQLite) or postgres://USER@HOST/DB")
	return cmd
}

func runPlaybook(ctx context.Context, g *globals, playbookPath, alertPath, dbURL string) error {
	reg, pb, alerts, err := loadInputs(g, playbookPath, alertPath)
	if err != nil {
		return err
	}
	prog := newProgress(g.stdout)
	r, stop, err := startRunner(ctx, g, dbURL, reg, prog.observe, 30*time.Second)
	if err != nil {
		return err
	}
	defer stop()
	// Every alert is committed before any runs, so that a crash loses none.
	subs := make([]runner.Submission, len(alerts))
	for i, a := range alerts {
		if subs[i], err = r.Submit(ctx, a, []*playbooks.Playbook{pb}); err != nil {
			return err
		}
	}
	var worst *exitError
	for _, sub := range subs {
		if err := follow(ctx, g, r, prog, pb, sub, dbURL); err != nil {
			ee, ok := exitOf(err)
			if !ok {
				return err
			}
			worst = worse(worst, ee)
		}
	}
	if worst == nil {
		return nil
	}
	return worst
}

// follow prints one submitted alert's run until it finishes or waits.
func follow(ctx context.Context, g *globals, r *runner.Runner, prog *progress, pb *playbooks.Playbook, sub runner.Submission, dbURL string) error {
	runID := announce(g, pb, sub, false)
	if runID == "" {
		return nil
	}
	// A run that waits past its approval's deadline is decided here and
	// now, by this process's workers: what the command says is what the
	// run became.
	return prog.followToEnd(ctx, g, r, runID)
}

// announce says what became of a submitted alert and returns its run's
// id, or "" when the playbook does not apply to it.
func announce(g *globals, pb *playbooks.Playbook, sub runner.Submission, detached bool) string {
	a := sub.Alert
	var runID string
	switch {
	case len(sub.Started) == 1:
		runID = sub.Started[0].ID
		say(g.stdout, "run %s: playbook %s, alert %s (%s %s)\n", runID, pb.Name, a.DedupKey, a.Credential.Kind, a.Credential.ID)
	case len(sub.Existing) == 1:
		ex := sub.Existing[0]
		runID = ex.ID
		say(g.stdout, "alert %s already has run %s of playbook %s (%s, created %s); no second run started\n",
			a.DedupKey, ex.ID, ex.Playbook, ex.Status, ex.CreatedAt.Format(time.RFC3339))
		if !detached && !runner.Terminal(ex.Status) && ex.Status != runner.RunWaitingApproval {
			say(g.stdout, "run %s is unfinished; continuing it\n", ex.ID)
		}
	case len(sub.Joined) == 1:
		open := sub.Joined[0]
		runID = open.ID
		say(g.stdout, "alert %s is about %s, which run %s (%s) is already handling: it joined that run instead of starting a second containment\n",
			a.DedupKey, a.Credential.ID, open.ID, open.Status)
	default:
		say(g.stdout, "playbook %s does not apply to alert %s: %s; nothing was run\n", pb.Name, a.DedupKey, sub.NotMatched[0].Reason)
	}
	return runID
}

// submitDetached commits the alerts and their runs, says who will work
// them and how to follow them, and returns without working them here.
func submitDetached(ctx context.Context, g *globals, playbookPath, alertPath, dbURL string) error {
	reg, pb, alerts, err := loadInputs(g, playbookPath, alertPath)
	if err != nil {
		return err
	}
	r, db, err := openRunner(ctx, g, dbURL, reg, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	// The process that works the store gets the token values before the
	// alerts: its runs must not start without them.
	holder := db.Holder()
	var unhanded *exitError
	if holder != nil {
		unhanded = handTokens(ctx, g, dbURL, "stanch process "+holder.PID+" (it holds "+holder.Lock+")", alerts)
	}
	var runIDs []string
	for _, a := range alerts {
		// Submit returns once the alert, its run and the run's job are
		// committed: that is what makes returning now safe.
		sub, err := r.Submit(ctx, a, []*playbooks.Playbook{pb})
		if err != nil {
			return err
		}
		if id := announce(g, pb, sub, true); id != "" && !slices.Contains(runIDs, id) {
			runIDs = append(runIDs, id)
			if _, held := leaked.Process.Lookup(a.Credential.ID); held && holder == nil {
				say(g.stderr, "note: run %s revokes token %s, whose value only this process holds (stanch stores no token value): the process that works the run cannot revoke it unless GitHub's secret-scanning alert still holds it; run without --detach\n", id, a.Credential.ID)
			}
		}
	}
	if len(runIDs) == 0 {
		return nilIfNone(unhanded)
	}
	switch {
	case holder != nil:
		say(g.stdout, "stored; stanch process %s (it holds %s) works this store and runs it now\n", holder.PID, holder.Lock)
	case db.Dialect == runner.Postgres:
		say(g.stdout, "stored; the stanch serve processes that work this store run it\n")
	default:
		say(g.stdout, "stored; no stanch process works this store now: the run starts when one does (stanch serve, or the next stanch run, ingest, approve or runs retry on this store)\n")
	}
	sayln(g.stdout, "To follow it:")
	for _, id := range runIDs {
		say(g.stdout, "  stanch runs show %s%s\n", id, g.hint)
	}
	return nilIfNone(unhanded)
}

// nilIfNone is err as an error: nil when there is none.
func nilIfNone(err *exitError) error {
	if err == nil {
		return nil
	}
	return err
}
