package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	gh "github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/crashpoint"
)

// ResolveAlertParams are the parameters of github.resolve_alert.
type ResolveAlertParams struct {
	Repository  string `json:"repository" required:"true" doc:"owner/name of the repository holding the alert, usually ${{ alert.location.repo }}"`
	AlertNumber int    `json:"alert_number" required:"true" doc:"the secret-scanning alert's number, usually ${{ alert.location.alert_number }}"`
	Resolution  string `json:"resolution" doc:"revoked (the default), false_positive, wont_fix or used_in_tests"`
	Comment     string `json:"comment" doc:"the resolution comment, which GitHub keeps for good (default: Resolved by stanch run <run id>); with report links configured, a link to the run's incident record is added"`
}

// resolutions are those GitHub accepts in a PATCH.
var resolutions = map[string]bool{"false_positive": true, "wont_fix": true, "revoked": true, "used_in_tests": true}

const permSecretScanning = "secret_scanning_alerts:write"

// needSecretScanning says what credentials resolving an alert needs.
const needSecretScanning = "the GitHub App permission " + permSecretScanning + ", or a token with the repo or security_events scope"

// ResolveAlertOutputs are the outputs of github.resolve_alert.
type ResolveAlertOutputs struct {
	State      string `json:"state" doc:"resolved"`
	Resolution string `json:"resolution" doc:"the alert's resolution (an alert resolved before keeps its own)"`
	ResolvedBy string `json:"resolved_by" doc:"who resolved it: stanch's user or App bot, or whoever did before"`
	URL        string `json:"url" doc:"the alert's page"`
}

func resolveAlert(p *Provider) actions.Action {
	return actions.New(actions.Definition[ResolveAlertParams, ResolveAlertOutputs]{
		Name:    "github.resolve_alert",
		Summary: "Close a GitHub secret-scanning alert (as revoked by default) with a comment saying what stanch did.",
		Permissions: []actions.Permission{
			{Name: permSecretScanning, Why: "read the alert (hide_secret=true: never its secret) and resolve it; a classic token needs the repo or security_events scope (public_repo for public repositories)"},
		},
		Example: `- id: resolve_github_alert
  action: github.resolve_alert
  if: alert.source == "github" && alert.location.alert_number > 0
  with:
    repository: ${{ alert.location.repo }}
    alert_number: ${{ alert.location.alert_number }}
    resolution: revoked
    comment: stanch run ${{ run.id }} deactivated ${{ alert.credential.id }} and revoked its sessions.
`,
		// The default comment names the run: newResolution fills it in.
		Provision: func(in *ResolveAlertParams) {
			if in.Resolution == "" {
				in.Resolution = "revoked"
			}
		},
		Validate: func(in ResolveAlertParams) error {
			if _, _, err := splitRepo(in.Repository); err != nil {
				return err
			}
			if in.AlertNumber <= 0 {
				return fmt.Errorf("alert_number %d: GitHub numbers alerts from 1", in.AlertNumber)
			}
			if !resolutions[in.Resolution] {
				return fmt.Errorf("resolution %q is not one of false_positive, wont_fix, revoked, used_in_tests", in.Resolution)
			}
			return nil
		},
		PlanFunc: func(ctx context.Context, env actions.Env, in *ResolveAlertParams) (actions.PlanOf[ResolveAlertOutputs], error) {
			r, err := p.newResolution(ctx, env, in)
			if err != nil {
				return actions.PlanOf[ResolveAlertOutputs]{}, err
			}
			get := actions.Call{Service: "github", Operation: "GET " + r.path, Params: map[string]any{"hide_secret": true}, Made: true}
			current, err := r.get(ctx)
			if err != nil {
				return actions.PlanOf[ResolveAlertOutputs]{}, err
			}
			plan := actions.PlanOf[ResolveAlertOutputs]{Calls: []actions.Call{get}, Outputs: r.outputs(current)}
			if current.State == "resolved" {
				plan.Summary = fmt.Sprintf("%s is already resolved (%s): nothing to change", r.name, current.describe())
				plan.Settled = actions.Already
				return plan, nil
			}
			plan.Summary = fmt.Sprintf("would resolve %s (now %s) as %s with the comment %q, then read it again", r.name, current.State, r.resolution, r.comment)
			plan.Calls = append(plan.Calls,
				actions.Call{Service: "github", Operation: "PATCH " + r.path, Params: map[string]any{"state": "resolved", "resolution": r.resolution, "resolution_comment": r.comment}, Mutates: true,
					Effect: fmt.Sprintf("resolve %s as %s, with a comment saying what stanch did", r.name, r.resolution)},
				actions.Call{Service: "github", Operation: "GET " + r.path, Params: map[string]any{"hide_secret": true}})
			// GitHub says who resolved it once it is.
			plan.Outputs = &ResolveAlertOutputs{State: "resolved", Resolution: r.resolution, URL: current.HTMLURL}
			plan.Undetermined = []string{"resolved_by"}
			return plan, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *ResolveAlertParams) (actions.ResultOf[ResolveAlertOutputs], error) {
			r, err := p.newResolution(ctx, env, in)
			if err != nil {
				return actions.ResultOf[ResolveAlertOutputs]{}, err
			}
			return r.do(ctx, env)
		},
	})
}

