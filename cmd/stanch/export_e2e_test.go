package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/apicall"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/record"
	"github.com/stanchhq/stanch/runner"
)

// exported is the part of a run of stanch runs export that the test reads.
type exported struct {
	Schema string `json:"schema"`
	Run    struct {
		ID        string    `json:"id"`
		Playbook  string    `json:"playbook"`
		Status    string    `json:"status"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"run"`
	Alert struct {
		DedupKey   string `json:"dedup_key"`
		Title      string `json:"title"`
		Credential struct {
			ID string `json:"id"`
		} `json:"credential"`
	} `json:"alert"`
	Steps []struct {
		StepID string `json:"step_id"`
		Status string `json:"status"`
	} `json:"steps"`
	Approvals []json.RawMessage `json:"approvals"`
	Journal   []struct {
		Seq      int    `json:"seq"`
		Event    string `json:"event"`
		PrevHash string `json:"prev_hash"`
		Hash     string `json:"hash"`
	} `json:"journal"`
	FinalHash   string            `json:"final_hash"`
	ChainOK     bool              `json:"chain_ok"`
	ChainBreaks []json.RawMessage `json:"chain_breaks"`
}

// export runs stanch runs export on the test's store with args, requires
// it to succeed and no planted secret in what it writes, and returns its
// output.
func (e *e2e) export(t *testing.T, args ...string) string {
	t.Helper()
	r := e.stanch(nil, append([]string{"runs", "export", "--database", e.db}, args...)...)
	require.Equal(t, exitOK, r.code, r.stdout+r.stderr)
	planted.RequireNone(t, "runs export "+strings.Join(args, " "), r.stdout, r.stderr)
	return r.stdout
}

// parseNDJSON reads the runs of an NDJSON export, one a line.
func parseNDJSON(t *testing.T, out string) []exported {
	t.Helper()
	runs := []exported{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r exported
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		runs = append(runs, r)
	}
	require.NoError(t, sc.Err())
	return runs
}

// Two runs, one with secrets planted in its alert: runs export writes both
// in either format, with the schema's version, the redacted alert, steps,
// the chained journal and the final hash runs verify reports; its filters
// keep the runs they name; no planted secret leaves.
func TestRunsExport(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.runContain()
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	contained := runIDOf(t, res.stdout)

	other := filepath.Join(e.dir, "other.json")
	doc, err := json.Marshal(map[string]any{
		"source": "manual", "kind": "credential_exposed", "dedup_key": "manual:export:AKIAEXPORTEXAMPLE001",
		"title":      "Key and secret " + planted.Random + " pasted in chat",
		"credential": map[string]any{"provider": "aws", "kind": "access_key", "id": "AKIAEXPORTEXAMPLE001"},
		"raw":        map[string]any{"note": "the secret was " + planted.InTitle},
	})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(other, doc, 0o600))
	res = e.stanch(nil, "run", "--playbook", "testdata/contain.yaml", "--alert", other, "--database", e.db)
	otherID := runIDOf(t, res.stdout+res.stderr)

	export := func(args ...string) string { return e.export(t, args...) }
	ndjson := func(out string) []exported { return parseNDJSON(t, out) }

	lines := ndjson(export("--format", "ndjson"))
	require.Len(t, lines, 2)
	var array []exported
	require.NoError(t, json.Unmarshal([]byte(export("--format", "json")), &array))
	require.Equal(t, lines, array, "both formats hold the same runs")
	require.Equal(t, contained, lines[0].Run.ID, "oldest first")
	require.Equal(t, otherID, lines[1].Run.ID)

	verify := e.stanch(nil, "runs", "verify", "--json", "--database", e.db)
	require.Equal(t, exitOK, verify.code, verify.stdout+verify.stderr)
	var checks []struct {
		RunID     string `json:"run_id"`
		FinalHash string `json:"final_hash"`
	}
	require.NoError(t, json.Unmarshal([]byte(verify.stdout), &checks))
	finals := map[string]string{}
	for _, c := range checks {
		finals[c.RunID] = c.FinalHash
	}
	for _, r := range lines {
		require.Equal(t, "stanch.export/v1", r.Schema)
		require.Equal(t, "contain", r.Run.Playbook)
		require.NotEmpty(t, r.Alert.DedupKey)
		require.NotEmpty(t, r.Steps)
		require.NotNil(t, r.Approvals)
		require.True(t, r.ChainOK)
		require.Empty(t, r.ChainBreaks)
		require.NotEmpty(t, r.Journal)
		require.Equal(t, "run_created", r.Journal[0].Event)
		prev := ""
		for _, j := range r.Journal {
			require.Equal(t, prev, j.PrevHash, "entry %d chains to the one before", j.Seq)
			require.Len(t, j.Hash, 64)
			prev = j.Hash
		}
		require.Equal(t, prev, r.FinalHash, "the final hash is the last entry's")
		require.Equal(t, finals[r.Run.ID], r.FinalHash, "runs verify reports the same final hash")
	}
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", lines[0].Alert.Credential.ID)
	require.Equal(t, "identify", lines[0].Steps[0].StepID)
	require.NotContains(t, lines[1].Alert.Title, planted.Random, "the alert is redacted")

	// The filters.
	byCred := ndjson(export("--credential", "AKIAEXPORTEXAMPLE001"))
	require.Len(t, byCred, 1)
	require.Equal(t, otherID, byCred[0].Run.ID)
	byStatus := ndjson(export("--status", lines[0].Run.Status))
	require.NotEmpty(t, byStatus)
	for _, r := range byStatus {
		require.Equal(t, lines[0].Run.Status, r.Run.Status)
	}
	require.Len(t, ndjson(export("--playbook", "contain")), 2)
	require.Empty(t, ndjson(export("--playbook", "nope")))
	require.Equal(t, "[]\n", export("--playbook", "nope", "--format", "json"))
	since := lines[1].Run.CreatedAt.Format(time.RFC3339Nano)
	later := ndjson(export("--since", since))
	require.Len(t, later, 1)
	require.Equal(t, otherID, later[0].Run.ID)
	earlier := ndjson(export("--until", since))
	require.Len(t, earlier, 1)
	require.Equal(t, contained, earlier[0].Run.ID)
	require.Empty(t, ndjson(export("--since", "2999-01-01")))

	bad := e.stanch(nil, "runs", "export", "--format", "csv", "--database", e.db)
	require.NotEqual(t, exitOK, bad.code)
	require.Contains(t, bad.stderr, "want ndjson or json")
}

