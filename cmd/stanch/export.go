package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/record"
	"github.com/stanchhq/stanch/runner"
)

// exportPage is how many runs the export reads from the store at a time:
// the runs are written one by one, never all held at once.
const exportPage = 100

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
	// The export's live heap is a page of runs (a few MB) over the binary's
	// own; a tighter collector keeps its memory to that, whatever the
	// number of runs, for some 20% more time (make bench: 10,000 runs under
	// 100 MB RSS).
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	x := newExportWriter(out, format == "json")
	for {
		page, err := store.ListRuns(ctx, lf)
		if err != nil {
			return err
		}
		for _, run := range page {
			// The credential is not a column ListRuns filters on: a page
			// may keep none of its runs, and the next page is read all
			// the same (the loop ends on a short page, not an empty one).
			if credential != "" && run.Alert.Credential.ID != credential {
				continue
			}
			rec, err := record.Load(ctx, store, run)
			if err != nil {
				return err
			}
			if err := x.run(rec); err != nil {
				return fmt.Errorf("write run %s: %w", run.ID, err)
			}
		}
		if len(page) < lf.Limit {
			break
		}
		// The next page starts after the last run of this one, by
		// (created_at, id): runs created in the same microsecond are
		// neither skipped nor repeated.
		last := page[len(page)-1]
		lf.After = &runner.RunKey{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	return x.close()
}

// exportWriter writes runs as NDJSON lines or as the elements of one JSON
// array. Each run is encoded into one buffer that every run reuses, so
// that what the export holds stays one run's worth however many it writes.
type exportWriter struct {
	w     *bufio.Writer
	array bool
	n     int          // runs written
	buf   bytes.Buffer // the run being written
	enc   *json.Encoder
}

func newExportWriter(out io.Writer, array bool) *exportWriter {
	x := &exportWriter{w: bufio.NewWriterSize(out, 64<<10), array: array}
	x.enc = json.NewEncoder(&x.buf)
	return x
}

// run writes one run: a line of NDJSON, or one element of the array on a
// line of its own.
func (x *exportWriter) run(rec record.Run) error {
	x.buf.Reset()
	if err := x.enc.Encode(rec); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	line := bytes.TrimSuffix(x.buf.Bytes(), []byte("\n"))
	switch {
	case !x.array:
	case x.n == 0:
		_, _ = x.w.WriteString("[\n")
	default:
		_, _ = x.w.WriteString(",\n")
	}
	err := writeSafeJSON(x.w, line)
	if !x.array {
		err = x.w.WriteByte('\n')
	}
	x.n++
	// bufio.Writer keeps its first error and returns it from every later
	// call, so the last call's error is the run's: a closed pipe stops the
	// export at the run it happened in.
	return err
}

// close ends the array (an empty one is "[]") and flushes.
func (x *exportWriter) close() error {
	if x.array {
		if x.n == 0 {
			_, _ = x.w.WriteString("[]\n")
		} else {
			_, _ = x.w.WriteString("\n]\n")
		}
	}
	return x.w.Flush()
}

// writeSafeJSON writes JSON with the control characters that
// encoding/json leaves as they are (as writeJSON does) written as \u
// escapes, so that no line of the export can move a terminal's cursor or
// hide text. Printable ASCII, nearly all of a run, is copied as it is.
func writeSafeJSON(w *bufio.Writer, b []byte) error {
	start := 0
	for i := 0; i < len(b); {
		c := b[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, size := rune(c), 1
		if c >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(b[i:])
		}
		if !isControl(r) {
			i += size
			continue
		}
		_, _ = w.Write(b[start:i])
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			_, _ = w.WriteString(jsonEscape(r1) + jsonEscape(r2))
		} else {
			_, _ = w.WriteString(jsonEscape(r))
		}
		i += size
		start = i
	}
	_, err := w.Write(b[start:])
	return err
}

// jsonEscape is r as JSON's \uXXXX.
func jsonEscape(r rune) string {
	h := strconv.FormatInt(int64(r), 16)
	return `\u` + strings.Repeat("0", max(0, 4-len(h))) + h
}
