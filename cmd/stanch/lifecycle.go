package main

import (
	"context"
	"errors"
	"os"
	"os/user"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/runner"
)

// The commands people drive a run's lifecycle with: retry, cancel, close.
// Each records who did it in the run's journal, shows it in Slack when
// Slack is configured, and works beside stanch serve (which then takes the
// run up) or alone (the run is then followed here, like stanch run).

// whoAmI is the default --by: the login of the person at the terminal.
func whoAmI() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if v := os.Getenv("USER"); v != "" {
		return v
	}
	return "unknown"
}

func newRetryCmd(g *globals, dbURL *string) *cobra.Command {
	var from, by string
	cmd := &cobra.Command{
		Use:   "retry RUN [--from STEP] [--by NAME]",
		Short: "Run a failed or cancelled run again, from the step that stopped it",
		Long: `Run a failed or cancelled run again, once what stopped it is fixed (expired credentials, a
missing permission, throttling, a denial that people now approve).

The run goes on from the step that failed or was denied, or from --from STEP, with fresh
attempts; the steps before it keep their results and are not repeated. Steps run again check
first, so an effect that already happened (a key already deactivated, a rotation already
stored) is found and not repeated. An approval of a step that runs again is asked again.
The retry is journalled with who asked for it. A succeeded, still-open or closed run is not
retried: the command says why.

When no other stanch process works the store the run is followed here, with the exit codes
of 'stanch run'; otherwise that process (stanch serve) takes it up at once.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lifecycle(cmd.Context(), g, *dbURL, func(ctx context.Context, r *runner.Runner) (runner.Run, error) {
				return r.Retry(ctx, args[0], from, by)
			}, true)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the step to run again from (default: the step that failed or was denied)")
	cmd.Flags().StringVar(&by, "by", whoAmI(), "who asks, for the journal")
	return cmd
}

func newCancelCmd(g *globals, dbURL *string) *cobra.Command {
	var note, by string
	cmd := &cobra.Command{
		Use:   "cancel RUN [--note TEXT] [--by NAME]",
		Short: "Stop a run that is pending, running or waiting for approval",
		Long: `Stop a run: no further step starts. A step in flight finishes first and is recorded; its
undecided approvals can no longer be decided (their Slack messages say the run ended). The
run ends 'cancelled', with who cancelled it and the note, and can be retried later
(stanch runs retry RUN).`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lifecycle(cmd.Context(), g, *dbURL, func(ctx context.Context, r *runner.Runner) (runner.Run, error) {
				return r.Cancel(ctx, args[0], by, note)
			}, false)
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "why, for the journal and Slack")
	cmd.Flags().StringVar(&by, "by", whoAmI(), "who cancels, for the journal")
	return cmd
}

func newCloseCmd(g *globals, dbURL *string) *cobra.Command {
	var note, by string
	cmd := &cobra.Command{
		Use:   "close RUN --note TEXT [--by NAME]",
		Short: "Close an incident with a note (cancelling the run if it is still open)",
		Long: `Record that people consider the incident handled, with a note saying how. A run that is
still open is cancelled first. A closed run keeps how it ended (succeeded, failed,
cancelled), shows the note in 'stanch runs show' and in Slack, and is not retried.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if note == "" {
				return usageError{errors.New("close needs --note TEXT: say how the incident was handled")}
			}
			return lifecycle(cmd.Context(), g, *dbURL, func(ctx context.Context, r *runner.Runner) (runner.Run, error) {
				return r.Close(ctx, args[0], by, note)
			}, false)
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "how the incident was handled (required)")
	cmd.Flags().StringVar(&by, "by", whoAmI(), "who closes, for the journal")
	return cmd
}

// lifecycle opens the store, makes the change and reports it; a retried run
// is followed when this process works the store.
func lifecycle(ctx context.Context, g *globals, dbURL string, change func(context.Context, *runner.Runner) (runner.Run, error), follow bool) error {
	if err := requireStore(ctx, g, dbURL); err != nil {
		return err
	}
	reg, err := g.registry()
	if err != nil {
		return err
	}
	prog := newProgress(g.stdout)
	r, holder, stop, err := joinRunner(ctx, g, dbURL, reg, prog.observe)
	if err != nil {
		return err
	}
	defer stop()
	run, err := change(ctx, r)
	if errors.Is(err, runner.ErrLifecycle) || errors.Is(err, runner.ErrNotFound) {
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	if err != nil {
		return err
	}
	switch {
	case !follow:
		settleSlack(ctx, g, r, run.ID)
		say(g.stdout, "%s %s", run.ID, run.Status)
		if run.Error != "" {
			say(g.stdout, ": %s", run.Error)
		}
		if !run.ClosedAt.IsZero() {
			say(g.stdout, "; closed by %s: %s", run.ClosedBy, run.CloseNote)
		}
		sayln(g.stdout)
		return nil
	case holder != "":
		say(g.stdout, "%s will run again (retry %d); another stanch process works this store and takes it up now: %s\n", run.ID, run.Generation, holder)
		return nil
	}
	return prog.followToEnd(ctx, g, r, run.ID)
}
