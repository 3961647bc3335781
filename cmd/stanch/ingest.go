package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/triggers"
)

func newIngestCmd(g *globals) *cobra.Command {
	var format, dbURL string
	var globs []string
	cmd := &cobra.Command{
		Use:   "ingest --playbooks GLOB [--format FORMAT] FILE|-",
		Short: "Turn a scanner's report into alerts and run the matching playbooks",
		Long: `Read findings and hand each to the playbooks it matches, as the webhooks do.

FORMAT is trufflehog (JSON lines from 'trufflehog … --json'), gitleaks (a JSON report from
'gitleaks … --report-format json'), eventbridge (a GuardDuty or AWS Health event, or a batch),
alert (a stanch Alert), or auto (the default: recognised from the content). Each finding keeps
its commit, file and line. Every alert is stored before anything runs.

When no other stanch process works the store, the runs are worked here and followed (exit codes
as for 'stanch run'); when one does (for example 'stanch serve'), they are queued for it and
ingest exits 0 at once.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(globs) == 0 {
				return usageError{errors.New("ingest needs --playbooks GLOB (the playbooks findings are matched against)")}
			}
			return ingest(cmd.Context(), g, format, args[0], globs, dbURL)
		},
	}
	cmd.Flags().StringVar(&format, "format", "auto", "auto, trufflehog, gitleaks, eventbridge or alert")
	cmd.Flags().StringArrayVar(&globs, "playbooks", nil, "playbook files or globs (repeatable; required)")
	cmd.Flags().StringVar(&dbURL, "database", runner.DefaultDatabaseURL(), "store: file:PATH (embedded SQLite) or postgres://USER@HOST/DB")
	return cmd
}

func parseFindings(format string, data []byte) ([]alert.Alert, error) {
	now := time.Now()
	switch format {
	case "auto":
		return triggers.ParseDocument(data, now)
	case "trufflehog":
		return triggers.ParseTruffleHog(data, now)
	case "gitleaks":
		return triggers.ParseGitleaks(data, now)
	case "eventbridge":
		return triggers.ParseEventBridge(data, now)
	case "alert":
		a, err := alert.Parse(data, now)
		return []alert.Alert{a}, err
	}
	return nil, usageError{fmt.Errorf("--format %q: want auto, trufflehog, gitleaks, eventbridge or alert", format)}
}

func ingest(ctx context.Context, g *globals, format, path string, globs []string, dbURL string) error {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(g.stdin, 64<<20))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return fmt.Errorf("read findings: %w", err)
	}
	alerts, err := parseFindings(format, data)
	if err != nil {
		if isUsage(err) {
			return err
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	reg, err := g.registry()
	if err != nil {
		return err
	}
	books, err := loadPlaybooks(g, reg, globs)
	if err != nil {
		return err
	}
	prog := newProgress(g.stdout)
	r, local, stop, err := joinRunner(ctx, g, dbURL, reg, prog.observe)
	if err != nil {
		return err
	}
	defer stop()
	var started []runner.Run
	for _, a := range alerts {
		sub, err := r.Submit(ctx, a, books)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "%s: %s %s", a.DedupKey, a.Credential.Kind, a.Credential.ID)
		if a.Location.Path != "" {
			fmt.Fprintf(g.stdout, " at %s:%d", a.Location.Path, a.Location.Line)
		}
		fmt.Fprintf(g.stdout, ": %d run(s) started, %d already existed, %d joined an open run, %d playbook(s) did not apply\n", len(sub.Started), len(sub.Existing), len(sub.Joined), len(sub.NotMatched))
		started = append(started, sub.Started...)
	}
	if !local {
		fmt.Fprintf(g.stdout, "%d alert(s) stored; another stanch process works this store and runs them\n", len(alerts))
		return nil
	}
	var worst *exitError
	for _, run := range started {
		done, err := prog.waitRun(ctx, r.Store(), run.ID, "")
		if err != nil {
			return err
		}
		if ee, ok := exitOf(conclude(g, done, databaseFlag(dbURL))); ok {
			worst = worse(worst, ee)
		}
	}
	if worst == nil {
		return nil
	}
	return worst
}
