package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/record"
	"github.com/stanchhq/stanch/report"
	"github.com/stanchhq/stanch/runner"
)

func newReportCmd(g *globals) *cobra.Command {
	var dbURL, htmlPath, mdPath string
	cmd := &cobra.Command{
		Use:   "report RUN (--html FILE | --md FILE)…",
		Short: "Write a run's incident report: a self-contained HTML page, Markdown, or both",
		Long: `Write the incident report of a run: what leaked, a timeline of every step with the approval
waits and the time to contain, what the key was used for (from the aws.cloudtrail_impact step),
the alerts, approvals, every provider API call, the journal, and the journal's final hash with
how to verify it (docs/report.md).

--html writes one self-contained page (inline CSS and SVG; it loads nothing, so it opens offline);
--md writes Markdown for a GitHub issue or a post-mortem. FILE - is standard output.`,
		Example: `  stanch report run_01jw… --html report.html
  stanch report run_01jw… --md - | gh issue comment 42 --body-file -`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if htmlPath == "" && mdPath == "" {
				return usageError{errors.New("say what to write: --html FILE, --md FILE, or both (- is standard output)")}
			}
			if htmlPath == "-" && mdPath == "-" {
				return usageError{errors.New("--html and --md cannot both write to standard output: give one of them a file")}
			}
			return writeReports(cmd.Context(), g, dbURL, args[0], htmlPath, mdPath)
		},
	}
	cmd.Flags().StringVar(&dbURL, "database", runner.DefaultDatabaseURL(), "store: file:PATH (embedded SQLite) or postgres://USER@HOST/DB")
	cmd.Flags().StringVar(&htmlPath, "html", "", "write the HTML report to FILE (- for standard output)")
	cmd.Flags().StringVar(&mdPath, "md", "", "write the Markdown report to FILE (- for standard output)")
	return cmd
}

func writeReports(ctx context.Context, g *globals, dbURL, id, htmlPath, mdPath string) error {
	store, closeDB, err := openReadStore(ctx, g, dbURL)
	if err != nil {
		return err
	}
	defer closeDB()
	rec, err := record.LoadID(ctx, store, id)
	if errors.Is(err, runner.ErrNotFound) {
		return &exitError{code: exitFailed, msg: fmt.Sprintf("no run %s in this store: list the runs with stanch runs list%s", id, g.hint)}
	}
	if err != nil {
		return err
	}
	opts, err := reportOptions()
	if err != nil {
		return err
	}
	for _, out := range []struct {
		path  string
		write func(io.Writer, record.Run, report.Options) error
	}{{htmlPath, report.HTML}, {mdPath, report.Markdown}} {
		if out.path == "" {
			continue
		}
		var buf bytes.Buffer
		if err := out.write(&buf, rec, opts); err != nil {
			return err
		}
		if err := writeOutput(g, out.path, buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// reportOptions takes what a report needs beyond the record from this
// build's actions: which of them contain a credential.
func reportOptions() (report.Options, error) {
	reg, err := schemaRegistry()
	if err != nil {
		return report.Options{}, err
	}
	return report.Options{Containment: func(name string) bool { return containment(reg, name) }}, nil
}

func containment(reg *actions.Registry, name string) bool {
	a, ok := reg.Lookup(name)
	return ok && a.Spec().Containment
}

// writeOutput writes data to path, or to standard output for "-". A file
// is written beside its final name and renamed, so that a reader never
// sees half a report; it is private (0600) because a report tells what
// an attacker did in the account.
func writeOutput(g *globals, path string, data []byte) error {
	if path == "-" {
		_, err := g.stdout.Write(data)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
