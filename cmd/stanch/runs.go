package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/record"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/slack/render"
)

func newRunsCmd(g *globals) *cobra.Command {
	var dbURL string
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs and show their journals",
	}
	cmd.PersistentFlags().StringVar(&dbURL, "database", runner.DefaultDatabaseURL(), "store: file:PATH (embedded SQLite) or postgres://USER@HOST/DB")

	var status string
	var limit int
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if status != "" && !slices.Contains(runner.RunStatuses, runner.RunStatus(status)) {
				return usageError{fmt.Errorf("--status %q: want one of %s", status, runStatusList())}
			}
			store, closeDB, err := openReadStore(cmd.Context(), g, dbURL)
			if err != nil {
				return err
			}
			defer closeDB()
			runs, err := store.ListRuns(cmd.Context(), runner.ListFilter{Status: runner.RunStatus(status), Limit: limit})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g, record.Runs(runs))
			}
			if len(runs) == 0 {
				sayln(g.stdout, "no runs")
				return printUnactedHint(cmd.Context(), g, store)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			say(tw, "RUN\tPLAYBOOK\tSTATUS\tCREDENTIAL\tCREATED\tTOOK\n") // a format: its tabs are the table's
			for _, r := range runs {
				took := "-"
				if !r.FinishedAt.IsZero() {
					took = r.FinishedAt.Sub(r.CreatedAt).Round(time.Millisecond).String()
				}
				st := string(r.Status)
				if r.WaitingStep != "" {
					st += " (" + r.WaitingStep + ")"
				}
				if !r.ClosedAt.IsZero() {
					st += ", closed"
				}
				say(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Playbook, st, r.Alert.Credential.ID, r.CreatedAt.Local().Format("2006-01-02 15:04:05"), took)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return printUnactedHint(cmd.Context(), g, store)
		},
	}
	list.Flags().StringVar(&status, "status", "", "only runs with this status ("+runStatusList()+")")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many runs (0 = all)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show RUN",
		Short: "Show a run: its steps and journal with timings",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, closeDB, err := openReadStore(cmd.Context(), g, dbURL)
			if err != nil {
				return err
			}
			defer closeDB()
			ctx := cmd.Context()
			run, err := store.Run(ctx, args[0])
			if err != nil {
				return err
			}
			steps, err := store.Steps(ctx, run.ID)
			if err != nil {
				return err
			}
			journal, err := store.Journal(ctx, run.ID)
			if err != nil {
				return err
			}
			approvals, err := store.Approvals(ctx, run.ID)
			if err != nil {
				return err
			}
			if showJSON {
				return writeJSON(g, record.ShowRun(run, steps, approvals, journal))
			}
			printRun(g, run, steps, journal)
			printApprovals(g, run, approvals)
			return nil
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")
	cmd.AddCommand(list, show, newRetryCmd(g, &dbURL), newCancelCmd(g, &dbURL), newCloseCmd(g, &dbURL), newVerifyCmd(g, &dbURL), newExportCmd(g, &dbURL))
	return cmd
}

