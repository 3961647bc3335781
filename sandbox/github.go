package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The GitHub REST endpoints that stanch uses, in the GitHub Enterprise
// Server layout (/api/v3/…), which go-github uses when given a custom URL:
// secret-scanning alerts (read, list, resolve), issues (list, create, read,
// edit) and GitHub App installation tokens.

// SeedGitHub is the GitHub side of the sandbox.
type SeedGitHub struct {
	// Token is a personal access token accepted on every endpoint
	// (Authorization: Bearer or token), alongside the installation tokens
	// that Apps mint.
	Token string `yaml:"token" json:"token"`
	// Login is the user Token belongs to, who resolves alerts and opens
	// issues with it (default stanch-responder).
	Login  string            `yaml:"login" json:"login"`
	Alerts []SeedGitHubAlert `yaml:"alerts" json:"alerts"`
	// Apps are GitHub Apps that may mint installation tokens with a JWT
	// signed by their private key (NewGitHubAppKey makes a key pair).
	Apps []SeedGitHubApp `yaml:"apps" json:"apps"`
	// NoAccess are repositories (owner/name) whose secret-scanning alerts
	// the token and the Apps may not read: every secret-scanning request
	// there is answered 404 Not Found, as GitHub answers a token without
	// the secret_scanning_alerts permission (it does not confirm that the
	// repository or the alert exists).
	NoAccess []string `yaml:"no_access" json:"no_access"`
	// Repositories have files on branches (contents, refs, pull requests)
	// and Actions secrets (github_contents.go, github_actions.go); Orgs
	// have organisation Actions secrets.
	Repositories []SeedGitHubRepository `yaml:"repositories" json:"repositories"`
	Orgs         []SeedGitHubOrg        `yaml:"orgs" json:"orgs"`
}

// SeedGitHubAlert is a secret-scanning alert with its secret literal.
type SeedGitHubAlert struct {
	Repo       string               `yaml:"repo" json:"repo"` // owner/name
	Number     int                  `yaml:"number" json:"number"`
	SecretType string               `yaml:"secret_type" json:"secret_type"`
	Secret     string               `yaml:"secret" json:"secret"`
	State      string               `yaml:"state" json:"state"` // open (default) or resolved
	Locations  []SeedGitHubLocation `yaml:"locations" json:"locations"`
	// Resolution and ResolutionComment describe an alert seeded resolved.
	Resolution        string `yaml:"resolution" json:"resolution"`
	ResolutionComment string `yaml:"resolution_comment" json:"resolution_comment"`
}

// SeedGitHubLocation is where a secret was found in a commit.
type SeedGitHubLocation struct {
	Path   string `yaml:"path" json:"path"`
	Line   int    `yaml:"line" json:"line"`
	Commit string `yaml:"commit" json:"commit"`
}

// githubResolutions are the resolutions a PATCH may set.
var githubResolutions = map[string]bool{"false_positive": true, "wont_fix": true, "revoked": true, "used_in_tests": true}

type githubState struct {
	token  string
	login  string
	alerts map[string]*githubAlert // by "owner/name#number"
	apps   map[int64]*githubApp    // by app id
	tokens map[string]*installationToken
	repos  map[string]*githubRepo // issues and labels, by owner/name
	// noAccess are the repositories whose alerts nobody may read.
	noAccess map[string]bool
	// git holds seeded repositories' branches, commits, files and pull
	// requests; actions the Actions secrets and key pairs, by scope.
	git     map[string]*gitRepo
	actions map[string]*actionsScope
}

type githubAlert struct {
	SeedGitHubAlert
	created    time.Time
	updated    time.Time
	resolvedAt time.Time
	resolvedBy string
}