// scanningAlert is the part of a secret-scanning alert stanch reads. It has
// no field for the secret literal, so the literal is never decoded even
// where GitHub sends it.
type scanningAlert struct {
	Number            int        `json:"number"`
	State             string     `json:"state"`
	Resolution        string     `json:"resolution"`
	ResolutionComment string     `json:"resolution_comment"`
	ResolvedAt        *time.Time `json:"resolved_at"`
	ResolvedBy        *struct {
		Login string `json:"login"`
	} `json:"resolved_by"`
	SecretType string `json:"secret_type"`
	HTMLURL    string `json:"html_url"`
}

func (a scanningAlert) resolvedBy() string {
	if a.ResolvedBy == nil {
		return ""
	}
	return a.ResolvedBy.Login
}

func (a scanningAlert) describe() string {
	s := "as " + a.Resolution
	if by := a.resolvedBy(); by != "" {
		s += " by " + by
	}
	if a.ResolvedAt != nil {
		s += " at " + a.ResolvedAt.UTC().Format(time.RFC3339)
	}
	return s
}

// alertUpdate is the PATCH body. go-github v60's
// SecretScanningAlertUpdateOptions has no resolution_comment.
type alertUpdate struct {
	State             string `json:"state"`
	Resolution        string `json:"resolution"`
	ResolutionComment string `json:"resolution_comment,omitempty"`
}

type resolution struct {
	client     *gh.Client
	name       string // owner/name#N, for messages
	path       string // repos/owner/name/secret-scanning/alerts/N
	resolution string
	comment    string
}

func (p *Provider) newResolution(ctx context.Context, env actions.Env, in *ResolveAlertParams) (*resolution, error) {
	owner, repo, err := splitRepo(in.Repository)
	if err != nil {
		return nil, actions.Permanent(err)
	}
	r := &resolution{
		name:       fmt.Sprintf("secret-scanning alert %s/%s#%d", owner, repo, in.AlertNumber),
		path:       fmt.Sprintf("repos/%s/%s/secret-scanning/alerts/%d", owner, repo, in.AlertNumber),
		resolution: in.Resolution,
		// GitHub keeps the comment for good: redacted here, whatever the
		// playbook's template put in it.
		comment: alert.RedactText(strings.TrimSpace(in.Comment)),
	}
	if r.comment == "" {
		r.comment = "Resolved by stanch run " + env.RunID
	}
	link, anchor, err := p.recordLink(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", r.name, err)
	}
	r.comment = withRecordLink(r.comment, link, anchor)
	if r.client, err = p.Client(); err != nil {
		return nil, fmt.Errorf("resolve %s: %w", r.name, err)
	}
	return r, nil
}

// maxComment bounds the resolution comment. GitHub's schema for
// resolution_comment names no limit (WIRE.md neither); 65,536 characters
// is the limit of GitHub's comment and issue bodies, taken as the bound
// here so that a long custom comment is clipped by stanch, keeping the
// link, rather than refused by GitHub.
const maxComment = 65536

// recordLink is the link to the run's incident record, anchored on the
// run's creation so that it is the same link whenever it is made ("" when
// links are not configured), and the journal's last entry, which GitHub
// then keeps for good: a copy that shows later that the journal up to it
// was not rewritten (stanch runs verify --anchor). Both are empty when the
// run's report cannot be read (Plan, and tests, may have none).
func (p *Provider) recordLink(ctx context.Context, env actions.Env) (string, actions.JournalAnchor, error) {
	if env.Report == nil {
		return "", actions.JournalAnchor{}, nil
	}
	rep, err := env.Report(ctx)
	if err != nil {
		return "", actions.JournalAnchor{}, actions.Retryable(fmt.Errorf("read the run's report for the link to its incident record: %w", err))
	}
	link := ""
	if p.opts.RecordLink != nil {
		link = p.opts.RecordLink(rep.RunID, rep.StartedAt)
	}
	return link, rep.Journal, nil
}

