package aws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// errLeaseLost stands for the runner's refusal of a checkpoint once
// another replica has taken the step over.
var errLeaseLost = errors.New("the step belongs to another process")

// impactAttempt runs the impact step with a fresh provider (another
// replica) that saves a checkpoint after every page. Checkpoint refuses the
// save after the stop-th (none when stop is 0); saved are the states it
// accepted.
type impactAttempt struct {
	saved []json.RawMessage
	logs  bytes.Buffer
	// unsaved runs without a checkpoint, as a step that no runner saves.
	unsaved bool
}

func (a *impactAttempt) run(t *testing.T, b backend, with map[string]any, resumed []byte, stop int) (actions.Result, error) {
	t.Helper()
	p := b.provider(t)
	p.checkpointEvery = 0
	var impact actions.Action
	for _, act := range Actions(p) {
		if act.Spec().Name == "aws.cloudtrail_impact" {
			impact = act
		}
	}
	var mu sync.Mutex
	calls := 0
	env := testkit.Env("run_resume")
	env.Resumed = resumed
	env.Logger = slog.New(slog.NewTextHandler(&a.logs, nil))
	env.Checkpoint = func(_ context.Context, state []byte) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if stop > 0 && calls > stop {
			return errLeaseLost
		}
		a.saved = append(a.saved, append(json.RawMessage(nil), state...))
		return nil
	}
	if a.unsaved {
		env.Checkpoint = nil
	}
	return testkit.RunAction(t, impact, env, with)
}

// last returns the last state the attempt saved.
func (a *impactAttempt) last(t *testing.T) []byte {
	t.Helper()
	require.NotEmpty(t, a.saved, "no checkpoint was saved")
	return a.saved[len(a.saved)-1]
}

// pageRead is one LookupEvents page that the sandbox served.
type pageRead struct {
	key, region, token string
}

// pagesRead returns the pages served from the call log's from-th call on,
// in order, and the EndTime every one of them asked for.
func pagesRead(t *testing.T, sb *sandbox.Sandbox, from int) ([]pageRead, map[string]bool) {
	t.Helper()
	var out []pageRead
	ends := map[string]bool{}
	for _, c := range sb.Calls()[from:] {
		if c.Action != "LookupEvents" || c.Status != 200 {
			continue // a throttled call served no page
		}
		var attrs []struct{ AttributeValue string }
		require.NoError(t, json.Unmarshal([]byte(c.Params["LookupAttributes"]), &attrs))
		require.Len(t, attrs, 1)
		out = append(out, pageRead{key: attrs[0].AttributeValue, region: c.Region, token: c.Params["NextToken"]})
		ends[c.Params["EndTime"]] = true
	}
	return out, ends
}

// distinct returns the pages as a set. The tests compare which pages were
// read, not how often: the SDK asks for a page again when its answer was
// cut short (the call log then has it twice), and what an attempt stopped
// by its checkpoint had in flight reaches the log after Do returned.
func distinct(pages []pageRead) map[pageRead]bool {
	set := map[pageRead]bool{}
	for _, pg := range pages {
		set[pg] = true
	}
	return set
}

// resumeBackend is impactBackend with enough history that the leaked key
// takes three or four pages in three regions and its backdoor key two in
// another; events at the same second in two regions, and more findings
// than the output lists, so that the order regions answer in would show.
func resumeBackend(t *testing.T) (backend, *sandbox.Sandbox) {
	t.Helper()
	b, sb := impactBackend(t)
	now := time.Now().UTC().Truncate(time.Second)
	names := []string{"DescribeInstances", "ListBuckets", "GetCallerIdentity", "RunInstances"}
	var more []sandbox.SeedEvent
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		for i := range 150 {
			more = append(more, sandbox.SeedEvent{Region: region, Time: now.Add(-time.Duration(3+i) * time.Minute), Name: names[i%len(names)], Source: "ec2.amazonaws.com",
				AccessKeyID: b.leaked, User: "ci-bot", SourceIP: fmt.Sprintf("192.0.2.%d", i%7), UserAgent: "aws-cli/2.15.0", ReadOnly: true})
		}
	}
	for i := range 70 {
		more = append(more, sandbox.SeedEvent{Region: "us-east-2", Time: now.Add(-time.Duration(10+i) * time.Minute), Name: names[i%len(names)],
			AccessKeyID: backdoorKey, User: "backdoor", SourceIP: "203.0.113.9"})
	}
	require.NoError(t, sb.AddEvents("111122223333", more...))
	return b, sb
}