func newGitHubState(seed *SeedGitHub) *githubState {
	st := &githubState{login: "stanch-responder", alerts: map[string]*githubAlert{}, apps: map[int64]*githubApp{}, tokens: map[string]*installationToken{}, repos: map[string]*githubRepo{}, noAccess: map[string]bool{}}
	st.git, st.actions = map[string]*gitRepo{}, map[string]*actionsScope{}
	if seed == nil {
		return st
	}
	st.seedRepositories(seed)
	st.token = seed.Token
	for _, repo := range seed.NoAccess {
		st.noAccess[repo] = true
	}
	if seed.Login != "" {
		st.login = seed.Login
	}
	created := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	for i := range seed.Alerts {
		a := &githubAlert{SeedGitHubAlert: seed.Alerts[i], created: created, updated: created}
		if a.State == "" {
			a.State = "open"
		}
		if a.State == "resolved" {
			if a.Resolution == "" {
				a.Resolution = "revoked"
			}
			a.resolvedAt, a.resolvedBy = created, st.login
		}
		st.alerts[a.Repo+"#"+strconv.Itoa(a.Number)] = a
	}
	for _, sa := range seed.Apps {
		// The seed was validated, so the key and the lifetime parse.
		app, _ := newGitHubApp(sa)
		st.apps[app.id] = app
	}
	return st
}

func (g *SeedGitHub) validate() error {
	if g == nil {
		return nil
	}
	for _, a := range g.Alerts {
		owner, name, ok := strings.Cut(a.Repo, "/")
		if !ok || owner == "" || name == "" || a.Number <= 0 {
			return fmt.Errorf("github: alert %s#%d needs a repo owner/name and a number above 0", a.Repo, a.Number)
		}
		if a.State != "" && a.State != "open" && a.State != "resolved" {
			return fmt.Errorf("github: alert %s#%d: state %q is not open or resolved", a.Repo, a.Number, a.State)
		}
		if a.Resolution != "" && !githubResolutions[a.Resolution] {
			return fmt.Errorf("github: alert %s#%d: resolution %q is not one of false_positive, wont_fix, revoked, used_in_tests", a.Repo, a.Number, a.Resolution)
		}
	}
	for _, repo := range g.NoAccess {
		if owner, name, ok := strings.Cut(repo, "/"); !ok || owner == "" || name == "" {
			return fmt.Errorf("github: no_access %q is not owner/name", repo)
		}
	}
	installations := map[int64]bool{}
	apps := map[int64]bool{}
	for _, sa := range g.Apps {
		if _, err := newGitHubApp(sa); err != nil {
			return err
		}
		if apps[sa.ID] || installations[sa.InstallationID] {
			return fmt.Errorf("github: app %d: app ids and installation ids must be unique", sa.ID)
		}
		apps[sa.ID], installations[sa.InstallationID] = true, true
	}
	return g.validateRepositories()
}

// githubCall is one request to the GitHub side, answered under s.mu.
type githubCall struct {
	s     *Sandbox
	w     http.ResponseWriter
	r     *http.Request
	call  *request
	login string // the authenticated user, or the App's bot
}

// answer writes v as JSON with status and records the call.
func (c *githubCall) answer(status int, effective bool, v any) {
	c.s.recordLocked(c.call, status, effective)
	c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.w.WriteHeader(status)
	_ = json.NewEncoder(c.w).Encode(v)
}

// fail answers with GitHub's error shape.
func (c *githubCall) fail(status int, message string) {
	c.answer(status, false, map[string]string{"message": message, "documentation_url": "https://docs.github.com/rest"})
}

// invalid answers 422 Validation Failed, naming the field.
func (c *githubCall) invalid(resource, field, message string) {
	c.answer(http.StatusUnprocessableEntity, false, map[string]any{
		"message":           "Validation Failed",
		"errors":            []map[string]string{{"resource": resource, "field": field, "code": "invalid", "message": message}},
		"documentation_url": "https://docs.github.com/rest",
		"status":            "422",
	})
}

// decode reads a JSON request body into v; it answers 400 and returns false
// when the body is not JSON.
func (c *githubCall) decode(v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		c.fail(http.StatusBadRequest, "Problems parsing JSON")
		return false
	}
	return true
}

func (c *githubCall) api() string { return "http://" + c.r.Host + "/api/v3" }