// withRecordLink adds the link and the journal's anchor to the comment,
// clipping the comment (never what is added) to keep within maxComment.
func withRecordLink(comment, link string, anchor actions.JournalAnchor) string {
	suffix := ""
	if link != "" {
		suffix += " — incident record: " + link
	}
	if anchor.Hash != "" {
		suffix += fmt.Sprintf(" — journal entry %d, sha256 %s", anchor.Seq, anchor.Hash)
	}
	if room := maxComment - utf8.RuneCountInString(suffix); utf8.RuneCountInString(comment) > room {
		runes := []rune(comment)
		comment = string(runes[:max(room-1, 0)]) + "…"
	}
	return comment + suffix
}

// get reads the alert without its secret literal.
func (r *resolution) get(ctx context.Context) (scanningAlert, error) {
	var a scanningAlert
	req, err := r.client.NewRequest(http.MethodGet, r.path+"?hide_secret=true", nil)
	if err != nil {
		return a, actions.Permanent(fmt.Errorf("read %s: %w", r.name, err))
	}
	if _, err := r.client.Do(ctx, req, &a); err != nil {
		return a, classify(fmt.Errorf("read %s: %w", r.name, err), needSecretScanning)
	}
	return a, nil
}

func (r *resolution) outputs(a scanningAlert) *ResolveAlertOutputs {
	return &ResolveAlertOutputs{State: a.State, Resolution: a.Resolution, ResolvedBy: a.resolvedBy(), URL: a.HTMLURL}
}

// do is check, act, verify: an alert resolved already (by stanch before a
// crash, or by a person) is left as it is, since GitHub keeps the first
// resolution comment anyway.
func (r *resolution) do(ctx context.Context, env actions.Env) (actions.ResultOf[ResolveAlertOutputs], error) {
	type result = actions.ResultOf[ResolveAlertOutputs]
	current, err := r.get(ctx)
	if err != nil {
		return result{}, err
	}
	if current.State == "resolved" {
		return result{Outcome: actions.Already, Message: fmt.Sprintf("%s was already resolved (%s); nothing changed", r.name, current.describe()), Outputs: r.outputs(current)}, nil
	}
	req, err := r.client.NewRequest(http.MethodPatch, r.path, alertUpdate{State: "resolved", Resolution: r.resolution, ResolutionComment: r.comment})
	if err != nil {
		return result{}, actions.Permanent(fmt.Errorf("resolve %s: %w", r.name, err))
	}
	var patched scanningAlert
	if _, err := r.client.Do(ctx, req, &patched); err != nil {
		var er *gh.ErrorResponse
		if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusUnprocessableEntity {
			return result{}, actions.Permanent(fmt.Errorf("resolve %s as %q: GitHub refused the resolution (422 %s%s)", r.name, r.resolution, er.Message, fieldErrors(er)))
		}
		return result{}, classify(fmt.Errorf("resolve %s: %w", r.name, err), needSecretScanning)
	}
	crashpoint.Hit("github:patched") // resolved on GitHub; the journal does not know yet
	env.Log().Info("secret-scanning alert resolved", "alert", r.name, "resolution", r.resolution)
	after, err := r.get(ctx)
	if err != nil {
		return result{}, fmt.Errorf("verify: %w", err)
	}
	if after.State != "resolved" {
		return result{}, actions.Retryable(fmt.Errorf("resolve %s: it still reads %s after the PATCH", r.name, after.State))
	}
	return result{Outcome: actions.Done, Message: fmt.Sprintf("%s resolved %s (was %s); verified", r.name, after.describe(), current.State), Outputs: r.outputs(after)}, nil
}

// fieldErrors lists the fields a 422 names.
func fieldErrors(er *gh.ErrorResponse) string {
	var parts []string
	for _, e := range er.Errors {
		switch {
		case e.Message != "":
			parts = append(parts, e.Message)
		case e.Field != "":
			parts = append(parts, e.Field+" "+e.Code)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	sort.Strings(parts)
	return ": " + strings.Join(parts, "; ")
}