// A step stopped after some pages (its checkpoint refused, as when another
// replica took it over) goes on, in another attempt given what it saved,
// from there: no page it saved is read again, the query window is the
// first attempt's, and the outputs are those of a run never stopped.
func TestImpactResumesFromItsLastCheckpoint(t *testing.T) {
	t.Parallel()
	b, sb := resumeBackend(t)
	with := map[string]any{"access_key_id": b.leaked, "regions": "all"}

	whole := impactAttempt{unsaved: true}
	full, err := whole.run(t, b, with, nil, 0)
	require.NoError(t, err)
	read, _ := pagesRead(t, sb, 0)
	fullPages := distinct(read)
	require.Len(t, fullPages, 4+3+4+1+1+5+1+5, "the leaked key, then its session, then its backdoor key (two pages in us-east-2)")
	require.Len(t, full.Outputs["findings"], maxFindings, "more findings than the output lists")

	// Stopped while reading the leaked key; while reading the level of its
	// derived credentials.
	for _, stop := range []int{5, 15} {
		t.Run(fmt.Sprintf("stopped after %d pages", stop), func(t *testing.T) {
			before := len(sb.Calls())
			var first impactAttempt
			_, err := first.run(t, b, with, nil, stop)
			require.ErrorIs(t, err, errLeaseLost)
			require.Contains(t, err.Error(), "impact of "+b.leaked+": checkpoint: ")
			firstPages, firstEnds := pagesRead(t, sb, before)
			state := first.last(t)
			for _, s := range first.saved {
				require.Less(t, len(s), 64<<10, "a checkpoint holds counts, not events")
				require.NotContains(t, string(s), "eventID")
			}

			between := len(sb.Calls())
			var second impactAttempt
			res, err := second.run(t, b, with, state, 0)
			require.NoError(t, err)
			require.Equal(t, full.Outputs, res.Outputs)
			require.Equal(t, full.Message, res.Message)
			require.Contains(t, second.logs.String(), "resumed from the saved checkpoint")

			read, secondEnds := pagesRead(t, sb, between)
			secondPages := distinct(read)
			require.Equal(t, firstEnds, secondEnds, "the query window is the first attempt's")
			saved := savedPages(t, state, firstPages)
			require.NotEmpty(t, saved)
			t.Logf("the first attempt read %d page(s), saved %d; the second read %d; a checkpoint is %d bytes", len(distinct(firstPages)), len(saved), len(secondPages), len(state))
			for pg := range secondPages {
				require.False(t, saved[pg], "page %+v was read again though the checkpoint had it", pg)
			}
			for pg := range fullPages {
				require.True(t, saved[pg] || secondPages[pg], "page %+v was never read", pg)
			}
			require.Len(t, secondPages, len(fullPages)-len(saved), "nothing else was read")
		})
	}
}

// savedPages returns the pages, of those the first attempt read, that its
// saved state holds: every page of the keys it finished and of the regions
// of the current key it finished, and the pages before each saved token.
func savedPages(t *testing.T, state []byte, read []pageRead) map[pageRead]bool {
	t.Helper()
	var st impactState
	require.NoError(t, json.Unmarshal(state, &st))
	toRead := map[string]bool{}
	for _, q := range append(st.Level[st.Done:], st.Next...) {
		toRead[q.Key] = true
	}
	pairs := map[string]*pairState{}
	if st.Done < len(st.Level) {
		for _, pr := range st.Pairs {
			pairs[pr.Region] = pr
		}
	}
	saved := map[pageRead]bool{}
	reached := map[string]bool{} // key/region whose saved token was reached
	for _, pg := range read {
		switch {
		case !toRead[pg.key]:
			saved[pg] = true
		case st.Done < len(st.Level) && pg.key == st.Level[st.Done].Key:
			pr := pairs[pg.region]
			id := pg.key + "/" + pg.region
			if pr.Done || pr.Token != "" && !reached[id] && pg.token != pr.Token {
				saved[pg] = true
			}
			if pg.token == pr.Token {
				reached[id] = true
			}
		}
	}
	return saved
}