// pagedRun is a run the paging test wrote: what the export must show of it.
type pagedRun struct {
	id, playbook, status, credential string
	created                          time.Time
}

// The credentials of the --credential filter across pages: one with runs
// on the first and the last page only, one on the last page only.
const (
	credEarlyLate = "AKIAPAGESEARLYLATE01"
	credLastPage  = "AKIAPAGESLASTPAGE001"
)

// seedPagedRuns writes n runs into a fresh store at dbURL through the
// store API, seven at a time created in the same microsecond, with ids
// that do not follow the order they were written in; it returns them in
// the order the export must write them (created_at, then id).
func seedPagedRuns(t *testing.T, dbURL string, n int) []pagedRun {
	t.Helper()
	ctx := context.Background()
	db, err := runner.OpenDatabase(ctx, dbURL)
	require.NoError(t, err)
	defer db.Close()
	at := time.Time{}
	store := runner.NewStore(db, func() time.Time { return at })
	require.NoError(t, store.Migrate(ctx))
	statuses := []runner.RunStatus{runner.RunSucceeded, runner.RunFailed, runner.RunWaitingApproval, runner.RunCancelled, runner.RunPending}
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	const tie = 7
	var runs []pagedRun
	for g := 0; g*tie < n; g++ {
		// A minute and a microsecond apart: --since and --until are
		// exercised to the microsecond.
		at = base.Add(time.Duration(g) * (time.Minute + time.Microsecond))
		var items []runner.Intake
		for i := g * tie; i < min(n, (g+1)*tie); i++ {
			r := pagedRun{id: fmt.Sprintf("run_pages%05d", i*7919%100000), playbook: "contain", status: string(statuses[i%len(statuses)]),
				credential: fmt.Sprintf("AKIAPAGES%011d", i), created: at}
			if i%3 == 0 {
				r.playbook = "notify"
			}
			switch i {
			case 3, n - 10, n - 5:
				r.credential = credEarlyLate
			case n - 3:
				r.credential = credLastPage
			}
			runs = append(runs, r)
			items = append(items, runner.Intake{
				Alert: alert.Alert{Source: alert.SourceManual, Kind: alert.KindCredentialExposed, ReceivedAt: at, DedupKey: fmt.Sprintf("manual:pages:%03d", i),
					Title: fmt.Sprintf("Key %d pasted in chat", i), Credential: alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: r.credential}},
				Runs: []runner.NewRun{{ID: r.id, Playbook: r.playbook, PlaybookFile: r.playbook + ".yaml"}},
			})
		}
		got, err := store.CreateRunsBatch(ctx, items, nil)
		require.NoError(t, err)
		for _, it := range got {
			require.Len(t, it.Created, 1)
		}
	}
	for _, r := range runs {
		if r.status == string(runner.RunPending) {
			continue
		}
		u := runner.RunUpdate{Status: runner.RunStatus(r.status), Event: "run_" + r.status}
		if u.Status == runner.RunWaitingApproval {
			u.WaitingStep = "deactivate"
		}
		require.NoError(t, store.UpdateRun(ctx, r.id, u))
	}
	sort.Slice(runs, func(i, j int) bool {
		if !runs[i].created.Equal(runs[j].created) {
			return runs[i].created.Before(runs[j].created)
		}
		return runs[i].id < runs[j].id
	})
	return runs
}

