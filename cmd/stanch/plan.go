package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/runner"
)

func newPlanCmd(g *globals) *cobra.Command {
	var playbookPath, alertPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plan --playbook FILE --alert FILE",
		Short: "Show what a run would do, changing nothing",
		Long: `Show, for every step, whether it would run and why, and the exact API calls it would make
with their parameters. plan makes the same read-only calls a run makes first (for example
ListAccessKeys), so it reports what a run would really do now; it never makes a call that
changes anything and stores nothing.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if playbookPath == "" || alertPath == "" {
				return usageError{fmt.Errorf("plan needs --playbook FILE and --alert FILE")}
			}
			reg, pb, alerts, err := loadInputs(g, playbookPath, alertPath)
			if err != nil {
				return err
			}
			var reports []runner.PlanReport
			for _, a := range alerts {
				rep, err := runner.Plan(cmd.Context(), reg, pb, a)
				if err != nil {
					return err
				}
				reports = append(reports, rep)
			}
			if asJSON {
				return writeJSON(g, reports)
			}
			failed := false
			for i, rep := range reports {
				if len(reports) > 1 {
					if i > 0 {
						sayln(g.stdout)
					}
					say(g.stdout, "alert %d of %d: %s\n", i+1, len(reports), alerts[i].DedupKey)
				}
				printPlan(g, rep)
				for _, s := range rep.Steps {
					failed = failed || s.Error != ""
				}
			}
			if failed {
				return &exitError{code: exitFailed, msg: "some steps cannot be planned; see above"}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&playbookPath, "playbook", "", "playbook YAML file (required)")
	cmd.Flags().StringVar(&alertPath, "alert", "", "alert JSON file, or - for stdin (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plans as a JSON list (one per alert in the file)")
	return cmd
}

func printPlan(g *globals, rep runner.PlanReport) {
	if !rep.Matched {
		say(g.stdout, "playbook %s does not apply to this alert: %s\n", rep.Playbook, rep.Reason)
		return
	}
	say(g.stdout, "playbook %s applies: %s\n", rep.Playbook, rep.Reason)
	for i, s := range rep.Steps {
		say(g.stdout, "\n%d. %s (%s)\n", i+1, s.ID, s.Action)
		switch {
		case s.Error != "":
			say(g.stdout, "   cannot plan: %s\n", s.Error)
			continue
		case s.Pending != "":
			say(g.stdout, "   %s\n", s.Pending)
			if s.Approval != "" {
				say(g.stdout, "   %s\n", s.Approval)
			}
			continue
		case !s.WillRun:
			say(g.stdout, "   would be skipped: %s\n", s.Reason)
			continue
		}
		if s.Reason != "" {
			say(g.stdout, "   would run: %s\n", s.Reason)
		} else {
			sayln(g.stdout, "   would run")
		}
		if s.Approval != "" && s.Settled != "" {
			say(g.stdout, "   asks nobody: it would change nothing (%s)\n", s.Settled)
		} else if s.Approval != "" {
			say(g.stdout, "   %s\n", s.Approval)
		}
		if s.Summary != "" {
			say(g.stdout, "   %s\n", s.Summary)
		}
		printEffects(g, "   ", s.Effects)
		for _, c := range s.Calls {
			say(g.stdout, "   %s %s:%s(%s)\n", callMark(c), c.Service, c.Operation, formatParams(c.Params))
		}
	}
}

// printEffects lists what a step changes, irreversible changes marked.
func printEffects(g *globals, indent string, effects []actions.Effect) {
	if len(effects) == 0 {
		return
	}
	say(g.stdout, "%sit would:\n", indent)
	for _, e := range effects {
		mark := "•"
		if e.Irreversible {
			mark = "⚠"
		}
		say(g.stdout, "%s  %s %s\n", indent, mark, e)
	}
}

func callMark(c actions.Call) string {
	switch {
	case c.Mutates:
		return "would call"
	case c.Made:
		return "read     "
	default:
		return "would read"
	}
}

func formatParams(p map[string]any) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v, _ := json.Marshal(p[k])
		parts[i] = k + "=" + string(v)
	}
	return strings.Join(parts, ", ")
}
