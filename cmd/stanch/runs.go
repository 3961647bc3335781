package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/runner"
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
			store, closeDB, err := openStore(cmd, dbURL)
			if err != nil {
				return err
			}
			defer closeDB()
			runs, err := store.ListRuns(cmd.Context(), runner.ListFilter{Status: status, Limit: limit})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g, runsJSON(runs))
			}
			if len(runs) == 0 {
				fmt.Fprintln(g.stdout, "no runs")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tPLAYBOOK\tSTATUS\tCREDENTIAL\tCREATED\tTOOK")
			for _, r := range runs {
				took := "-"
				if !r.FinishedAt.IsZero() {
					took = r.FinishedAt.Sub(r.CreatedAt).Round(time.Millisecond).String()
				}
				st := r.Status
				if r.WaitingStep != "" {
					st += " (" + r.WaitingStep + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Playbook, st, r.Alert.Credential.ID, r.CreatedAt.Local().Format("2006-01-02 15:04:05"), took)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&status, "status", "", "only runs with this status (pending, running, waiting_approval, succeeded, failed, cancelled)")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many runs (0 = all)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show RUN",
		Short: "Show a run: its steps and journal with timings",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, closeDB, err := openStore(cmd, dbURL)
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
			if showJSON {
				return writeJSON(g, map[string]any{"run": runsJSON([]runner.Run{run})[0], "steps": stepsJSON(steps), "journal": journal})
			}
			printRun(g, run, steps, journal)
			return nil
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")
	cmd.AddCommand(list, show)
	return cmd
}

func openStore(cmd *cobra.Command, dbURL string) (*runner.Store, func(), error) {
	db, err := runner.OpenDatabase(cmd.Context(), dbURL)
	if err != nil {
		return nil, nil, err
	}
	store := runner.NewStore(db, nil)
	if err := store.Migrate(cmd.Context()); err != nil {
		db.Close()
		return nil, nil, err
	}
	return store, func() { db.Close() }, nil
}

func printRun(g *globals, run runner.Run, steps map[string]runner.StepRecord, journal []runner.Entry) {
	fmt.Fprintf(g.stdout, "run       %s\nplaybook  %s (%s)\nstatus    %s\n", run.ID, run.Playbook, run.PlaybookFile, run.Status)
	fmt.Fprintf(g.stdout, "alert     %s: %s %s", run.Alert.DedupKey, run.Alert.Credential.Kind, run.Alert.Credential.ID)
	if run.Alert.Credential.Account != "" {
		fmt.Fprintf(g.stdout, " in %s", run.Alert.Credential.Account)
	}
	fmt.Fprintln(g.stdout)
	fmt.Fprintf(g.stdout, "created   %s\n", run.CreatedAt.Local().Format(time.RFC3339))
	if !run.FinishedAt.IsZero() {
		fmt.Fprintf(g.stdout, "finished  %s (took %s)\n", run.FinishedAt.Local().Format(time.RFC3339), run.FinishedAt.Sub(run.CreatedAt).Round(time.Millisecond))
	}
	if run.Error != "" {
		fmt.Fprintf(g.stdout, "error     step %s: %s\n", run.FailedStep, run.Error)
	}
	ordered := make([]runner.StepRecord, 0, len(steps))
	for _, s := range steps {
		ordered = append(ordered, s)
	}
	sort.Slice(ordered, func(i, j int) bool { return ordered[i].Seq < ordered[j].Seq })
	fmt.Fprintln(g.stdout, "\nsteps")
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
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\tattempts %d\t%s\t%s\n", s.StepID, s.Action, s.Status, s.Outcome, s.Attempts, took, oneLine(detail))
	}
	tw.Flush()
	fmt.Fprintln(g.stdout, "\njournal")
	for _, e := range journal {
		step := ""
		if e.StepID != "" {
			step = " " + e.StepID
			if e.Attempt > 0 {
				step += fmt.Sprintf("#%d", e.Attempt)
			}
		}
		fmt.Fprintf(g.stdout, "  +%-9s %-20s%s %s\n", e.At.Sub(run.CreatedAt).Round(time.Millisecond), e.Event, step, oneLine(e.Detail))
	}
}

type runJSON struct {
	ID          string    `json:"id"`
	Playbook    string    `json:"playbook"`
	Status      string    `json:"status"`
	DedupKey    string    `json:"dedup_key"`
	Credential  string    `json:"credential"`
	WaitingStep string    `json:"waiting_step,omitempty"`
	FailedStep  string    `json:"failed_step,omitempty"`
	Error       string    `json:"error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
}

func runsJSON(runs []runner.Run) []runJSON {
	out := make([]runJSON, len(runs))
	for i, r := range runs {
		out[i] = runJSON{ID: r.ID, Playbook: r.Playbook, Status: r.Status, DedupKey: r.DedupKey, Credential: r.Alert.Credential.ID,
			WaitingStep: r.WaitingStep, FailedStep: r.FailedStep, Error: r.Error, CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt}
	}
	return out
}

func stepsJSON(steps map[string]runner.StepRecord) []runner.StepRecord {
	out := make([]runner.StepRecord, 0, len(steps))
	for _, s := range steps {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

func writeJSON(g *globals, v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
