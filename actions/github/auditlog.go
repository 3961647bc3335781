package github

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/leaked"
)

// Orgs is a list of organisation logins; a step may give one as a string.
type Orgs []string

// UnmarshalJSON accepts "acme" or ["acme", "acme-labs"].
func (o *Orgs) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*o = Orgs{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("org must be an organisation login or a list of them")
	}
	*o = many
	return nil
}

// TokenImpactParams are the parameters of github.token_impact. The token
// is named by its fingerprint; the audit log is searched by its hash.
type TokenImpactParams struct {
	Credential  string           `json:"credential" required:"true" doc:"the token's fingerprint (sha256:…), usually ${{ alert.credential.id }}; never the token itself"`
	Org         Orgs             `json:"org" required:"true" doc:"the organisation (or a list of them) whose audit log to search; the organisations the token's owner belongs to"`
	HashedToken string           `json:"hashed_token" doc:"the token's hashed_token (base64 of its SHA-256, as the audit log shows it; not a secret), for when this process has not seen the token itself"`
	Lookback    actions.Duration `json:"lookback" doc:"how far back to look (default 2160h = 90 days)"`
	PerPage     int              `json:"per_page" doc:"events per request, 1 to 100 (default 100)"`
}

// TokenImpactOutputs are the outputs of github.token_impact, in the shape
// of aws.cloudtrail_impact's.
type TokenImpactOutputs struct {
	Credential    string            `json:"credential" doc:"the token's fingerprint"`
	HashedToken   string            `json:"hashed_token" doc:"the token's hashed_token, to search the audit log by hand: hashed_token:\"…\""`
	Events        int               `json:"events" doc:"events done with the token"`
	FirstUsed     string            `json:"first_used" doc:"RFC 3339 time of the first event"`
	LastUsed      string            `json:"last_used" doc:"RFC 3339 time of the last event"`
	ByAction      map[string]int    `json:"by_action" doc:"count per audit-log action (git.clone, repo.update, …)"`
	ByRepository  map[string]int    `json:"by_repository" doc:"count per repository (owner/name)"`
	Repositories  []string          `json:"repositories" doc:"the repositories the token touched, sorted"`
	Cloned        []string          `json:"cloned" doc:"repositories cloned or fetched (git.clone, git.fetch) or downloaded as an archive"`
	Pushed        []string          `json:"pushed" doc:"repositories pushed to (git.push)"`
	BySourceIP    map[string]int    `json:"by_source_ip" doc:"count per source IP (actor_ip; GitHub gives it only where the organisation enabled IP disclosure)"`
	ByUserAgent   map[string]int    `json:"by_user_agent" doc:"count per user agent"`
	ByOrg         map[string]int    `json:"by_org" doc:"count per organisation"`
	FindingCounts map[string]int    `json:"finding_counts" doc:"count per category: persistence, permissions, secrets, code_change, settings_change, data_access"`
	Findings      []map[string]any  `json:"findings" doc:"the classified events (category, severity, event, what, time, org, repo, source_ip), most severe first (at most 200)"`
	Orgs          []string          `json:"orgs" doc:"organisations searched"`
	OrgsFailed    map[string]string `json:"orgs_failed" doc:"organisation → error, for audit logs that could not be read"`
}

const (
	// permAuditLog is what the credentials need to read an audit log.
	permAuditLog = "the read:audit_log scope (a classic token of an organisation owner), or the GitHub App permission organization_administration:read"
	// auditInclude asks for web and Git events: a leaked token is used
	// for git clone and push as much as for the API.
	auditInclude      = "all"
	defaultAuditPages = 100
)

func provisionTokenImpact(in *TokenImpactParams) {
	if in.Lookback == 0 {
		in.Lookback = actions.Duration(2160 * time.Hour)
	}
	if in.PerPage == 0 {
		in.PerPage = defaultAuditPages
	}
}

func validateTokenImpact(in TokenImpactParams) error {
	if !strings.HasPrefix(in.Credential, "sha256:") {
		// Never echoed: it may be the token itself.
		return errors.New("credential is not a token fingerprint (sha256:…): name the token by ${{ alert.credential.id }}, never by its value")
	}
	if len(in.Org) == 0 {
		return errors.New("org: name at least one organisation")
	}
	for _, o := range in.Org {
		if o == "" || strings.ContainsAny(o, "/ ?#") {
			return fmt.Errorf("org %q is not an organisation login", o)
		}
	}
	if in.HashedToken != "" {
		if _, err := normalHash(in.HashedToken); err != nil {
			return err
		}
	}
	if in.Lookback < 0 {
		return errors.New("lookback must not be negative")
	}
	if in.PerPage < 1 || in.PerPage > 100 {
		return fmt.Errorf("per_page %d: GitHub gives 1 to 100 events a page", in.PerPage)
	}
	return nil
}

