package sandbox

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// GitHub issues: list (state, labels, sorting, pages with a Link header),
// create, read and edit. Every repository exists; labels are created the
// first time an issue uses them, as GitHub does for users with push access.

type githubRepo struct {
	issues []*githubIssue // by number - 1
	labels map[string]int // label name to id
}

type githubIssue struct {
	number  int
	title   string
	body    string
	state   string // open or closed
	reason  string // state_reason
	labels  []string
	user    string
	created time.Time
	updated time.Time
	closed  time.Time
}

func (g *githubState) repo(name string) *githubRepo {
	r, ok := g.repos[name]
	if !ok {
		r = &githubRepo{labels: map[string]int{}}
		g.repos[name] = r
	}
	return r
}

func (r *githubRepo) issue(number int) *githubIssue {
	if number < 1 || number > len(r.issues) {
		return nil
	}
	return r.issues[number-1]
}

// setLabels gives issue the named labels, creating those the repository
// does not have yet.
func (r *githubRepo) setLabels(issue *githubIssue, names []string) {
	issue.labels = nil
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || slices.Contains(issue.labels, n) {
			continue
		}
		if _, ok := r.labels[n]; !ok {
			r.labels[n] = len(r.labels) + 1
		}
		issue.labels = append(issue.labels, n)
	}
}

func (i *githubIssue) view(api, repo string) map[string]any {
	labels := []map[string]any{}
	for _, l := range i.labels {
		labels = append(labels, map[string]any{"name": l, "color": "ededed", "default": false})
	}
	v := map[string]any{
		"number": i.number, "title": i.title, "body": i.body, "state": i.state, "labels": labels,
		"user": githubUser(i.user), "locked": false, "comments": 0,
		"url":        fmt.Sprintf("%s/repos/%s/issues/%d", api, repo, i.number),
		"html_url":   fmt.Sprintf("https://github.com/%s/issues/%d", repo, i.number),
		"created_at": i.created.Format(time.RFC3339), "updated_at": i.updated.Format(time.RFC3339),
		"closed_at": nil, "state_reason": nil,
	}
	if i.state == "closed" {
		v["closed_at"] = i.closed.Format(time.RFC3339)
	}
	if i.reason != "" {
		v["state_reason"] = i.reason
	}
	return v
}

