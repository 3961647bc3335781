package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/playbooks"
)

// leaky is an alert as a careless caller could hand it over: every field
// holds a planted secret.
func leaky() alert.Alert {
	a := alert.Alert{
		Source: alert.SourceManual, Title: "Credentials " + planted.InTitle + " used",
		Credential: alert.Credential{ID: "AKIAIOSFODNN7EXAMPLE", Principal: "ci-bot/" + planted.NoDigit},
		Location: alert.Location{Repo: "acme/api", Path: "deploy/" + planted.InPath + "/settings.py", Commit: planted.NoUpper,
			URL: "https://ci.example.com/job/7?AWS_SECRET_ACCESS_KEY=" + url.QueryEscape(planted.InURL)},
		Raw: json.RawMessage(`{"Secret":"` + planted.InLiteral + `","note":"AKIAIOSFODNN7EXAMPLE` + planted.AfterKeyID + `"}`),
	}
	a.Normalise(time.Now())
	return a
}

// Steps whose messages, errors and outputs are made of the alert's
// fields, as playbook templates make them.
const leakySteps = `
name: leaky
steps:
  - id: title
    action: test.mark
    with: {name: "${{ alert.title + ' at ' + alert.location.url }}"}
  - id: path
    action: test.mark
    with: {name: "${{ alert.location.path }}", permanent: "${{ 'cannot read ' + alert.location.commit }}"}
`

// Whatever hands the runner an alert, nothing it stores holds a secret:
// the alert (twice), the journal, step messages, errors and outputs, the
// close note, River's jobs. Every text column of every table is read.
func TestStoreHoldsNoSecret(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, open)
			pb := b.playbook(t, leakySteps)
			sub, err := b.runner.Submit(context.Background(), leaky(), []*playbooks.Playbook{pb})
			require.NoError(t, err)
			require.Len(t, sub.Started, 1)
			planted.RequireNone(t, "the submission's alert", sub.Alert)
			run := b.waitStatus(t, sub.Started[0].ID, RunFailed)
			_, err = b.runner.Close(context.Background(), run.ID, "alice", "handled; the secret was "+planted.Random)
			require.NoError(t, err)
			// Straight to the store, too.
			_, err = b.runner.Store().CreateRunsBatch(context.Background(), []Intake{{Alert: func() alert.Alert { a := leaky(); a.DedupKey = "direct"; return a }(),
				Runs: []NewRun{{ID: "run_direct", Playbook: "leaky"}}}}, nil)
			require.NoError(t, err)
			// A step's outputs, nested as actions make them.
			require.NoError(t, b.runner.Store().FinishStep(context.Background(), "run_direct", "nested", StepEnd{Action: "test.mark", Status: StepSucceeded,
				Outputs: map[string]any{"findings": []map[string]any{{"event": "CreateUser " + planted.NoUpper}}, planted.InPath: []string{planted.Random}}}))

			dump := dumpTables(t, b.db)
			require.Contains(t, dump, "stanch_alerts", "the dump reads the tables")
			planted.RequireNone(t, "the store", dump)
			require.Contains(t, dump, alert.Redacted)
		})
	}
}

// dumpTables returns every row of every table, as text.
func dumpTables(t *testing.T, db *Database) string {
	t.Helper()
	ctx := context.Background()
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if db.Dialect == Postgres {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
	}
	rows, err := db.SQL.QueryContext(ctx, q)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rows.Err())
	rows.Close()
	var b strings.Builder
	for _, table := range tables {
		rows, err := db.SQL.QueryContext(ctx, `SELECT * FROM `+table)
		require.NoError(t, err)
		cols, err := rows.Columns()
		require.NoError(t, err)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			fmt.Fprintf(&b, "%s:", table)
			for i, v := range vals {
				if raw, ok := v.([]byte); ok {
					v = string(raw)
				}
				fmt.Fprintf(&b, " %s=%v", cols[i], v)
			}
			b.WriteString("\n")
		}
		require.NoError(t, rows.Err())
		rows.Close()
	}
	return b.String()
}