func tokenImpact(p *Provider) actions.Action {
	return actions.New(actions.Definition[TokenImpactParams, TokenImpactOutputs]{
		Name:    "github.token_impact",
		Slow:    true,
		Summary: "Search organisation audit logs for everything a leaked GitHub token did (by its hashed_token), and classify it: repositories cloned and pushed, settings, secrets and permissions changed, keys and tokens created.",
		Permissions: []actions.Permission{
			{Name: "read:audit_log", Why: "GET /orgs/{org}/audit-log (a classic token of an organisation owner; GitHub Enterprise Cloud)"},
			{Name: "organization_administration:read", Why: "the same, for a GitHub App installation"},
		},
		Example: `- id: github_impact
  action: github.token_impact
  with:
    credential: ${{ alert.credential.id }}
    org: acme
    lookback: 720h
  timeout: 15m
  on_error: continue
`,
		Provision: provisionTokenImpact,
		Validate:  validateTokenImpact,
		PlanFunc: func(ctx context.Context, env actions.Env, in *TokenImpactParams) (actions.PlanOf[TokenImpactOutputs], error) {
			// Only the events say what the outputs are.
			type plan = actions.PlanOf[TokenImpactOutputs]
			hash, err := impactHash(in)
			if err != nil {
				return plan{}, err
			}
			if _, err := p.Client(); err != nil {
				return plan{}, err
			}
			start := time.Now().Add(-time.Duration(in.Lookback))
			var calls []actions.Call
			for _, org := range in.Org {
				calls = append(calls, actions.Call{Service: "github", Operation: "GET /orgs/{org}/audit-log", Params: map[string]any{
					"org": org, "phrase": auditPhrase(hash, start), "include": auditInclude, "order": "desc", "per_page": in.PerPage,
				}})
			}
			return plan{
				Summary: fmt.Sprintf("would search the audit log of %s for the events of token %s of the last %s, %d a page, newest first, until the window's start; a rate limit ends the attempt with a retry after GitHub's reset, from where it got",
					strings.Join(in.Org, ", "), in.Credential, time.Duration(in.Lookback), in.PerPage),
				Calls: calls,
			}, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *TokenImpactParams) (actions.ResultOf[TokenImpactOutputs], error) {
			return p.tokenImpact(ctx, env, in)
		},
	})
}

// impactHash returns the hashed_token to search by: the hash of the token
// itself when this process holds it, else the step's hashed_token.
func impactHash(in *TokenImpactParams) (string, error) {
	given := ""
	if in.HashedToken != "" {
		var err error
		if given, err = normalHash(in.HashedToken); err != nil {
			return "", actions.Permanent(err)
		}
	}
	v, ok := leaked.Process.Lookup(in.Credential)
	if !ok {
		if given == "" {
			return "", actions.Permanentf("the audit log of token %s cannot be searched: it is searched by the token's hash, stanch never stores token values, and this process has not seen the token (it arrived before a restart, or in another process). Give the step hashed_token (echo -n TOKEN | openssl dgst -sha256 -binary | base64), or search the audit log by hand", in.Credential)
		}
		return given, nil
	}
	h := HashedToken(v)
	if given != "" && given != h {
		return "", actions.Permanentf("hashed_token is not the hash of token %s: leave it out, or check it", in.Credential)
	}
	return h, nil
}

