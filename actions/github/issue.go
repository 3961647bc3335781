package github

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/crashpoint"
)

// OpenIssueParams are the parameters of github.open_issue.
type OpenIssueParams struct {
	Repository string   `json:"repository" required:"true" doc:"owner/name of the repository to open the issue in"`
	Title      string   `json:"title" required:"true" doc:"the issue's title"`
	Body       string   `json:"body" doc:"the issue's text (Markdown); stanch adds a hidden marker that finds the issue again"`
	Labels     []string `json:"labels" doc:"labels besides stanch, which every issue gets; created when the repository lacks them"`
	Key        string   `json:"key" doc:"one issue per run and key (default incident): a later step with the same key edits the same issue"`
	State      string   `json:"state" doc:"open (the default) or closed"`
}

// IssueLabel is the label every issue stanch opens carries; stanch finds its
// issues again by listing those with it.
const IssueLabel = "stanch"

var issueKey = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

const permIssues = "issues:write"

const needIssues = "the GitHub App permission " + permIssues + ", or a token with the repo scope (public_repo for public repositories)"

// OpenIssueOutputs are the outputs of github.open_issue.
type OpenIssueOutputs struct {
	Number int    `json:"number" doc:"the issue's number"`
	URL    string `json:"url" doc:"the issue's page"`
}

func provisionIssue(in *OpenIssueParams) {
	if in.Key == "" {
		in.Key = "incident"
	}
	if in.State == "" {
		in.State = "open"
	}
}

func openIssue(p *Provider) actions.Action {
	return actions.New(actions.Definition[OpenIssueParams, OpenIssueOutputs]{
		Name:    "github.open_issue",
		Summary: "Open a GitHub issue once per run and key (labelled stanch); a later call edits it only where it differs.",
		Permissions: []actions.Permission{
			{Name: permIssues, Why: "find this run's issue among those labelled stanch, create or edit it and its labels; a classic token needs the repo scope (public_repo for public repositories)"},
		},
		Example: `- id: issue
  action: github.open_issue
  with:
    repository: acme/security-incidents
    title: "Leaked AWS key ${{ alert.credential.id }}"
    body: |
      stanch run ${{ run.id }} contained ${{ alert.credential.id }} (found in ${{ alert.location.repo }}).
    labels: [incident, aws]
`,
		Provision: provisionIssue,
		Validate: func(in OpenIssueParams) error {
			if _, _, err := splitRepo(in.Repository); err != nil {
				return err
			}
			if strings.TrimSpace(in.Title) == "" {
				return errors.New("title is empty")
			}
			if !issueKey.MatchString(in.Key) {
				return fmt.Errorf("key %q: use lower-case letters, digits, _, . and -, at most 63", in.Key)
			}
			if in.State != "open" && in.State != "closed" {
				return fmt.Errorf("state %q is not open or closed", in.State)
			}
			return nil
		},
		PlanFunc: func(ctx context.Context, env actions.Env, in *OpenIssueParams) (actions.PlanOf[OpenIssueOutputs], error) {
			w, err := p.newIssue(env, in)
			if err != nil {
				return actions.PlanOf[OpenIssueOutputs]{}, err
			}
			list := actions.Call{Service: "github", Operation: "GET repos/" + w.repo + "/issues", Params: map[string]any{"labels": IssueLabel, "state": "all", "per_page": 100}, Made: true}
			found, err := w.find(ctx)
			if err != nil {
				return actions.PlanOf[OpenIssueOutputs]{}, err
			}
			// An issue not opened yet has no number: its outputs are known
			// only at run time.
			plan := actions.PlanOf[OpenIssueOutputs]{Calls: []actions.Call{list}}
			if found == nil {
				plan.Summary = fmt.Sprintf("would open an issue in %s: %q, labelled %s", w.repo, w.title, strings.Join(w.labels, ", "))
				plan.Calls = append(plan.Calls, actions.Call{Service: "github", Operation: "POST repos/" + w.repo + "/issues", Params: map[string]any{"title": w.title, "labels": w.labels}, Mutates: true})
				if w.state == "closed" {
					plan.Calls = append(plan.Calls, actions.Call{Service: "github", Operation: "PATCH repos/" + w.repo + "/issues/{number}", Params: map[string]any{"state": "closed"}, Mutates: true})
				}
				return plan, nil
			}
			plan.Outputs = issueOutputs(found)
			edit, changed := w.edit(found)
			if len(changed) == 0 {
				plan.Summary = fmt.Sprintf("%s#%d is up to date: nothing to change", w.repo, found.GetNumber())
				return plan, nil
			}
			plan.Summary = fmt.Sprintf("would edit %s#%d: %s", w.repo, found.GetNumber(), strings.Join(changed, ", "))
			plan.Calls = append(plan.Calls, actions.Call{Service: "github", Operation: fmt.Sprintf("PATCH repos/%s/issues/%d", w.repo, found.GetNumber()), Params: editParams(edit), Mutates: true})
			return plan, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *OpenIssueParams) (actions.ResultOf[OpenIssueOutputs], error) {
			w, err := p.newIssue(env, in)
			if err != nil {
				return actions.ResultOf[OpenIssueOutputs]{}, err
			}
			return w.do(ctx, env)
		},
	})
}