func (s *Sandbox) serveGitHub(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/v3/"), "/"), "/")
	c := &githubCall{s: s, w: w, r: r, call: &request{service: "github", action: r.Method + " " + r.URL.Path, params: map[string]string{"path": r.URL.Path}}}
	fault := s.fault("github")
	if err := sleepCtx(r.Context(), fault.Latency); err != nil {
		s.mu.Lock()
		s.recordLocked(c.call, 499, false) // the client went away before the answer
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if fault != (Fault{}) {
		if e := fault.inject(); e != nil {
			if e.status == http.StatusServiceUnavailable {
				c.fail(http.StatusServiceUnavailable, "injected by the sandbox: service unavailable")
			} else {
				w.Header().Set("Retry-After", "1")
				c.fail(http.StatusTooManyRequests, "injected by the sandbox: API rate limit exceeded")
			}
			return
		}
	}
	if s.serveGitHubToken(c, parts) {
		return
	}
	if len(parts) == 4 && parts[0] == "app" && parts[1] == "installations" && parts[3] == "access_tokens" && r.Method == http.MethodPost {
		c.call.action = "CreateInstallationAccessToken"
		s.createInstallationToken(c, parts[2])
		return
	}
	if s.serveGitHubRepository(c, parts) {
		return
	}
	if len(parts) < 4 || parts[0] != "repos" {
		c.fail(http.StatusNotFound, "Not Found")
		return
	}
	repo := parts[1] + "/" + parts[2]
	rest := parts[3:]
	route := ""
	switch {
	case len(rest) == 2 && rest[0] == "secret-scanning" && rest[1] == "alerts" && r.Method == http.MethodGet:
		route = "ListSecretScanningAlertsForRepo"
	case len(rest) == 3 && rest[0] == "secret-scanning" && rest[1] == "alerts" && r.Method == http.MethodGet:
		route = "GetSecretScanningAlert"
	case len(rest) == 3 && rest[0] == "secret-scanning" && rest[1] == "alerts" && r.Method == http.MethodPatch:
		route = "UpdateSecretScanningAlert"
	case len(rest) == 4 && rest[0] == "secret-scanning" && rest[1] == "alerts" && rest[3] == "locations" && r.Method == http.MethodGet:
		route = "ListSecretScanningAlertLocations"
	case len(rest) == 1 && rest[0] == "issues" && r.Method == http.MethodGet:
		route = "ListIssues"
	case len(rest) == 1 && rest[0] == "issues" && r.Method == http.MethodPost:
		route = "CreateIssue"
	case len(rest) == 2 && rest[0] == "issues" && r.Method == http.MethodGet:
		route = "GetIssue"
	case len(rest) == 2 && rest[0] == "issues" && r.Method == http.MethodPatch:
		route = "UpdateIssue"
	default:
		c.fail(http.StatusNotFound, "Not Found")
		return
	}
	c.call.action = route
	login, ok := s.github.caller(r.Header.Get("Authorization"))
	if !ok {
		c.fail(http.StatusUnauthorized, "Bad credentials")
		return
	}
	c.login = login
	if strings.Contains(route, "SecretScanning") && s.github.noAccess[repo] {
		c.fail(http.StatusNotFound, "Not Found")
		return
	}
	switch route {
	case "ListSecretScanningAlertsForRepo":
		s.listGitHubAlerts(c, repo)
	case "GetSecretScanningAlert", "ListSecretScanningAlertLocations", "UpdateSecretScanningAlert":
		alert, ok := s.github.alerts[repo+"#"+rest[2]]
		if !ok {
			c.fail(http.StatusNotFound, "Not Found")
			return
		}
		switch route {
		case "GetSecretScanningAlert":
			hide := r.URL.Query().Get("hide_secret") == "true"
			c.call.params["hide_secret"] = strconv.FormatBool(hide)
			c.answer(http.StatusOK, false, alert.view(c.api(), hide))
		case "ListSecretScanningAlertLocations":
			c.answer(http.StatusOK, false, alert.locations(c.api()))
		default:
			s.updateGitHubAlert(c, alert)
		}
	case "ListIssues":
		s.listIssues(c, repo)
	case "CreateIssue":
		s.createIssue(c, repo)
	default:
		n, err := strconv.Atoi(rest[1])
		issue := s.github.repo(repo).issue(n)
		if err != nil || issue == nil {
			c.fail(http.StatusNotFound, "Not Found")
			return
		}
		if route == "GetIssue" {
			c.answer(http.StatusOK, false, issue.view(c.api(), repo))
			return
		}
		s.editIssue(c, repo, issue)
	}
}

// caller returns who an Authorization header authenticates: the seeded
// token's user, or the bot of the App whose unexpired installation token it
// carries.
func (g *githubState) caller(auth string) (string, bool) {
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(auth, "token ")
	}
	if !ok || tok == "" {
		return "", false
	}
	if g.token != "" && tok == g.token {
		return g.login, true
	}
	if it, ok := g.tokens[tok]; ok && time.Now().Before(it.expires) {
		return it.app.slug + "[bot]", true
	}
	return "", false
}