// HashedToken is the audit log's hashed_token of a token: the standard,
// padded base64 of its SHA-256.
func HashedToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// normalHash checks a hashed_token given by a person and returns it padded.
// The value is never echoed: a person may have put the token there.
func normalHash(h string) (string, error) {
	for _, prefix := range []string{"ghp_", "github_pat_", "gho_", "ghu_", "ghs_", "ghr_"} {
		if strings.HasPrefix(h, prefix) {
			return "", errors.New("hashed_token holds a token, not its hash: never put a token in a playbook; give its hash (echo -n TOKEN | openssl dgst -sha256 -binary | base64)")
		}
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(h, "="))
	if err != nil || len(b) != sha256.Size {
		return "", errors.New("hashed_token is not a base64 SHA-256 (44 characters, as echo -n TOKEN | openssl dgst -sha256 -binary | base64 prints)")
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// auditPhrase is the search of a token's events since start. The created
// qualifier has a day's precision: events before start are dropped when
// read.
func auditPhrase(hash string, start time.Time) string {
	return fmt.Sprintf(`hashed_token:"%s" created:>=%s`, hash, start.UTC().Format(time.DateOnly))
}

func (p *Provider) tokenImpact(ctx context.Context, env actions.Env, in *TokenImpactParams) (actions.ResultOf[TokenImpactOutputs], error) {
	type result = actions.ResultOf[TokenImpactOutputs]
	hash, err := impactHash(in)
	if err != nil {
		return result{}, err
	}
	client, err := p.Client()
	if err != nil {
		return result{}, err
	}
	st := resumedAudit(env, in, hash)
	if st == nil {
		end := time.Now()
		st = newAuditState(in, hash, end.Add(-time.Duration(in.Lookback)), end)
	}
	q := &auditQuery{client: client, env: env, st: st}
	failed := map[string]string{}
	for _, o := range st.Orgs {
		if o.Done {
			continue
		}
		err := q.readOrg(ctx, o)
		if err == nil {
			continue
		}
		var cp checkpointFailed
		switch {
		case errors.As(err, &cp):
			return result{}, fmt.Errorf("impact of %s: %w", in.Credential, err)
		case ctx.Err() != nil:
			return result{}, actions.Retryable(fmt.Errorf("impact of %s: %w", in.Credential, ctx.Err()))
		case actions.KindOf(err) == actions.KindPermanent:
			// Another organisation may still tell.
			failed[o.Org] = err.Error()
			env.Log().Warn("token impact: an audit log could not be read", "credential", in.Credential, "org", o.Org, "error", err.Error())
		default:
			// Every page read is saved: a retry goes on from here.
			return result{}, fmt.Errorf("impact of %s: %w", in.Credential, err)
		}
	}
	if len(failed) == len(st.Orgs) {
		return result{}, actions.Permanentf("impact of %s: no audit log could be read: %s", in.Credential, joinFailed(failed))
	}
	out := st.Summary.outputs()
	out.Credential, out.HashedToken, out.Orgs, out.OrgsFailed = in.Credential, hash, st.orgNames(), failed
	return result{Outcome: actions.Done, Message: impactMessage(in, st, out), Outputs: out}, nil
}

// impactMessage is the result's one line.
func impactMessage(in *TokenImpactParams, st *auditState, out *TokenImpactOutputs) string {
	where := "the audit log of " + strings.Join(out.Orgs, ", ")
	var msg string
	if st.Summary.Total == 0 {
		msg = fmt.Sprintf("no event of %s in %s since %s", in.Credential, where, st.Start.UTC().Format(time.RFC3339))
	} else {
		msg = fmt.Sprintf("%d event(s) of %s in %s, first %s, last %s", st.Summary.Total, in.Credential, where, out.FirstUsed, out.LastUsed)
	}
	if n := len(out.Cloned); n > 0 {
		msg += fmt.Sprintf("; %d repositor(ies) cloned", n)
	}
	if n := len(out.Pushed); n > 0 {
		msg += fmt.Sprintf("; %d pushed to", n)
	}
	if fc := st.Summary.counts(); len(fc) > 0 {
		msg += "; findings: " + strings.Join(fc, ", ")
	}
	if len(out.OrgsFailed) > 0 {
		msg += fmt.Sprintf("; %d organisation(s) could not be read: %s", len(out.OrgsFailed), strings.Join(auditKeys(out.OrgsFailed), ", "))
	}
	return msg
}

// auditQuery reads a token's events, organisation by organisation, page by
// page, and saves the state after every page.
type auditQuery struct {
	client *gh.Client
	env    actions.Env
	st     *auditState
}

// readOrg reads o's pages from where it got until the window's start or
// the last page.
func (q *auditQuery) readOrg(ctx context.Context, o *orgProgress) error {
	for !o.Done {
		if err := ctx.Err(); err != nil {
			return err
		}
		hash := q.st.Hash
		if o.Unpadded {
			hash = strings.TrimRight(hash, "=")
		}
		opts := &gh.GetAuditLogOptions{
			Phrase:  gh.String(auditPhrase(hash, q.st.Start)),
			Include: gh.String(auditInclude),
			Order:   gh.String("desc"),
			ListCursorOptions: gh.ListCursorOptions{
				PerPage: q.st.PerPage, After: o.After, Cursor: o.Cursor,
			},
		}
		entries, resp, err := q.client.Organizations.GetAuditLog(ctx, o.Org, opts)
		if err != nil {
			return auditError(err, o.Org)
		}
		if len(entries) == 0 && o.Pages == 0 && !o.Unpadded && o.After == "" && o.Cursor == "" {
			// GitHub documents the hash padded and shows it unpadded:
			// when the padded search finds nothing, try without.
			o.Unpadded = true
			if err := q.save(ctx); err != nil {
				return err
			}
			continue
		}
		older := q.st.add(o, entries)
		o.Pages++
		o.After, o.Cursor = resp.After, resp.Cursor
		o.Done = older || (o.After == "" && o.Cursor == "")
		if q.env.Progress != nil {
			q.env.Progress(fmt.Sprintf("%s: %d page(s), %d event(s)", o.Org, o.Pages, o.Events))
		}
		if err := q.save(ctx); err != nil {
			return err
		}
	}
	q.env.Log().Info("token impact: audit log read", "credential", q.st.Credential, "org", o.Org, "pages", o.Pages, "events", o.Events)
	return nil
}

// save hands the state to the step's checkpoint. A page is up to 100
// events and one request of a rate-limited API: saving each costs little
// and a resumed attempt reads no page twice.
func (q *auditQuery) save(ctx context.Context) error {
	if q.env.Checkpoint == nil {
		return nil
	}
	b, err := q.st.encode()
	if err == nil {
		err = q.env.Checkpoint(ctx, b)
	}
	if err != nil {
		return checkpointFailed{err}
	}
	return nil
}

// checkpointFailed is a failed save: the step no longer belongs to this
// attempt, or the store is down; the runner decides.
type checkpointFailed struct{ err error }

func (e checkpointFailed) Error() string { return "checkpoint: " + e.err.Error() }
func (e checkpointFailed) Unwrap() error { return e.err }

// AuditRateLimitError says GitHub asked stanch to wait before reading more
// of an audit log: its primary rate limit is spent until Reset, or a
// secondary limit asked for a pause. A retry goes on from the last page
// read.
type AuditRateLimitError struct {
	Org       string
	Reset     time.Time
	Secondary bool
	Err       error
}

func (e *AuditRateLimitError) Error() string {
	kind := "rate limit"
	if e.Secondary {
		kind = "secondary rate limit"
	}
	return fmt.Sprintf("audit log of %s: GitHub's %s: wait until %s: %v", e.Org, kind, e.Reset.UTC().Format(time.RFC3339), e.Err)
}

func (e *AuditRateLimitError) Unwrap() error { return e.Err }

// RetryAfter is how long to wait before the next attempt.
func (e *AuditRateLimitError) RetryAfter() time.Duration {
	return max(time.Until(e.Reset), time.Second)
}

// auditError sorts a failed read: rate limits are retryable after GitHub's
// reset; the rest as classify says.
func auditError(err error, org string) error {
	err = fmt.Errorf("GET /orgs/%s/audit-log: %w", org, err)
	if reset, secondary, ok := rateLimitReset(err, time.Now()); ok {
		return actions.Retryable(withAPIError(&AuditRateLimitError{Org: org, Reset: reset, Secondary: secondary, Err: err}))
	}
	return classify(err, permAuditLog+", on GitHub Enterprise Cloud")
}

// rateLimitReset reads when GitHub's rate limit lets the next request
// through, from go-github's errors or the answer's headers.
func rateLimitReset(err error, now time.Time) (time.Time, bool, bool) {
	var rl *gh.RateLimitError
	var abuse *gh.AbuseRateLimitError
	var er *gh.ErrorResponse
	switch {
	case errors.As(err, &rl):
		return later(rl.Rate.Reset.Time, now.Add(time.Minute)), false, true
	case errors.As(err, &abuse):
		if abuse.RetryAfter != nil {
			return now.Add(*abuse.RetryAfter), true, true
		}
		// GitHub asks for at least a minute when it does not say.
		return now.Add(time.Minute), true, true
	case errors.As(err, &er) && er.Response != nil:
		code, h := er.Response.StatusCode, er.Response.Header
		if code != http.StatusTooManyRequests && code != http.StatusForbidden {
			return time.Time{}, false, false
		}
		if secs, err := strconv.Atoi(h.Get("Retry-After")); err == nil {
			return now.Add(time.Duration(secs) * time.Second), true, true
		}
		if h.Get("X-RateLimit-Remaining") == "0" {
			if s, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
				return later(time.Unix(s, 0), now.Add(time.Minute)), false, true
			}
		}
		if code == http.StatusTooManyRequests {
			return now.Add(time.Minute), true, true
		}
	}
	return time.Time{}, false, false
}

func later(t, otherwise time.Time) time.Time {
	if t.IsZero() || t.Before(time.Now()) {
		return otherwise
	}
	return t
}

func joinFailed(m map[string]string) string {
	var parts []string
	for _, k := range auditKeys(m) {
		parts = append(parts, k+": "+m[k])
	}
	return strings.Join(parts, "; ")
}

func auditKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