// wantedIssue is the issue a step asks for.
type wantedIssue struct {
	client      *gh.Client
	owner, name string
	repo        string
	title       string
	body        string // with the marker
	marker      string
	labels      []string
	state       string
}

func (p *Provider) newIssue(env actions.Env, in *OpenIssueParams) (*wantedIssue, error) {
	owner, name, err := splitRepo(in.Repository)
	if err != nil {
		return nil, actions.Permanent(err)
	}
	if env.RunID == "" {
		return nil, actions.Permanent(errors.New("github.open_issue needs the run's id to find its issue again"))
	}
	// GitHub keeps what it is sent for good: redacted here, whatever the
	// playbook's templates put in.
	w := &wantedIssue{owner: owner, name: name, repo: owner + "/" + name, title: alert.RedactText(in.Title), state: in.State}
	// The marker ties the issue to the run and key: a retry or a resume
	// after a crash finds the issue it opened instead of opening another.
	w.marker = fmt.Sprintf("<!-- stanch:run=%s key=%s -->", env.RunID, in.Key)
	w.body = w.marker
	if b := strings.TrimRight(alert.RedactText(in.Body), "\n"); b != "" {
		w.body = b + "\n\n" + w.marker
	}
	for _, l := range append(slices.Clone(in.Labels), IssueLabel) {
		if l = strings.TrimSpace(alert.RedactText(l)); l != "" && !slices.Contains(w.labels, l) {
			w.labels = append(w.labels, l)
		}
	}
	if w.client, err = p.Client(); err != nil {
		return nil, fmt.Errorf("issue in %s: %w", w.repo, err)
	}
	return w, nil
}

// find lists every issue labelled stanch, open or closed, and returns the
// one whose body holds the marker.
func (w *wantedIssue) find(ctx context.Context) (*gh.Issue, error) {
	opts := &gh.IssueListByRepoOptions{State: "all", Labels: []string{IssueLabel}, ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		issues, res, err := w.client.Issues.ListByRepo(ctx, w.owner, w.name, opts)
		if err != nil {
			return nil, classify(fmt.Errorf("list the issues of %s labelled %s: %w", w.repo, IssueLabel, err), needIssues)
		}
		for _, i := range issues {
			if i.PullRequestLinks == nil && strings.Contains(i.GetBody(), w.marker) {
				return i, nil
			}
		}
		if res.NextPage == 0 {
			return nil, nil
		}
		opts.Page = res.NextPage
	}
}

