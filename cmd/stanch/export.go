package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/runner"
)

// exportSchema names the version of the export's schema (docs/export.md).
const exportSchema = "stanch.export/v1"

// exportPage is how many runs the export reads from the store at a time:
// the runs are written one by one, never all held at once.
const exportPage = 100

// exportRunJSON is one run of stanch runs export: the run as runs show
// --json prints it, its journal with the hashes that chain it, and the
// chain's final hash. docs/export.md documents every field.
type exportRunJSON struct {
	Schema      string              `json:"schema"`
	Run         runJSON             `json:"run"`
	Alert       alert.Alert         `json:"alert"`
	Steps       []stepJSON          `json:"steps"`
	Approvals   []approvalJSON      `json:"approvals"`
	Journal     []hashedEntryJSON   `json:"journal"`
	FinalHash   string              `json:"final_hash"`
	ChainOK     bool                `json:"chain_ok"`
	ChainBreaks []runner.ChainBreak `json:"chain_breaks"`
}

type hashedEntryJSON struct {
	entryJSON
	PrevHash           string `json:"prev_hash"`
	Hash               string `json:"hash"`
	ChainedAtMigration bool   `json:"chained_at_migration,omitempty"`
}

// exportFilter is what runs export keeps.
type exportFilter struct {
	since, until, credential, playbook, status, format string
}

func newExportCmd(g *globals, dbURL *string) *cobra.Command {
	var f exportFilter
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write runs with their alerts, steps, approvals, journals and hashes, oldest first, as NDJSON or JSON",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			lf, err := f.listFilter()
			if err != nil {
				return err
			}
			store, closeDB, err := openReadStore(cmd.Context(), g, *dbURL)
			if err != nil {
				return err
			}
			defer closeDB()
			return exportRuns(cmd.Context(), store, lf, f.credential, f.format, g.stdout)
		},
	}
	cmd.Flags().StringVar(&f.since, "since", "", "only runs created at or after this time (RFC 3339, or a date: 2006-01-02)")
	cmd.Flags().StringVar(&f.until, "until", "", "only runs created before this time (RFC 3339, or a date: 2006-01-02)")
	cmd.Flags().StringVar(&f.credential, "credential", "", "only runs for the credential with this id (an access key id, say)")
	cmd.Flags().StringVar(&f.playbook, "playbook", "", "only runs of this playbook")
	cmd.Flags().StringVar(&f.status, "status", "", "only runs with this status ("+runStatusList()+")")
	cmd.Flags().StringVar(&f.format, "format", "ndjson", "ndjson (one run per line) or json (one array)")
	return cmd
}

func (f exportFilter) listFilter() (runner.ListFilter, error) {
	lf := runner.ListFilter{Status: runner.RunStatus(f.status), Playbook: f.playbook, Oldest: true, Limit: exportPage}
	if f.status != "" && !slices.Contains(runner.RunStatuses, runner.RunStatus(f.status)) {
		return lf, usageError{fmt.Errorf("--status %q: want one of %s", f.status, runStatusList())}
	}
	if f.format != "ndjson" && f.format != "json" {
		return lf, usageError{fmt.Errorf("--format %q: want ndjson or json", f.format)}
	}
	var err error
	if lf.Since, err = exportTime("--since", f.since); err != nil {
		return lf, err
	}
	if lf.Until, err = exportTime("--until", f.until); err != nil {
		return lf, err
	}
	return lf, nil
}

func exportTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", v, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, usageError{fmt.Errorf("%s %q: want a time as 2006-01-02T15:04:05Z07:00 or a date as 2006-01-02", flag, v)}
}

// exportRuns writes the runs lf keeps (and, when credential is set, only
// those for that credential) page by page, each run as soon as it is read.
func exportRuns(ctx context.Context, store *runner.Store, lf runner.ListFilter, credential, format string, out io.Writer) error {
	w := bufio.NewWriter(out)
	first := true
	if format == "json" {
		if _, err := w.WriteString("["); err != nil {
			return err
		}
	}
	for {
		page, err := store.ListRuns(ctx, lf)
		if err != nil {
			return err
		}
		for _, run := range page {
			if credential != "" && run.Alert.Credential.ID != credential {
				continue
			}
			rec, err := exportRun(ctx, store, run)
			if err != nil {
				return err
			}
			line, err := json.Marshal(rec)
			if err != nil {
				return fmt.Errorf("encode run %s: %w", run.ID, err)
			}
			sep := "\n"
			if format == "json" && !first {
				sep = ",\n"
			}
			if format == "ndjson" {
				sep = ""
			}
			if _, err := w.WriteString(sep + exportLine(line)); err != nil {
				return err
			}
			if format == "ndjson" {
				if err := w.WriteByte('\n'); err != nil {
					return err
				}
			}
			first = false
		}
		if len(page) < lf.Limit {
			break
		}
		last := page[len(page)-1]
		lf.After = &runner.RunKey{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	if format == "json" {
		end := "]\n"
		if !first {
			end = "\n]\n"
		}
		if _, err := w.WriteString(end); err != nil {
			return err
		}
	}
	return w.Flush()
}

func exportRun(ctx context.Context, store *runner.Store, run runner.Run) (exportRunJSON, error) {
	steps, err := store.Steps(ctx, run.ID)
	if err != nil {
		return exportRunJSON{}, err
	}
	approvals, err := store.Approvals(ctx, run.ID)
	if err != nil {
		return exportRunJSON{}, err
	}
	journal, check, err := store.HashedJournal(ctx, run.ID)
	if err != nil {
		return exportRunJSON{}, err
	}
	// The run, alert (redacted), steps and approvals as runs show --json
	// has them; the journal with its hashes.
	shown := runShow(run, steps, approvals, nil)
	out := exportRunJSON{Schema: exportSchema, Run: shown.Run, Alert: shown.Alert, Steps: shown.Steps, Approvals: shown.Approvals,
		Journal: make([]hashedEntryJSON, len(journal)), FinalHash: check.FinalHash, ChainOK: check.OK(), ChainBreaks: check.Breaks}
	if out.ChainBreaks == nil {
		out.ChainBreaks = []runner.ChainBreak{}
	}
	for i, e := range journal {
		out.Journal[i] = hashedEntryJSON{entryJSON: entryJSON{Seq: e.Seq, At: e.At, StepID: e.StepID, Attempt: e.Attempt, Event: e.Event, Detail: e.Detail},
			PrevHash: e.PrevHash, Hash: e.Hash, ChainedAtMigration: e.ChainedAtMigration}
	}
	return out, nil
}

// exportLine writes the control characters that JSON leaves as they
// are (as writeJSON does) as \u escapes, so that no line of the export
// can move a terminal's cursor or hide text.
func exportLine(b []byte) string {
	s := string(b)
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var sb strings.Builder
	for _, r := range s {
		if !isControl(r) {
			sb.WriteRune(r)
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			sb.WriteString(jsonEscape(r1) + jsonEscape(r2))
		} else {
			sb.WriteString(jsonEscape(r))
		}
	}
	return sb.String()
}

// jsonEscape is r as JSON's \uXXXX.
func jsonEscape(r rune) string {
	h := strconv.FormatInt(int64(r), 16)
	return `\u` + strings.Repeat("0", max(0, 4-len(h))) + h
}