func printRun(g *globals, run runner.Run, steps map[string]runner.StepRecord, journal []runner.Entry) {
	say(g.stdout, "run       %s\nplaybook  %s (%s)\nstatus    %s\n", run.ID, run.Playbook, run.PlaybookFile, run.Status)
	say(g.stdout, "alert     %s: %s %s", run.Alert.DedupKey, run.Alert.Credential.Kind, run.Alert.Credential.ID)
	if run.Alert.Credential.Account != "" {
		say(g.stdout, " in %s", run.Alert.Credential.Account)
	}
	sayln(g.stdout)
	if run.Owner.Known() {
		say(g.stdout, "owner     %s (identified by step %s): every step acts there\n", run.Owner, run.Owner.By)
	}
	say(g.stdout, "created   %s\n", run.CreatedAt.Local().Format(time.RFC3339))
	if run.Generation > 0 {
		say(g.stdout, "retried   %d time(s)\n", run.Generation)
	}
	if !run.FinishedAt.IsZero() {
		say(g.stdout, "finished  %s (took %s)\n", run.FinishedAt.Local().Format(time.RFC3339), run.FinishedAt.Sub(run.CreatedAt).Round(time.Millisecond))
	}
	if run.Error != "" && run.FailedStep != "" {
		say(g.stdout, "error     step %s: %s\n", run.FailedStep, run.Error)
	} else if run.Error != "" {
		say(g.stdout, "ended     %s\n", run.Error)
	}
	if !run.ClosedAt.IsZero() {
		say(g.stdout, "closed    %s by %s: %s\n", run.ClosedAt.Local().Format(time.RFC3339), run.ClosedBy, run.CloseNote)
	}
	ordered := make([]runner.StepRecord, 0, len(steps))
	for _, s := range steps {
		ordered = append(ordered, s)
	}
	sort.Slice(ordered, func(i, j int) bool { return ordered[i].Seq < ordered[j].Seq })
	say(g.stdout, "\nsteps\n") // a format: its line breaks are stanch's
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	for _, s := range ordered {
		took := "-"
		if !s.EndedAt.IsZero() && !s.StartedAt.IsZero() {
			took = s.EndedAt.Sub(s.StartedAt).Round(time.Millisecond).String()
		}
		detail := s.Message
		if s.Error != "" {
			detail = s.Error
		}
		say(tw, "  %s\t%s\t%s\t%s\tattempts %d\t%s\t%s\n", s.StepID, s.Action, s.Status, s.Outcome, s.Attempts, took, oneLine(detail))
	}
	tw.Flush()
	printImpact(g, ordered)
	say(g.stdout, "\njournal\n") // a format: its line breaks are stanch's
	for _, e := range journal {
		step := ""
		if e.StepID != "" {
			step = " " + e.StepID
			if e.Attempt > 0 {
				step += fmt.Sprintf("#%d", e.Attempt)
			}
		}
		detail := e.Detail
		if e.Event == "calls_recorded" {
			// The digest is for runs verify and the export; people read
			// which calls were made.
			detail, _, _ = strings.Cut(detail, ", sha256 ")
		}
		say(g.stdout, "  +%-9s %-20s%s %s\n", e.At.Sub(run.CreatedAt).Round(time.Millisecond), e.Event, step, oneLine(detail))
	}
}

// printImpact prints the run's impact section: what each provider could
// tell of the credential's use (CloudTrail's events, a GitHub token's audit
// log, a Vault token's lookup, or that the provider keeps no usage history
// by token), as the incident message shows it. Nothing when no step tells.
func printImpact(g *globals, ordered []runner.StepRecord) {
	steps := make([]actions.StepReport, len(ordered))
	for i, s := range ordered {
		steps[i] = actions.StepReport{ID: s.StepID, Action: s.Action, Status: string(s.Status), Outputs: s.Outputs}
	}
	parts := render.Impact(steps)
	if len(parts) == 0 {
		return
	}
	say(g.stdout, "\nimpact\n") // a format: its line breaks are stanch's
	for _, p := range parts {
		say(g.stdout, "  %s (step %s, %s)\n", p.Title, p.StepID, p.Action)
		for _, l := range p.Lines {
			say(g.stdout, "    %s\n", l)
		}
	}
}

// printApprovals lists the run's approvals: what each step was to change,
// and who decided.
func printApprovals(g *globals, run runner.Run, approvals map[string]runner.Approval) {
	if len(approvals) == 0 {
		return
	}
	ids := make([]string, 0, len(approvals))
	for id := range approvals {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return approvals[ids[i]].RequestedAt.Before(approvals[ids[j]].RequestedAt) })
	say(g.stdout, "\napprovals\n") // a format: its line breaks are stanch's
	for _, id := range ids {
		a := approvals[id]
		state := "waiting until " + a.Deadline.Local().Format(time.RFC3339)
		if a.Decision != "" {
			state = fmt.Sprintf("%s by %s via %s at %s", a.Decision, a.DecidedBy, a.Via, a.DecidedAt.Local().Format(time.RFC3339))
		} else if runner.Terminal(run.Status) {
			state = "never decided: the run ended"
		}
		say(g.stdout, "  %s: %s\n", id, state)
		if a.Plan != "" {
			say(g.stdout, "    %s\n", oneLine(a.Plan))
		}
		printEffects(g, "    ", a.Effects)
	}
}

// runStatusList names every run status, for help and errors.
func runStatusList() string {
	names := make([]string, len(runner.RunStatuses))
	for i, s := range runner.RunStatuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
