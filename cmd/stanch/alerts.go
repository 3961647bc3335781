package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/runner"
)

func newAlertsCmd(g *globals) *cobra.Command {
	var dbURL string
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Show alerts that started no run",
	}
	cmd.PersistentFlags().StringVar(&dbURL, "database", runner.DefaultDatabaseURL(), "store: file:PATH (embedded SQLite) or postgres://USER@HOST/DB")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List alerts that arrived but could not be acted on, with why",
		Long: `List the alerts stanch received but could not act on, so that they started no run: a GitHub
alert the token may not read (GitHub answers 404), an AWS secret whose key id cannot be found,
a resolution that failed its last attempt, an SQS message with nothing readable in it. Each shows
why and what to fix, how many times it arrived, and when. An alert that is acted on later (its
webhook redelivered once the token was fixed) leaves the list.

Reports given to 'stanch ingest' and 'stanch run' are not listed: those commands name on stderr
what they could not act on at once (and ingest then exits 1).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, closeDB, err := openReadStore(cmd.Context(), g, dbURL)
			if err != nil {
				return err
			}
			defer closeDB()
			unacted, err := store.ListUnacted(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g, unactedJSON(unacted))
			}
			if len(unacted) == 0 {
				sayln(g.stdout, "no alerts without a run: stanch could act on every alert it received")
				return nil
			}
			say(g.stdout, "%d alert(s) could not be acted on and started no run:\n", len(unacted))
			for _, u := range unacted {
				say(g.stdout, "\n%s  (%s %s; %d time(s), last %s)\n  %s\n", u.DedupKey, u.Source, u.Reference, u.Count, u.LastAt.Local().Format("2006-01-02 15:04:05"), u.Reason)
			}
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}

type unactedOut struct {
	DedupKey  string    `json:"dedup_key"`
	Source    string    `json:"source"`
	Reference string    `json:"reference"`
	Reason    string    `json:"reason"`
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// SlackTS is the Slack message that showed it, once posted.
	SlackChannel string `json:"slack_channel,omitempty"`
	SlackTS      string `json:"slack_ts,omitempty"`
}

func unactedJSON(us []runner.Unacted) []unactedOut {
	out := make([]unactedOut, 0, len(us))
	for _, u := range us {
		out = append(out, unactedOut{DedupKey: u.DedupKey, Source: u.Source, Reference: u.Reference, Reason: u.Reason, Count: u.Count,
			FirstSeen: u.FirstAt, LastSeen: u.LastAt, SlackChannel: u.Channel, SlackTS: u.TS})
	}
	return out
}

// printUnactedHint says, under a list of runs, that some alerts started
// none: those are easy to miss in a list of what did run.
func printUnactedHint(ctx context.Context, g *globals, store *runner.Store) error {
	n, err := store.CountUnacted(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		say(g.stdout, "%d alert(s) could not be acted on: see stanch alerts list\n", n)
	}
	return nil
}