// listIssues answers GET /repos/{owner}/{repo}/issues: ?state= open (the
// default), closed or all; ?labels= a comma-separated list the issues must
// all carry; ?direction= desc (the default) or asc by creation; ?per_page=
// (30 by default, 100 at most) and ?page=, with a Link header.
func (s *Sandbox) listIssues(c *githubCall, name string) {
	q := c.r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	if state != "open" && state != "closed" && state != "all" {
		c.invalid("Issue", "state", fmt.Sprintf("state %q is not open, closed or all", state))
		return
	}
	var want []string
	if l := q.Get("labels"); l != "" {
		for _, n := range strings.Split(l, ",") {
			want = append(want, strings.TrimSpace(n))
		}
	}
	perPage, page := 30, 1
	if v, err := strconv.Atoi(q.Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	if v, err := strconv.Atoi(q.Get("page")); err == nil && v > 0 {
		page = v
	}
	c.call.params["state"], c.call.params["labels"], c.call.params["page"] = state, strings.Join(want, ","), strconv.Itoa(page)
	repo := s.github.repo(name)
	var matched []*githubIssue
	for _, i := range repo.issues {
		if state != "all" && i.state != state {
			continue
		}
		ok := true
		for _, l := range want {
			if !slices.Contains(i.labels, l) {
				ok = false
				break
			}
		}
		if ok {
			matched = append(matched, i)
		}
	}
	asc := q.Get("direction") == "asc"
	sort.SliceStable(matched, func(a, b int) bool {
		if asc {
			return matched[a].number < matched[b].number
		}
		return matched[a].number > matched[b].number
	})
	last := max(1, (len(matched)+perPage-1)/perPage)
	list := []map[string]any{}
	for _, i := range matched[min(len(matched), (page-1)*perPage):min(len(matched), page*perPage)] {
		list = append(list, i.view(c.api(), name))
	}
	if link := pageLinks(c.api()+strings.TrimPrefix(c.r.URL.Path, "/api/v3"), q, page, last); link != "" {
		c.w.Header().Set("Link", link)
	}
	c.answer(http.StatusOK, false, list)
}

// pageLinks is GitHub's Link header for page of last.
func pageLinks(base string, q url.Values, page, last int) string {
	at := func(p int, rel string) string {
		q.Set("page", strconv.Itoa(p))
		return fmt.Sprintf("<%s?%s>; rel=%q", base, q.Encode(), rel)
	}
	var links []string
	if page < last {
		links = append(links, at(page+1, "next"), at(last, "last"))
	}
	if page > 1 {
		links = append(links, at(1, "first"), at(min(page-1, last), "prev"))
	}
	return strings.Join(links, ", ")
}

type issueRequest struct {
	Title       *string   `json:"title"`
	Body        *string   `json:"body"`
	State       *string   `json:"state"`
	StateReason *string   `json:"state_reason"`
	Labels      *[]string `json:"labels"`
}

func (s *Sandbox) createIssue(c *githubCall, name string) {
	var in issueRequest
	if !c.decode(&in) {
		return
	}
	if strings.TrimSpace(deref(in.Title)) == "" {
		c.invalid("Issue", "title", "title is required")
		return
	}
	repo := s.github.repo(name)
	now := time.Now().UTC().Truncate(time.Second)
	issue := &githubIssue{number: len(repo.issues) + 1, title: *in.Title, body: deref(in.Body), state: "open", user: c.login, created: now, updated: now}
	if in.Labels != nil {
		repo.setLabels(issue, *in.Labels)
	}
	repo.issues = append(repo.issues, issue)
	c.call.params["number"] = strconv.Itoa(issue.number)
	c.w.Header().Set("Location", fmt.Sprintf("%s/repos/%s/issues/%d", c.api(), name, issue.number))
	c.answer(http.StatusCreated, true, issue.view(c.api(), name))
}

// editIssue changes the fields the request gives; labels given replace the
// issue's labels. The call is effective when something changed.
func (s *Sandbox) editIssue(c *githubCall, name string, issue *githubIssue) {
	var in issueRequest
	if !c.decode(&in) {
		return
	}
	if in.State != nil && *in.State != "open" && *in.State != "closed" {
		c.invalid("Issue", "state", fmt.Sprintf("state %q is not open or closed", *in.State))
		return
	}
	if in.Title != nil && strings.TrimSpace(*in.Title) == "" {
		c.invalid("Issue", "title", "title cannot be blank")
		return
	}
	before := fmt.Sprint(issue.title, "\x00", issue.body, "\x00", issue.state, "\x00", issue.labels)
	if in.Title != nil {
		issue.title = *in.Title
	}
	if in.Body != nil {
		issue.body = *in.Body
	}
	now := time.Now().UTC().Truncate(time.Second)
	if in.State != nil && *in.State != issue.state {
		issue.state = *in.State
		issue.reason = deref(in.StateReason)
		if issue.state == "closed" {
			issue.closed = now
			if issue.reason == "" {
				issue.reason = "completed"
			}
		} else {
			issue.closed = time.Time{}
			issue.reason = "reopened"
		}
	}
	if in.Labels != nil {
		s.github.repo(name).setLabels(issue, *in.Labels)
	}
	changed := before != fmt.Sprint(issue.title, "\x00", issue.body, "\x00", issue.state, "\x00", issue.labels)
	if changed {
		issue.updated = now
	}
	c.call.params["number"] = strconv.Itoa(issue.number)
	c.answer(http.StatusOK, changed, issue.view(c.api(), name))
}

// GitHubIssueView is an issue's state.
type GitHubIssueView struct {
	Number int
	Title  string
	Body   string
	State  string
	Labels []string
	User   string
}

// GitHubIssues returns a repository's issues, oldest first.
func (s *Sandbox) GitHubIssues(repo string) []GitHubIssueView {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []GitHubIssueView
	for _, i := range s.github.repo(repo).issues {
		out = append(out, GitHubIssueView{Number: i.number, Title: i.title, Body: i.body, State: i.state, Labels: slices.Clone(i.labels), User: i.user})
	}
	return out
}
