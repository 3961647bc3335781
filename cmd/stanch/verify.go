package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/runner"
)

// newVerifyCmd checks that runs' journals still hold together: each entry
// carries the hash of the one before it.
func newVerifyCmd(g *globals, dbURL *string) *cobra.Command {
	var asJSON bool
	var anchor string
	cmd := &cobra.Command{
		Use:   "verify [RUN…]",
		Short: "Check that runs' journals were not edited: name each entry where a chain breaks",
		Long: `Check that runs' journals were not edited: each entry carries the hash of the one before it, so an
entry edited, deleted, reordered or inserted breaks the chain there (docs/runs.md). Prints each run's
final hash: compare it with a copy kept elsewhere.

--anchor SEQ:HASH checks one run against such a copy: the Slack incident message and the GitHub
resolution comment carry the hash of the journal's last entry when they were written ("journal entry 23,
sha256 4c1f…"). When the chain holds and entry SEQ still has HASH, nothing up to it changed since.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if anchor != "" && len(args) != 1 {
				return usageError{fmt.Errorf("--anchor checks one run: give its id")}
			}
			store, closeDB, err := openReadStore(ctx, g, *dbURL)
			if err != nil {
				return err
			}
			defer closeDB()
			ids := args
			if len(ids) == 0 {
				if ids, err = store.JournalRunIDs(ctx); err != nil {
					return err
				}
			} else {
				for _, id := range ids {
					if _, err := store.Run(ctx, id); err != nil {
						return err
					}
				}
			}
			type checked struct {
				RunID              string `json:"run_id"`
				OK                 bool   `json:"ok"`
				Entries            int    `json:"entries"`
				ChainedAtMigration int    `json:"chained_at_migration"`
				FinalHash          string `json:"final_hash"`
				Breaks             any    `json:"breaks"`
			}
			out := make([]checked, 0, len(ids))
			broken := 0
			for _, id := range ids {
				c, err := store.VerifyJournal(ctx, id)
				if err != nil {
					return err
				}
				if !c.OK() {
					broken++
				}
				out = append(out, checked{RunID: c.RunID, OK: c.OK(), Entries: c.Entries, ChainedAtMigration: c.ChainedAtMigration, FinalHash: c.FinalHash, Breaks: c.Breaks})
				if asJSON {
					continue
				}
				if c.OK() {
					say(g.stdout, "%s  ok: %d entries, final hash %s\n", c.RunID, c.Entries, c.FinalHash)
				} else {
					say(g.stdout, "%s  BROKEN: %d entries, %d break(s)\n", c.RunID, c.Entries, len(c.Breaks))
					for _, b := range c.Breaks {
						if b.Seq == 0 { // a call no entry anchors
							say(g.stdout, "  calls: %s: %s\n", b.Problem, b.Detail)
							continue
						}
						say(g.stdout, "  entry %d: %s: %s\n", b.Seq, b.Problem, b.Detail)
					}
				}
				if c.ChainedAtMigration > 0 {
					say(g.stdout, "  %d entries were written before the journal had hashes and chained when the store was migrated: the chain shows changes made to them after that, not before\n", c.ChainedAtMigration)
				}
			}
			if asJSON {
				if err := writeJSON(g, out); err != nil {
					return err
				}
			} else if len(ids) == 0 {
				sayln(g.stdout, "no runs")
			}
			if broken > 0 {
				return &exitError{code: exitFailed, msg: fmt.Sprintf("the journal of %d run(s) does not verify", broken)}
			}
			if anchor != "" {
				return checkAnchor(ctx, g, store, args[0], anchor)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&anchor, "anchor", "", "SEQ:HASH from a copy kept elsewhere (the Slack message, the GitHub comment): check that entry SEQ still has HASH")
	return cmd
}

// checkAnchor checks that entry seq of run's journal (whose chain holds)
// has the hash a copy kept elsewhere says it had.
func checkAnchor(ctx context.Context, g *globals, store *runner.Store, run, anchor string) error {
	seqText, want, ok := strings.Cut(anchor, ":")
	seq, err := strconv.Atoi(seqText)
	if !ok || err != nil || seq < 1 || len(want) != 64 {
		return usageError{fmt.Errorf("--anchor %q: want SEQ:HASH, an entry's number and its 64 hex digits, as the Slack message or GitHub comment shows them", anchor)}
	}
	journal, _, err := store.HashedJournal(ctx, run)
	if err != nil {
		return err
	}
	for _, e := range journal {
		if e.Seq != seq {
			continue
		}
		if !strings.EqualFold(e.Hash, want) {
			return &exitError{code: exitFailed, msg: fmt.Sprintf("entry %d of run %s has hash %s, not %s as the copy says: the journal up to it was rewritten", seq, run, e.Hash, want)}
		}
		say(g.stdout, "%s  anchor holds: entry %d has hash %s, as the copy says: nothing up to it changed\n", run, seq, e.Hash)
		return nil
	}
	return &exitError{code: exitFailed, msg: fmt.Sprintf("run %s has no entry %d, which the copy names: the journal was cut short", run, seq)}
}
