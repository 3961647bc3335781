package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/slack"
)

func newApproveCmd(g *globals) *cobra.Command {
	var by, dbURL string
	var deny bool
	cmd := &cobra.Command{
		Use:   "approve RUN STEP --by NAME [--deny]",
		Short: "Approve (or deny) a step that waits for approval, and resume its run",
		Long: `Record a decision on a step that waits for approval, then resume the run.

NAME must be one of the step's approvers. It is recorded as who decided, with the name
Slack shows for it when NAME is a Slack user id (U…) and Slack is configured. The first
decision wins: a second one changes nothing and says who decided first. When no other
stanch process works this database, the run continues here and is followed like 'stanch
run' (same exit codes); otherwise the process that works it (for example 'stanch serve',
named by its pid) resumes it at once.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if by == "" {
				return usageError{fmt.Errorf("approve needs --by NAME (who decides; must be one of the step's approvers)")}
			}
			return approve(cmd.Context(), g, args[0], args[1], by, deny, dbURL)
		},
	}
	cmd.Flags().StringVar(&by, "by", "", "who decides (required; must be one of the step's approvers)")
	cmd.Flags().BoolVar(&deny, "deny", false, "deny instead of approve: the step does not run and the run is cancelled")
	cmd.Flags().StringVar(&dbURL, "database", runner.DefaultDatabaseURL(), "store: file:PATH (embedded SQLite) or postgres://USER@HOST/DB")
	return cmd
}

func approve(ctx context.Context, g *globals, runID, stepID, by string, deny bool, dbURL string) error {
	if err := requireStore(ctx, g, dbURL); err != nil {
		return err
	}
	reg, err := g.registry()
	if err != nil {
		return err
	}
	prog := newProgress(g.stdout)
	r, holder, stop, err := joinRunner(ctx, g, dbURL, reg, prog.observe)
	local := holder == ""
	if err != nil {
		return err
	}
	defer stop()
	decision := runner.Approved
	if deny {
		decision = runner.Denied
	}
	who := runner.Approver{ID: by, Name: approverName(ctx, g, by)}
	a, first, err := r.Decide(ctx, runner.Decision{RunID: runID, StepID: stepID, Decision: decision, By: who.ID, ByName: who.Name, Via: "cli"})
	if err != nil {
		return err
	}
	run, err := r.Store().Run(ctx, runID)
	if err != nil {
		return err
	}
	if first {
		say(g.stdout, "step %s of %s %s by %s\n", stepID, runID, decision, who)
	} else {
		say(g.stdout, "step %s of %s was already %s by %s at %s (via %s); nothing changed\n",
			stepID, runID, a.Decision, runner.Approver{ID: a.DecidedBy, Name: a.DecidedByName}, a.DecidedAt.Format(time.RFC3339), a.Via)
		if a.Decision != decision {
			// Asked for one thing, the other happened: scripts must see it.
			settleSlack(ctx, g, r, runID)
			return &exitError{code: exitFailed, msg: fmt.Sprintf("step %s was %s, not %s: the first decision stands (run %s is %s)", stepID, a.Decision, decision, runID, run.Status)}
		}
		if runner.Terminal(run.Status) || !local {
			return nil
		}
		// The process that had the decision may have died before the run
		// finished: continue it here.
		say(g.stdout, "%s is %s; continuing it\n", runID, run.Status)
	}
	if !local {
		say(g.stdout, "another stanch process works this database; it resumes the run now: %s\n", holder)
		return nil
	}
	return prog.followToEnd(ctx, g, r, runID)
}

// approverName is the name recorded beside --by. A Slack user id (the
// same id a click records) gets the name Slack shows for it, when Slack is
// configured, so that a decision typed and one clicked read alike; it is
// empty when Slack cannot say, as for a click. Any other --by is a name
// already and is recorded as it is.
func approverName(ctx context.Context, g *globals, by string) string {
	if !slack.IsUserID(by) {
		return by
	}
	client, err := g.slackClient()
	if err != nil || !client.Configured() {
		return ""
	}
	// A name is worth a moment, not a failed approval.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	name, err := client.UserName(ctx, by)
	if err != nil {
		g.logger().Warn("the approver's name was not found in Slack; the decision is recorded with the id only", "by", by, "error", err)
	}
	return name
}