// Sessions minted with the leaked key carry their session token (and
// secret) in CloudTrail's responseElements; CreateAccessKey's never holds
// the secret, but if it did: no checkpoint, output, message or log line
// holds any.
func TestImpactCheckpointHoldsNoSecret(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	now := time.Now().UTC()
	at := func(m int) time.Time { return now.Add(time.Duration(-m) * time.Minute) }
	creds := func(id, token, secret string) map[string]any {
		return map[string]any{"credentials": map[string]any{"accessKeyId": id, "sessionToken": token, "secretAccessKey": secret, "expiration": "Nov 29, 2026 12:00:00 AM"}}
	}
	require.NoError(t, sb.AddEvents("111122223333",
		sandbox.SeedEvent{Region: "us-east-1", Time: at(40), Name: "GetSessionToken", Source: "sts.amazonaws.com", AccessKeyID: b.leaked, User: "ci-bot",
			ResponseElements: creds("ASIAPLANTEDSESSION01", planted.Random, planted.NoDigit)},
		sandbox.SeedEvent{Region: "us-west-2", Time: at(39), Name: "AssumeRole", Source: "sts.amazonaws.com", AccessKeyID: b.leaked, User: "ci-bot",
			RequestParameters: map[string]any{"roleArn": "arn:aws:iam::111122223333:role/deploy", "roleSessionName": "x"},
			ResponseElements:  creds("ASIAPLANTEDSESSION02", planted.NoUpper, planted.AfterKeyID)},
		sandbox.SeedEvent{Region: "us-west-2", Time: at(38), Name: "GetFederationToken", Source: "sts.amazonaws.com", AccessKeyID: b.leaked, User: "ci-bot",
			ResponseElements: creds("ASIAPLANTEDSESSION03", planted.InPath, planted.InURL)},
		sandbox.SeedEvent{Region: "us-east-1", Time: at(37), Name: "CreateAccessKey", AccessKeyID: b.leaked, User: "ci-bot",
			ResponseElements: map[string]any{"accessKey": map[string]any{"accessKeyId": "AKIAPLANTEDACCESSKEY", "userName": "backdoor", "secretAccessKey": planted.InLiteral}}},
		sandbox.SeedEvent{Region: "us-east-1", Time: at(36), Name: "GetSessionToken", Source: "sts.amazonaws.com", AccessKeyID: "AKIAPLANTEDACCESSKEY", User: "backdoor",
			ResponseElements: creds("ASIAPLANTEDSESSION04", planted.InTitle, planted.Random)},
	))

	var a impactAttempt
	res, err := a.run(t, b, map[string]any{"access_key_id": b.leaked, "regions": []any{"us-east-1", "us-west-2"}}, nil, 0)
	require.NoError(t, err)
	require.Len(t, res.Outputs["derived_credentials"], 5, "every event that held a secret was read")
	require.Greater(t, len(a.saved), 5)
	for i, s := range a.saved {
		planted.RequireNone(t, fmt.Sprintf("checkpoint %d", i), s)
	}
	planted.RequireNone(t, "the result", res)
	planted.RequireNone(t, "the logs", a.logs.String())
}

// A saved state that cannot be read, is of another version or was saved
// for another key is ignored with a warning: the query starts again and
// says the same.
func TestImpactIgnoresAnUnusableCheckpoint(t *testing.T) {
	t.Parallel()
	b, sb := impactBackend(t)
	with := map[string]any{"access_key_id": b.leaked, "regions": []any{"us-east-1", "us-west-2"}}
	var whole impactAttempt
	full, err := whole.run(t, b, with, nil, 0)
	require.NoError(t, err)
	read, _ := pagesRead(t, sb, 0)
	mid := string(whole.saved[len(whole.saved)/2])
	require.Contains(t, mid, `"v":1,`)

	for name, state := range map[string]string{
		"garbled":       `{"v":1,"key":"AKIAIOSFODNN7EXAMPLE","level":[{"key":`,
		"other version": strings.Replace(mid, `"v":1,`, `"v":2,`, 1),
		"other key":     strings.Replace(mid, `"key":"`+b.leaked+`"`, `"key":"AKIAI44QH8DHBEXAMPLE"`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			before := len(sb.Calls())
			var a impactAttempt
			res, err := a.run(t, b, with, []byte(state), 0)
			require.NoError(t, err)
			require.Equal(t, full.Outputs, res.Outputs)
			require.Equal(t, full.Message, res.Message)
			again, _ := pagesRead(t, sb, before)
			require.Equal(t, distinct(read), distinct(again), "read from the start")
			require.Contains(t, a.logs.String(), "level=WARN")
			require.Contains(t, a.logs.String(), "the saved checkpoint cannot be used")
		})
	}
}

// A token that CloudTrail no longer takes (AWS does not say how long one
// lives) makes the region start again from its first page, and what was
// counted of it is dropped, so that nothing is counted twice.
func TestImpactReadsARegionAgainWhenItsTokenIsRefused(t *testing.T) {
	t.Parallel()
	b, sb := impactBackend(t)
	with := map[string]any{"access_key_id": b.leaked, "regions": []any{"us-east-1", "us-west-2"}}
	var whole impactAttempt
	full, err := whole.run(t, b, with, nil, 0)
	require.NoError(t, err)
	var state []byte
	for _, s := range whole.saved {
		var st impactState
		require.NoError(t, json.Unmarshal(s, &st))
		if len(st.Pairs) == 2 && st.Pairs[1].Token != "" && st.Pairs[1].Pages == 1 {
			// us-west-2 read its first page: refuse the token of its second.
			st.Pairs[1].Token = "bm90LWEtbnVtYmVy"
			state, err = json.Marshal(st)
			require.NoError(t, err)
			break
		}
	}
	require.NotNil(t, state, "no checkpoint between the pages of us-west-2")

	before := len(sb.Calls())
	var a impactAttempt
	res, err := a.run(t, b, with, state, 0)
	require.NoError(t, err)
	require.Equal(t, full.Outputs, res.Outputs)
	require.Equal(t, full.Message, res.Message)
	refused := false
	for _, c := range sb.Calls()[before:] {
		if c.Action == "LookupEvents" && c.Params["NextToken"] == "bm90LWEtbnVtYmVy" {
			refused = true
			require.Equal(t, 400, c.Status) // refused, or throttled first
		}
	}
	require.True(t, refused)
	again, _ := pagesRead(t, sb, before)
	require.Contains(t, again, pageRead{key: b.leaked, region: "us-west-2"}, "us-west-2 was read again from its first page")
}