// edit returns the request that brings found to what is wanted, and the
// names of what differs. Labels people added are kept.
func (w *wantedIssue) edit(found *gh.Issue) (*gh.IssueRequest, []string) {
	req := &gh.IssueRequest{}
	var changed []string
	if found.GetTitle() != w.title {
		req.Title = gh.String(w.title)
		changed = append(changed, "title")
	}
	if found.GetBody() != w.body {
		req.Body = gh.String(w.body)
		changed = append(changed, "body")
	}
	if found.GetState() != w.state {
		req.State = gh.String(w.state)
		changed = append(changed, "state "+found.GetState()+" → "+w.state)
	}
	var have []string
	for _, l := range found.Labels {
		have = append(have, l.GetName())
	}
	all := slices.Clone(have)
	for _, l := range w.labels {
		if !slices.Contains(all, l) {
			all = append(all, l)
		}
	}
	if len(all) != len(have) {
		req.Labels = &all
		changed = append(changed, "labels")
	}
	return req, changed
}

func editParams(req *gh.IssueRequest) map[string]any {
	out := map[string]any{}
	if req.Title != nil {
		out["title"] = *req.Title
	}
	if req.Body != nil {
		out["body"] = "(the step's body with its marker)"
	}
	if req.State != nil {
		out["state"] = *req.State
	}
	if req.Labels != nil {
		out["labels"] = *req.Labels
	}
	return out
}

func (w *wantedIssue) do(ctx context.Context, env actions.Env) (actions.ResultOf[OpenIssueOutputs], error) {
	type result = actions.ResultOf[OpenIssueOutputs]
	found, err := w.find(ctx)
	if err != nil {
		return result{}, err
	}
	what := "edited"
	if found == nil {
		created, _, err := w.client.Issues.Create(ctx, w.owner, w.name, &gh.IssueRequest{Title: gh.String(w.title), Body: gh.String(w.body), Labels: &w.labels})
		if err != nil {
			return result{}, classify(fmt.Errorf("open an issue in %s: %w", w.repo, err), needIssues)
		}
		crashpoint.Hit("github:issue-created") // the issue exists; the journal does not know yet
		env.Log().Info("issue opened", "repo", w.repo, "issue", created.GetNumber())
		found, what = created, "opened and edited"
		if w.state == "open" {
			return w.result(actions.Done, fmt.Sprintf("opened %s#%d", w.repo, created.GetNumber()), created)
		}
	}
	req, changed := w.edit(found)
	if len(changed) == 0 {
		return w.result(actions.Already, fmt.Sprintf("%s#%d is already as wanted; nothing changed", w.repo, found.GetNumber()), found)
	}
	edited, _, err := w.client.Issues.Edit(ctx, w.owner, w.name, found.GetNumber(), req)
	if err != nil {
		return result{}, classify(fmt.Errorf("edit %s#%d: %w", w.repo, found.GetNumber(), err), needIssues)
	}
	if _, still := w.edit(edited); len(still) > 0 {
		return result{}, actions.Retryable(fmt.Errorf("edit %s#%d: still differs after the edit: %s", w.repo, found.GetNumber(), strings.Join(still, ", ")))
	}
	env.Log().Info("issue edited", "repo", w.repo, "issue", found.GetNumber(), "changed", strings.Join(changed, ", "))
	return w.result(actions.Done, fmt.Sprintf("%s %s#%d: %s", what, w.repo, found.GetNumber(), strings.Join(changed, ", ")), edited)
}

func (w *wantedIssue) result(outcome actions.Outcome, msg string, i *gh.Issue) (actions.ResultOf[OpenIssueOutputs], error) {
	return actions.ResultOf[OpenIssueOutputs]{Outcome: outcome, Message: msg, Outputs: issueOutputs(i)}, nil
}

func issueOutputs(i *gh.Issue) *OpenIssueOutputs {
	return &OpenIssueOutputs{Number: i.GetNumber(), URL: i.GetHTMLURL()}
}
