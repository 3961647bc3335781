package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newVerifyCmd checks that runs' journals still hold together: each entry
// carries the hash of the one before it.
func newVerifyCmd(g *globals, dbURL *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [RUN…]",
		Short: "Check that runs' journals were not edited: name each entry where a chain breaks",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
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
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