// More runs than two pages of the export, seven at a time created in the
// same microsecond, two such ties straddling a page boundary: the export
// writes every run exactly once, oldest first (ties by id), in both
// formats, with each filter applied across the pages. --credential is
// applied after paging: pages that keep none of the runs do not end the
// export.
func TestRunsExportPages(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	n := 2*exportPage + 50
	runs := seedPagedRuns(t, e.db, n)
	for _, boundary := range []int{exportPage, 2 * exportPage} {
		require.Equal(t, runs[boundary-1].created, runs[boundary].created, "a tie on created_at straddles the page boundary at %d", boundary)
	}

	pages := map[string][]int{} // the pages (from 0) each credential's runs are on
	for i, r := range runs {
		pages[r.credential] = append(pages[r.credential], i/exportPage)
	}
	require.Equal(t, []int{0, 2, 2}, pages[credEarlyLate])
	require.Equal(t, []int{2}, pages[credLastPage])

	at := func(i int) string { return runs[i].created.Format(time.RFC3339Nano) }
	lateStatus := "" // the status of a run for credEarlyLate on the last page
	for _, r := range runs[2*exportPage:] {
		if r.credential == credEarlyLate {
			lateStatus = r.status
		}
	}
	cases := []struct {
		name string
		args []string
		keep func(pagedRun) bool
	}{
		{"all", nil, func(pagedRun) bool { return true }},
		{"since and until", []string{"--since", at(40), "--until", at(230)},
			func(r pagedRun) bool {
				return !r.created.Before(runs[40].created) && r.created.Before(runs[230].created)
			}},
		{"playbook", []string{"--playbook", "contain"}, func(r pagedRun) bool { return r.playbook == "contain" }},
		{"status", []string{"--status", "failed"}, func(r pagedRun) bool { return r.status == "failed" }},
		{"playbook, status and since", []string{"--playbook", "notify", "--status", "succeeded", "--since", at(exportPage)},
			func(r pagedRun) bool {
				return r.playbook == "notify" && r.status == "succeeded" && !r.created.Before(runs[exportPage].created)
			}},
		{"credential on the first and last pages", []string{"--credential", credEarlyLate}, func(r pagedRun) bool { return r.credential == credEarlyLate }},
		{"credential on the last page", []string{"--credential", credLastPage}, func(r pagedRun) bool { return r.credential == credLastPage }},
		{"credential and status", []string{"--credential", credEarlyLate, "--status", lateStatus},
			func(r pagedRun) bool { return r.credential == credEarlyLate && r.status == lateStatus }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var want []string
			for _, r := range runs {
				if c.keep(r) {
					want = append(want, r.id)
				}
			}
			require.NotEmpty(t, want, "the filter keeps runs")
			lines := parseNDJSON(t, e.export(t, append(c.args, "--format", "ndjson")...))
			require.Equal(t, want, exportedIDs(lines), "every run once, oldest first")
			jsonOut := e.export(t, append(c.args, "--format", "json")...)
			var array []exported
			require.NoError(t, json.Unmarshal([]byte(jsonOut), &array), "--format json is one JSON array")
			require.Equal(t, lines, array, "both formats hold the same runs")
			for i, r := range lines {
				require.False(t, i > 0 && r.Run.CreatedAt.Before(lines[i-1].Run.CreatedAt), "oldest first")
				require.Equal(t, "stanch.export/v1", r.Schema)
			}
		})
	}
	// Every page read, none kept.
	require.Empty(t, e.export(t, "--credential", "AKIAPAGESNOSUCHKEY01"))
	require.Equal(t, "[]\n", e.export(t, "--credential", "AKIAPAGESNOSUCHKEY01", "--format", "json"))
}