// view is the REST representation of the alert (the secret-scanning-alert
// schema); hide leaves the secret literal out, as ?hide_secret=true does.
func (a *githubAlert) view(api string, hide bool) map[string]any {
	n := strconv.Itoa(a.Number)
	url := api + "/repos/" + a.Repo + "/secret-scanning/alerts/" + n
	owner, name, _ := strings.Cut(a.Repo, "/")
	v := map[string]any{
		"number": a.Number, "created_at": a.created.Format(time.RFC3339), "updated_at": a.updated.Format(time.RFC3339),
		"url": url, "html_url": "https://github.com/" + a.Repo + "/security/secret-scanning/" + n,
		"locations_url": url + "/locations", "state": a.State, "secret_type": a.SecretType,
		"secret_type_display_name": fmt.Sprintf("%s (sandbox)", a.SecretType),
		"validity":                 "active", "publicly_leaked": false, "multi_repo": false,
		"resolution": nil, "resolved_at": nil, "resolved_by": nil, "resolution_comment": nil,
		"repository": map[string]any{"full_name": a.Repo, "name": name, "owner": map[string]any{"login": owner}},
	}
	if !hide {
		v["secret"] = a.Secret
	}
	if a.State == "resolved" {
		v["resolution"] = a.Resolution
		v["resolved_at"] = a.resolvedAt.Format(time.RFC3339)
		v["resolved_by"] = githubUser(a.resolvedBy)
		if a.ResolutionComment != "" {
			v["resolution_comment"] = a.ResolutionComment
		}
	}
	return v
}

func githubUser(login string) map[string]any {
	typ := "User"
	if strings.HasSuffix(login, "[bot]") {
		typ = "Bot"
	}
	return map[string]any{"login": login, "type": typ}
}

func (a *githubAlert) locations(api string) []map[string]any {
	locs := []map[string]any{}
	for _, l := range a.Locations {
		locs = append(locs, map[string]any{"type": "commit", "details": map[string]any{
			"path": l.Path, "start_line": l.Line, "end_line": l.Line, "start_column": 1, "end_column": 41,
			"blob_sha": "b10b" + l.Commit[:min(len(l.Commit), 36)], "commit_sha": l.Commit,
			"blob_url":   api + "/repos/" + a.Repo + "/git/blobs/b10b",
			"commit_url": api + "/repos/" + a.Repo + "/git/commits/" + l.Commit,
		}})
	}
	return locs
}

// listGitHubAlerts answers the list of a repository's alerts, newest
// first, in the same representation as a single alert (with the secret
// literal unless ?hide_secret=true), filtered by ?state= and by
// ?secret_type=, a comma-separated list of secret types.
func (s *Sandbox) listGitHubAlerts(c *githubCall, repo string) {
	q := c.r.URL.Query()
	state := q.Get("state")
	hide := q.Get("hide_secret") == "true"
	types := map[string]bool{}
	for t := range strings.SplitSeq(q.Get("secret_type"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			types[t] = true
		}
	}
	c.call.params["secret_type"] = q.Get("secret_type")
	var matched []*githubAlert
	for _, a := range s.github.alerts {
		if a.Repo != repo || (state != "" && a.State != state) || (len(types) > 0 && !types[a.SecretType]) {
			continue
		}
		matched = append(matched, a)
	}
	slices.SortFunc(matched, func(a, b *githubAlert) int { return b.Number - a.Number })
	list := make([]map[string]any, 0, len(matched))
	for _, a := range matched {
		list = append(list, a.view(c.api(), hide))
	}
	c.answer(http.StatusOK, false, list)
}

// updateGitHubAlert resolves or reopens an alert. Resolving needs one of
// the four resolutions; an alert already resolved keeps its first
// resolution and comment (the comment cannot be edited later), and such a
// PATCH is not effective.
func (s *Sandbox) updateGitHubAlert(c *githubCall, a *githubAlert) {
	var in struct {
		State             string  `json:"state"`
		Resolution        *string `json:"resolution"`
		ResolutionComment *string `json:"resolution_comment"`
	}
	if !c.decode(&in) {
		return
	}
	resolution, comment := deref(in.Resolution), deref(in.ResolutionComment)
	c.call.params["state"], c.call.params["resolution"] = in.State, resolution
	switch in.State {
	case "resolved":
		if !githubResolutions[resolution] {
			c.invalid("SecretScanningAlert", "resolution", fmt.Sprintf("resolution %q is not valid when state is resolved: use one of false_positive, wont_fix, revoked, used_in_tests", resolution))
			return
		}
		if a.State == "resolved" {
			c.answer(http.StatusOK, false, a.view(c.api(), false))
			return
		}
		now := time.Now().UTC().Truncate(time.Second)
		a.State, a.Resolution, a.ResolutionComment, a.resolvedAt, a.resolvedBy, a.updated = "resolved", resolution, comment, now, c.login, now
		c.answer(http.StatusOK, true, a.view(c.api(), false))
	case "open":
		if comment != "" {
			c.invalid("SecretScanningAlert", "resolution_comment", "resolution_comment must be null when state is open")
			return
		}
		if a.State == "open" {
			c.answer(http.StatusOK, false, a.view(c.api(), false))
			return
		}
		a.State, a.Resolution, a.ResolutionComment, a.resolvedAt, a.resolvedBy, a.updated = "open", "", "", time.Time{}, "", time.Now().UTC().Truncate(time.Second)
		c.answer(http.StatusOK, true, a.view(c.api(), false))
	default:
		c.invalid("SecretScanningAlert", "state", fmt.Sprintf("state %q is not open or resolved", in.State))
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// GitHubAlertView is a secret-scanning alert's state, without its secret.
type GitHubAlertView struct {
	Repo              string
	Number            int
	State             string
	Resolution        string
	ResolutionComment string
	ResolvedBy        string
	ResolvedAt        time.Time
}

// GitHubAlert returns the state of the alert repo#number.
func (s *Sandbox) GitHubAlert(repo string, number int) (GitHubAlertView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.github.alerts[repo+"#"+strconv.Itoa(number)]
	if !ok {
		return GitHubAlertView{}, false
	}
	return GitHubAlertView{Repo: a.Repo, Number: a.Number, State: a.State, Resolution: a.Resolution, ResolutionComment: a.ResolutionComment, ResolvedBy: a.resolvedBy, ResolvedAt: a.resolvedAt}, true
}

// printGitHubEnv writes the lines that point stanch's GitHub client at the
// sandbox, when the seed has a GitHub side.
func printGitHubEnv(out io.Writer, seed *SeedGitHub, url string) {
	if seed == nil {
		return
	}
	fmt.Fprintf(out, "export STANCH_GITHUB_API_URL=%s/api/v3/\n", url)
	if seed.Token != "" {
		fmt.Fprintf(out, "export STANCH_GITHUB_TOKEN=%s\n", seed.Token)
	}
}