func exportedIDs(runs []exported) []string {
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.Run.ID)
	}
	return ids
}

// plantedRun writes into a fresh store at dbURL a run with the planted
// secrets everywhere a run's record takes text from: its alert (title,
// raw document, location) and an alert that joined it, a failed attempt,
// an effect, a step's message and outputs, a step's error, the API calls'
// errors, request ids and operations, the approval's message, plan,
// effects and approver, and the run's error. It goes through the store
// API, as the runner writes, then plants the secrets again in the stored
// alerts and call errors as a store written by an older build (whose
// rules missed a shape) would hold them: the export redacts those again.
func plantedRun(t *testing.T, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	db, err := runner.OpenDatabase(ctx, dbURL)
	require.NoError(t, err)
	defer db.Close()
	store := runner.NewStore(db, nil)
	require.NoError(t, store.Migrate(ctx))

	const id, key = "run_plantedexport000000000001", "AKIAPLANTEXPORT00001"
	leaked := func(relation string) alert.Alert {
		return alert.Alert{Source: alert.SourceManual, Kind: alert.KindCredentialExposed, ReceivedAt: time.Now(),
			DedupKey:   "manual:planted-export:" + relation,
			Title:      "Key " + key + " and secret " + planted.Random + " pasted in chat (" + relation + ")",
			Credential: alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: key, Account: "111122223333"},
			Location: alert.Location{Repo: "acme/payments", Path: "deploy/" + planted.InPath + "/settings.py",
				URL: "https://paste.example.com/view?secret=" + url.QueryEscape(planted.InURL)},
			Raw: json.RawMessage(`{"note":"the secret was ` + planted.InTitle + `","aws_secret_access_key":"` + planted.NoDigit +
				`","pair":"` + key + ` ` + planted.AfterKeyID + `","literal":"` + planted.InLiteral + `"}`)}
	}
	started, joined := leaked("started"), leaked("joined")
	run := []runner.NewRun{{ID: id, Playbook: "contain", Correlate: true}}
	got, err := store.CreateRunsBatch(ctx, []runner.Intake{{Alert: started, Runs: run}, {Alert: joined, Runs: run}}, nil)
	require.NoError(t, err)
	require.Len(t, got[0].Created, 1)
	require.Len(t, got[1].Joined, 1)

	// rotate: one attempt refused, the next done.
	a, err := store.BeginAttempt(ctx, id, "rotate", 0, "aws.rotate_key")
	require.NoError(t, err)
	require.NoError(t, store.AddCalls(ctx, id, "rotate", a.Number, []apicall.Call{{Service: "iam", Operation: "CreateAccessKey " + planted.NoUpper,
		Account: "111122223333", Region: "us-east-1", RequestID: "req-" + planted.InTitle, Outcome: apicall.Failed,
		Error: "InvalidClientTokenId " + planted.NoDigit, At: time.Now(), Duration: time.Millisecond}}))
	require.NoError(t, store.AttemptFailed(ctx, id, "rotate", a.Number, errors.New("signature for secret "+planted.NoUpper+" does not match"), time.Second))
	a, err = store.BeginAttempt(ctx, id, "rotate", 0, "aws.rotate_key")
	require.NoError(t, err)
	require.NoError(t, store.Effect(ctx, id, "rotate", a.Number, actions.Effect{Description: "stored " + key + " " + planted.AfterKeyID}, nil))
	require.NoError(t, store.FinishStep(ctx, id, "rotate", runner.StepEnd{Seq: 0, Action: "aws.rotate_key", Attempt: a.Number,
		Status: runner.StepSucceeded, Outcome: string(actions.Done), Message: "rotated; the old secret was " + planted.InLiteral,
		Outputs: map[string]any{"note": "secret " + planted.Random, "secret_access_key": planted.NoUpper, planted.InTitle: "as a field name"}}))

	// publish: approved by someone whose display name holds a secret,
	// then failed.
	_, err = store.RequestApproval(ctx, id, "publish", runner.ApprovalRequest{Approvers: []string{"security-oncall"},
		Message: "Publish the new secret " + planted.Random + "?", Deadline: time.Now().Add(time.Hour), Plan: "writes " + planted.NoDigit,
		Effects: []actions.Effect{{Description: "write " + planted.InPath + " to Vault"}}})
	require.NoError(t, err)
	_, _, err = store.Decide(ctx, id, "publish", runner.Approved, runner.Approver{ID: "U0PLANTED", Name: "Mallory " + planted.NoUpper}, "slack")
	require.NoError(t, err)
	a, err = store.BeginAttempt(ctx, id, "publish", 1, "vault.write")
	require.NoError(t, err)
	require.NoError(t, store.AddCalls(ctx, id, "publish", a.Number, []apicall.Call{{Service: "vault", Operation: "PUT /v1/secret/data/ci",
		Outcome: apicall.Failed, Error: "HTTP 403 " + planted.InLiteral, At: time.Now(), Duration: time.Millisecond}}))
	require.NoError(t, store.FinishStep(ctx, id, "publish", runner.StepEnd{Seq: 1, Action: "vault.write", Attempt: a.Number,
		Status: runner.StepFailed, Outcome: runner.OutcomeFailed, Error: "vault refused secret " + planted.InTitle}))
	require.NoError(t, store.UpdateRun(ctx, id, runner.RunUpdate{Status: runner.RunFailed, FailedStep: "publish",
		Error: "publish failed: " + planted.Random, Event: "run_failed", Detail: "step publish failed on " + planted.NoDigit}))

	// The stored alerts and call errors as an older build might have left
	// them.
	raw := func(a alert.Alert) string {
		doc, err := json.Marshal(a)
		require.NoError(t, err)
		return string(doc)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE stanch_runs SET alert = ? WHERE id = ?`, []any{raw(started), id}},
		{`UPDATE stanch_alerts SET alert = ? WHERE dedup_key = ?`, []any{raw(joined), joined.DedupKey}},
		{`UPDATE stanch_calls SET error = ? WHERE run_id = ? AND step_id = ?`, []any{"AccessDenied " + planted.NoDigit, id, "rotate"}},
	} {
		res, err := db.SQL.ExecContext(ctx, q.sql, q.args...)
		require.NoError(t, err)
		n, err := res.RowsAffected()
		require.NoError(t, err)
		require.EqualValues(t, 1, n, q.sql)
	}
	for _, q := range []string{`SELECT alert FROM stanch_runs`, `SELECT alert FROM stanch_alerts WHERE dedup_key = '` + joined.DedupKey + `'`,
		`SELECT error FROM stanch_calls WHERE step_id = 'rotate'`} {
		var stored string
		require.NoError(t, db.SQL.QueryRowContext(ctx, q).Scan(&stored))
		_, _, found := planted.Find(stored)
		require.True(t, found, "the store holds a planted secret for the export to redact: %s", q)
	}
	return id
}

// A run with the planted secrets in every field its record is made of:
// neither format of runs export holds a piece of one, and the fields that
// held them are exported (redacted), so the search looked at them.
func TestRunsExportPlanted(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	id := plantedRun(t, e.db)
	ndjson := e.export(t, "--format", "ndjson") // e.export requires no planted secret
	jsonOut := e.export(t, "--format", "json")
	var array []map[string]any
	require.NoError(t, json.Unmarshal([]byte(jsonOut), &array))
	require.Len(t, array, 1)
	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(ndjson), &line))
	require.Equal(t, array[0], line)

	rec := line
	require.Equal(t, id, rec["run"].(map[string]any)["id"])
	require.Contains(t, rec["run"].(map[string]any)["error"], "publish failed")
	alert := rec["alert"].(map[string]any)
	require.Contains(t, alert["title"], "pasted in chat")
	require.Contains(t, string(mustJSON(t, alert["raw"])), "the secret was")
	require.Len(t, rec["alerts"], 2, "the alert that started the run and the one that joined it")
	steps := rec["steps"].([]any)
	require.Len(t, steps, 2)
	require.Contains(t, steps[0].(map[string]any)["message"], "the old secret was")
	require.Contains(t, steps[0].(map[string]any)["outputs"], "note")
	require.Contains(t, steps[1].(map[string]any)["error"], "vault refused secret")
	calls := rec["calls"].([]any)
	require.Len(t, calls, 2)
	for _, c := range calls {
		require.NotEmpty(t, c.(map[string]any)["error"])
	}
	approvals := rec["approvals"].([]any)
	require.Len(t, approvals, 1)
	approval := approvals[0].(map[string]any)
	require.Contains(t, approval["message"], "Publish the new secret")
	require.Contains(t, approval["decided_by_name"], "Mallory")
	var events []string
	for _, j := range rec["journal"].([]any) {
		events = append(events, j.(map[string]any)["event"].(string))
	}
	require.Subset(t, events, []string{"alert_joined", "attempt_failed", "effect", "approval_approved", "step_failed", "run_failed"})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return data
}

// The export's writer: runs as NDJSON lines or one array, each run on a
// line of its own, and the control characters encoding/json leaves as
// they are (DEL, C1 controls, bidirectional and tag format characters,
// one of them outside the BMP) written as \u escapes that decode back to
// the same text; other non-ASCII text is written as it is.
func TestExportWriter(t *testing.T) {
	t.Parallel()
	tricky := "a\x7fb\u0085c\u202ed\U000E0001e é 😀"
	runs := []record.Run{{Schema: record.Schema, Run: record.RunInfo{ID: "run_1", Error: tricky}}, {Schema: record.Schema, Run: record.RunInfo{ID: "run_2"}}}
	for _, array := range []bool{false, true} {
		var out strings.Builder
		x := newExportWriter(&out, array)
		for _, r := range runs {
			require.NoError(t, x.run(r))
		}
		require.NoError(t, x.close())
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		for _, l := range lines {
			require.False(t, strings.ContainsFunc(l, isControl), "a raw control character in %q", l)
		}
		require.Contains(t, out.String(), `a\u007fb\u0085c\u202ed\udb40\udc01e é 😀`)
		var got []record.Run
		if array {
			require.Equal(t, []string{"[", lines[1], lines[2], "]"}, lines)
			require.True(t, strings.HasSuffix(lines[1], "},"))
			require.NoError(t, json.Unmarshal([]byte(out.String()), &got))
		} else {
			require.Len(t, lines, 2)
			got = make([]record.Run, len(lines))
			for i, l := range lines {
				require.NoError(t, json.Unmarshal([]byte(l), &got[i]))
			}
		}
		require.Equal(t, tricky, got[0].Run.Error)
		require.Equal(t, "run_2", got[1].Run.ID)
	}
	var empty strings.Builder
	require.NoError(t, newExportWriter(&empty, true).close())
	require.Equal(t, "[]\n", empty.String())
}
