package sandbox

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Seeded repositories: GET /repos/{o}/{r}; files on branches through the
// contents API (GET and PUT /repos/{o}/{r}/contents/{path}); branches
// through the Git refs API (GET /git/ref/heads/{b}, POST /git/refs, PATCH
// and DELETE /git/refs/heads/{b}); pull requests (POST, GET list with
// head/base/state, GET and PATCH one). Enough to deliver a file as a commit
// on a branch with a pull request, idempotently. Blob SHAs are Git's; commit
// SHAs are unique but not Git's. Pull request numbers are counted apart from
// issue numbers (GitHub shares one sequence).

// SeedGitHubRepository is a repository with files on its default branch and
// Actions secrets.
type SeedGitHubRepository struct {
	Name string `yaml:"name" json:"name"` // owner/name
	// ID is the repository id (default 1000 + its place in the list, from
	// 1); go-github's environment secret methods address it by id.
	ID            int64  `yaml:"id" json:"id"`
	DefaultBranch string `yaml:"default_branch" json:"default_branch"` // default main
	// Files are the default branch's files, path to content, in one commit.
	Files map[string]string `yaml:"files" json:"files"`
	// Secrets are Actions secrets already set, name to value (sealed with
	// the repository's public key when the sandbox starts).
	Secrets map[string]string `yaml:"secrets" json:"secrets"`
	// Environments are the repository's environments, each with its
	// Actions secrets already set (name to value; {} for none).
	Environments map[string]map[string]string `yaml:"environments" json:"environments"`
}

// SeedGitHubOrg is an organisation with Actions secrets already set (every
// owner of a seeded repository is an organisation too).
type SeedGitHubOrg struct {
	Login   string            `yaml:"login" json:"login"`
	Secrets map[string]string `yaml:"secrets" json:"secrets"`
}

type gitRepo struct {
	name          string
	id            int64
	defaultBranch string
	branches      map[string]string // branch to commit SHA
	commits       map[string]*gitCommit
	blobs         map[string][]byte
	pulls         []*pullRequest // by number - 1
	seq           int
}

type gitCommit struct {
	sha, parent, message, author string
	files                        map[string]string // path to blob SHA
	changed                      []string
	time                         time.Time
}

type pullRequest struct {
	number                          int
	title, body, head, base, user   string
	state                           string // open or closed
	draft, merged                   bool
	created, updated, closed, mergd time.Time
}

func (g *SeedGitHub) repositoryIDs() []int64 {
	ids := make([]int64, len(g.Repositories))
	for i, r := range g.Repositories {
		ids[i] = r.ID
		if ids[i] == 0 {
			ids[i] = int64(1000 + i + 1)
		}
	}
	return ids
}

func (g *SeedGitHub) validateRepositories() error {
	names, ids := map[string]bool{}, map[int64]bool{}
	for i, r := range g.Repositories {
		owner, name, ok := strings.Cut(r.Name, "/")
		if !ok || owner == "" || name == "" || strings.Contains(name, "/") || names[r.Name] {
			return fmt.Errorf("github: repository %q is not a unique owner/name", r.Name)
		}
		names[r.Name] = true
		id := g.repositoryIDs()[i]
		if id < 0 || ids[id] {
			return fmt.Errorf("github: repository %s: id %d is negative or repeated", r.Name, id)
		}
		ids[id] = true
		for p := range r.Files {
			if p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") {
				return fmt.Errorf("github: repository %s: file path %q is not relative", r.Name, p)
			}
		}
		if err := validSecretNames(r.Name, r.Secrets); err != nil {
			return err
		}
		for env, secrets := range r.Environments {
			if env == "" || strings.Contains(env, "/") {
				return fmt.Errorf("github: repository %s: environment %q", r.Name, env)
			}
			if err := validSecretNames(r.Name+" environment "+env, secrets); err != nil {
				return err
			}
		}
	}
	orgs := map[string]bool{}
	for _, o := range g.Orgs {
		if o.Login == "" || strings.Contains(o.Login, "/") || orgs[o.Login] {
			return fmt.Errorf("github: org %q is empty or repeated", o.Login)
		}
		orgs[o.Login] = true
		if err := validSecretNames("org "+o.Login, o.Secrets); err != nil {
			return err
		}
	}
	return nil
}

func validSecretNames(where string, secrets map[string]string) error {
	for name := range secrets {
		if msg := actionsSecretNameProblem(name); msg != "" {
			return fmt.Errorf("github: %s: secret %q: %s", where, name, msg)
		}
	}
	return nil
}

// seedRepositories builds the repositories, their first commits and every
// Actions scope with its key pair and seeded secrets.
func (g *githubState) seedRepositories(seed *SeedGitHub) {
	created := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	ids := seed.repositoryIDs()
	for i, sr := range seed.Repositories {
		r := &gitRepo{name: sr.Name, id: ids[i], defaultBranch: sr.DefaultBranch, branches: map[string]string{}, commits: map[string]*gitCommit{}, blobs: map[string][]byte{}}
		if r.defaultBranch == "" {
			r.defaultBranch = "main"
		}
		files := map[string][]byte{}
		for p, content := range sr.Files {
			files[p] = []byte(content)
		}
		c := r.commit("", "Initial commit", "sandbox", files, nil, created)
		r.branches[r.defaultBranch] = c.sha
		g.git[r.name] = r
		g.scope(r.name).seed(sr.Secrets, "", created)
		for env, secrets := range sr.Environments {
			g.scope(r.name+"/"+env).seed(secrets, "", created)
		}
		owner, _, _ := strings.Cut(r.name, "/")
		g.scope(owner)
	}
	for _, o := range seed.Orgs {
		g.scope(o.Login).seed(o.Secrets, "all", created)
	}
}

// commit adds a commit on parent (files replace the parent's files named
// there; a nil content deletes) and returns it; branches do not move.
func (r *gitRepo) commit(parent, message, author string, files map[string][]byte, base map[string]string, at time.Time) *gitCommit {
	c := &gitCommit{parent: parent, message: message, author: author, files: map[string]string{}, time: at}
	for p, sha := range base {
		c.files[p] = sha
	}
	for _, p := range sortedKeys(files) {
		if files[p] == nil {
			delete(c.files, p)
		} else {
			sha := gitBlobSHA(files[p])
			r.blobs[sha] = files[p]
			c.files[p] = sha
		}
		c.changed = append(c.changed, p)
	}
	r.seq++
	h := sha1.New()
	fmt.Fprintf(h, "parent %s\nauthor %s %d\nseq %d\n\n%s\n", parent, author, at.UnixNano(), r.seq, message)
	for _, p := range sortedKeys(c.files) {
		fmt.Fprintf(h, "%s %s\n", c.files[p], p)
	}
	c.sha = hex.EncodeToString(h.Sum(nil))
	r.commits[c.sha] = c
	return c
}

// gitBlobSHA is Git's object id of a blob.
func gitBlobSHA(content []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(content))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

// resolve returns the commit a ref names: a branch (optionally
// refs/heads/ or heads/), a commit SHA, or "" for the default branch.
func (r *gitRepo) resolve(ref string) (*gitCommit, bool) {
	if ref == "" {
		ref = r.defaultBranch
	}
	ref = strings.TrimPrefix(strings.TrimPrefix(ref, "refs/"), "heads/")
	if sha, ok := r.branches[ref]; ok {
		return r.commits[sha], true
	}
	c, ok := r.commits[ref]
	return c, ok
}

// isAncestor reports whether a is b or one of b's ancestors.
func (r *gitRepo) isAncestor(a, b string) bool {
	for sha := b; sha != ""; {
		if sha == a {
			return true
		}
		c, ok := r.commits[sha]
		if !ok {
			return false
		}
		sha = c.parent
	}
	return false
}

// installationApp is the App whose unexpired installation token auth
// carries, or nil.
func (g *githubState) installationApp(auth string) *githubApp {
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		tok, _ = strings.CutPrefix(auth, "token ")
	}
	if it, ok := g.tokens[tok]; ok && time.Now().Before(it.expires) {
		return it.app
	}
	return nil
}

// permitted answers 403 and returns false when the caller is an App
// installation whose seeded permissions lack perm at level (read or
// write); a personal token and an App without seeded permissions pass.
func (c *githubCall) permitted(perm, level string) bool {
	app := c.s.github.installationApp(c.r.Header.Get("Authorization"))
	if app == nil || app.permissions == nil {
		return true
	}
	have := app.permissions[perm]
	if have == "write" || have == "admin" || (level == "read" && have == "read") {
		return true
	}
	c.fail(http.StatusForbidden, "Resource not accessible by integration")
	return false
}

// noContent answers 204 and records the call.
func (c *githubCall) noContent(effective bool) {
	c.s.recordLocked(c.call, http.StatusNoContent, effective)
	c.w.WriteHeader(http.StatusNoContent)
}

// serveGitHubRepository answers the repository, contents, refs, pull
// request and Actions secrets endpoints; it returns false for any other
// path. s.mu is held.
func (s *Sandbox) serveGitHubRepository(c *githubCall, parts []string) bool {
	switch {
	case len(parts) >= 4 && parts[0] == "orgs" && parts[2] == "actions" && parts[3] == "secrets":
		if !s.githubAuth(c) {
			return true
		}
		c.call.params["org"] = parts[1]
		scope, ok := s.github.actions[parts[1]]
		if !ok || strings.Contains(parts[1], "/") {
			c.fail(http.StatusNotFound, "Not Found")
			return true
		}
		s.serveActionsSecrets(c, scope, "Org", "organization_secrets", parts[4:])
		return true
	case len(parts) >= 5 && parts[0] == "repositories" && parts[2] == "environments" && parts[4] == "secrets":
		if !s.githubAuth(c) {
			return true
		}
		id, _ := strconv.ParseInt(parts[1], 10, 64)
		var repo *gitRepo
		for _, r := range s.github.git {
			if r.id == id {
				repo = r
			}
		}
		s.serveEnvSecrets(c, repo, parts[3], parts[5:])
		return true
	case len(parts) < 3 || parts[0] != "repos":
		return false
	}
	name := parts[1] + "/" + parts[2]
	rest := parts[3:]
	if len(rest) > 0 && !slices.Contains([]string{"actions", "environments", "contents", "git", "pulls"}, rest[0]) {
		return false
	}
	if len(rest) > 0 && rest[0] == "actions" && (len(rest) < 2 || rest[1] != "secrets") {
		return false
	}
	if len(rest) == 0 && c.r.Method != http.MethodGet {
		return false
	}
	if !s.githubAuth(c) {
		return true
	}
	c.call.params["repo"] = name
	repo, ok := s.github.git[name]
	if !ok {
		c.call.action = "GetRepository"
		c.fail(http.StatusNotFound, "Not Found")
		return true
	}
	switch rest0 := append(rest, ""); rest0[0] {
	case "":
		c.call.action = "GetRepository"
		c.answer(http.StatusOK, false, repo.view(c.api()))
	case "actions":
		s.serveActionsSecrets(c, s.github.actions[name], "Repo", "secrets", rest[2:])
	case "environments":
		if len(rest) < 3 || rest[2] != "secrets" {
			c.fail(http.StatusNotFound, "Not Found")
			return true
		}
		s.serveEnvSecrets(c, repo, rest[1], rest[3:])
	case "contents":
		s.serveContents(c, repo, strings.Join(rest[1:], "/"))
	case "git":
		s.serveGitRefs(c, repo, rest[1:])
	case "pulls":
		s.servePulls(c, repo, rest[1:])
	}
	return true
}

// githubAuth checks the caller's credentials, answering 401 when they are
// not good.
func (s *Sandbox) githubAuth(c *githubCall) bool {
	login, ok := s.github.caller(c.r.Header.Get("Authorization"))
	if !ok {
		c.fail(http.StatusUnauthorized, "Bad credentials")
		return false
	}
	c.login = login
	return true
}

func (r *gitRepo) view(api string) map[string]any {
	owner, name, _ := strings.Cut(r.name, "/")
	return map[string]any{
		"id": r.id, "node_id": "R_sandbox" + strconv.FormatInt(r.id, 10), "name": name, "full_name": r.name,
		"owner": map[string]any{"login": owner, "type": "Organization"}, "private": true,
		"default_branch": r.defaultBranch, "html_url": "https://github.com/" + r.name, "url": api + "/repos/" + r.name,
	}
}

// wrap64 is content in base64 as the contents API sends it: lines of 60
// characters, each ending in a newline.
func wrap64(content []byte) string {
	enc := base64.StdEncoding.EncodeToString(content)
	var b strings.Builder
	for len(enc) > 60 {
		b.WriteString(enc[:60] + "\n")
		enc = enc[60:]
	}
	b.WriteString(enc + "\n")
	return b.String()
}

func (r *gitRepo) fileView(api, ref, p, sha string, withContent bool) map[string]any {
	url := api + "/repos/" + r.name + "/contents/" + p + "?ref=" + ref
	v := map[string]any{
		"type": "file", "name": path.Base(p), "path": p, "sha": sha, "size": len(r.blobs[sha]), "url": url,
		"git_url":      api + "/repos/" + r.name + "/git/blobs/" + sha,
		"html_url":     "https://github.com/" + r.name + "/blob/" + ref + "/" + p,
		"download_url": "https://raw.githubusercontent.com/" + r.name + "/" + ref + "/" + p,
	}
	if withContent {
		v["encoding"], v["content"] = "base64", wrap64(r.blobs[sha])
	}
	return v
}

func (r *gitRepo) commitView(api string, c *gitCommit) map[string]any {
	who := map[string]any{"name": c.author, "email": c.author + "@users.noreply.github.com", "date": c.time.Format(time.RFC3339)}
	parents := []map[string]any{}
	if c.parent != "" {
		parents = append(parents, map[string]any{"sha": c.parent, "url": api + "/repos/" + r.name + "/git/commits/" + c.parent})
	}
	return map[string]any{
		"sha": c.sha, "node_id": "C_sandbox" + c.sha[:12], "url": api + "/repos/" + r.name + "/git/commits/" + c.sha,
		"html_url": "https://github.com/" + r.name + "/commit/" + c.sha, "author": who, "committer": who,
		"message": c.message, "parents": parents, "tree": map[string]any{"sha": c.sha, "url": api + "/repos/" + r.name + "/git/trees/" + c.sha},
		"verification": map[string]any{"verified": false, "reason": "unsigned"},
	}
}

func (s *Sandbox) serveContents(c *githubCall, repo *gitRepo, p string) {
	c.call.params["file"] = p
	switch c.r.Method {
	case http.MethodGet:
		c.call.action = "GetContents"
		if !c.permitted("contents", "read") {
			return
		}
		ref := c.r.URL.Query().Get("ref")
		c.call.params["ref"] = ref
		commit, ok := repo.resolve(ref)
		if !ok {
			c.fail(http.StatusNotFound, "No commit found for the ref "+ref)
			return
		}
		if ref == "" {
			ref = repo.defaultBranch
		}
		if sha, ok := commit.files[p]; ok {
			c.call.params["blob_sha"] = sha
			c.answer(http.StatusOK, false, repo.fileView(c.api(), ref, p, sha, true))
			return
		}
		// A directory: its files and subdirectories.
		prefix := strings.TrimSuffix(p+"/", "/")
		if prefix != "" {
			prefix += "/"
		}
		list, dirs := []map[string]any{}, map[string]bool{}
		for _, f := range sortedKeys(commit.files) {
			rest, ok := strings.CutPrefix(f, prefix)
			if !ok {
				continue
			}
			if dir, _, isDir := strings.Cut(rest, "/"); isDir {
				if !dirs[dir] {
					dirs[dir] = true
					list = append(list, map[string]any{"type": "dir", "name": dir, "path": prefix + dir, "sha": "", "size": 0})
				}
				continue
			}
			list = append(list, repo.fileView(c.api(), ref, f, commit.files[f], false))
		}
		if len(list) == 0 {
			c.fail(http.StatusNotFound, "Not Found")
			return
		}
		c.answer(http.StatusOK, false, list)
	case http.MethodPut:
		c.call.action = "CreateOrUpdateFileContents"
		if c.permitted("contents", "write") {
			s.putContents(c, repo, p)
		}
	default:
		c.fail(http.StatusNotFound, "Not Found")
	}
}

func (s *Sandbox) putContents(c *githubCall, repo *gitRepo, p string) {
	var in struct {
		Message   *string `json:"message"`
		Content   *string `json:"content"`
		SHA       string  `json:"sha"`
		Branch    string  `json:"branch"`
		Committer *struct {
			Name string `json:"name"`
		} `json:"committer"`
	}
	if !c.decode(&in) {
		return
	}
	branch := in.Branch
	if branch == "" {
		branch = repo.defaultBranch
	}
	c.call.params["branch"] = branch
	switch {
	case p == "" || strings.HasSuffix(p, "/") || slices.Contains(strings.Split(p, "/"), ".."):
		c.fail(http.StatusUnprocessableEntity, "path is not a file path")
		return
	case in.Message == nil || *in.Message == "":
		c.fail(http.StatusUnprocessableEntity, "Invalid request.\n\n\"message\" wasn't supplied.")
		return
	case in.Content == nil:
		c.fail(http.StatusUnprocessableEntity, "Invalid request.\n\n\"content\" wasn't supplied.")
		return
	}
	content, err := base64.StdEncoding.DecodeString(*in.Content)
	if err != nil {
		c.fail(http.StatusUnprocessableEntity, "content is not valid Base64")
		return
	}
	c.call.params["size"] = strconv.Itoa(len(content))
	head, ok := repo.branches[branch]
	if !ok {
		c.fail(http.StatusNotFound, "Branch "+branch+" not found")
		return
	}
	parent := repo.commits[head]
	old, exists := parent.files[p]
	if exists && in.SHA == "" {
		c.fail(http.StatusUnprocessableEntity, "Invalid request.\n\n\"sha\" wasn't supplied.")
		return
	}
	if exists && in.SHA != old {
		c.fail(http.StatusConflict, p+" does not match "+in.SHA)
		return
	}
	author := c.login
	if in.Committer != nil && in.Committer.Name != "" {
		author = in.Committer.Name
	}
	commit := repo.commit(head, *in.Message, author, map[string][]byte{p: content}, parent.files, time.Now().UTC().Truncate(time.Second))
	repo.branches[branch] = commit.sha
	c.call.params["blob_sha"], c.call.params["commit_sha"] = commit.files[p], commit.sha
	status := http.StatusCreated
	if exists {
		status = http.StatusOK
	}
	c.answer(status, true, map[string]any{"content": repo.fileView(c.api(), branch, p, commit.files[p], false), "commit": repo.commitView(c.api(), commit)})
}

func (r *gitRepo) refView(api, branch string) map[string]any {
	sha := r.branches[branch]
	return map[string]any{
		"ref": "refs/heads/" + branch, "node_id": "REF_sandbox", "url": api + "/repos/" + r.name + "/git/refs/heads/" + branch,
		"object": map[string]any{"sha": sha, "type": "commit", "url": api + "/repos/" + r.name + "/git/commits/" + sha},
	}
}

// serveGitRefs answers GET git/ref/heads/{b}, POST git/refs, PATCH and
// DELETE git/refs/heads/{b}: branches only.
func (s *Sandbox) serveGitRefs(c *githubCall, repo *gitRepo, rest []string) {
	m := c.r.Method
	branchOf := func(from int) (string, bool) {
		if len(rest) <= from || rest[from] != "heads" || len(rest) == from+1 {
			return "", false
		}
		b := strings.Join(rest[from+1:], "/")
		c.call.params["branch"] = b
		return b, true
	}
	switch {
	case len(rest) >= 1 && rest[0] == "ref" && m == http.MethodGet:
		c.call.action = "GetRef"
		if !c.permitted("contents", "read") {
			return
		}
		b, ok := branchOf(1)
		if _, exists := repo.branches[b]; !ok || !exists {
			c.fail(http.StatusNotFound, "Not Found")
			return
		}
		c.answer(http.StatusOK, false, repo.refView(c.api(), b))
	case len(rest) == 1 && rest[0] == "refs" && m == http.MethodPost:
		c.call.action = "CreateRef"
		if !c.permitted("contents", "write") {
			return
		}
		var in struct{ Ref, SHA string }
		if !c.decode(&in) {
			return
		}
		c.call.params["sha"] = in.SHA
		b, ok := strings.CutPrefix(in.Ref, "refs/heads/")
		c.call.params["branch"] = b
		switch {
		case !strings.HasPrefix(in.Ref, "refs/") || strings.Count(in.Ref, "/") < 2:
			c.fail(http.StatusUnprocessableEntity, "Reference name must start with 'refs/' and have at least two slashes.")
		case !ok || b == "":
			c.fail(http.StatusUnprocessableEntity, "the sandbox keeps branches only (refs/heads/…)")
		case repo.commits[in.SHA] == nil:
			c.fail(http.StatusUnprocessableEntity, "Object does not exist")
		case repo.branches[b] != "":
			c.fail(http.StatusUnprocessableEntity, "Reference already exists")
		default:
			repo.branches[b] = in.SHA
			c.answer(http.StatusCreated, true, repo.refView(c.api(), b))
		}
	case len(rest) >= 1 && rest[0] == "refs" && (m == http.MethodPatch || m == http.MethodDelete):
		c.call.action = map[string]string{http.MethodPatch: "UpdateRef", http.MethodDelete: "DeleteRef"}[m]
		if !c.permitted("contents", "write") {
			return
		}
		b, ok := branchOf(1)
		if _, exists := repo.branches[b]; !ok || !exists {
			c.fail(http.StatusUnprocessableEntity, "Reference does not exist")
			return
		}
		if m == http.MethodDelete {
			delete(repo.branches, b)
			c.noContent(true)
			return
		}
		var in struct {
			SHA   string `json:"sha"`
			Force bool   `json:"force"`
		}
		if !c.decode(&in) {
			return
		}
		c.call.params["sha"] = in.SHA
		switch {
		case repo.commits[in.SHA] == nil:
			c.fail(http.StatusUnprocessableEntity, "Object does not exist")
		case !in.Force && !repo.isAncestor(repo.branches[b], in.SHA):
			c.fail(http.StatusUnprocessableEntity, "Update is not a fast forward")
		default:
			moved := repo.branches[b] != in.SHA
			repo.branches[b] = in.SHA
			c.answer(http.StatusOK, moved, repo.refView(c.api(), b))
		}
	default:
		c.fail(http.StatusNotFound, "Not Found")
	}
}

func (r *gitRepo) pullView(api string, pr *pullRequest) map[string]any {
	owner, name, _ := strings.Cut(r.name, "/")
	repoView := map[string]any{"id": r.id, "name": name, "full_name": r.name, "owner": map[string]any{"login": owner}}
	side := func(branch string) map[string]any {
		return map[string]any{"ref": branch, "label": owner + ":" + branch, "sha": r.branches[branch], "repo": repoView}
	}
	at := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t.Format(time.RFC3339)
	}
	n := strconv.Itoa(pr.number)
	return map[string]any{
		"id": r.id*100000 + int64(pr.number), "number": pr.number, "state": pr.state, "title": pr.title, "body": pr.body,
		"draft": pr.draft, "merged": pr.merged, "locked": false, "user": githubUser(pr.user),
		"url": api + "/repos/" + r.name + "/pulls/" + n, "html_url": "https://github.com/" + r.name + "/pull/" + n,
		"head": side(pr.head), "base": side(pr.base),
		"created_at": at(pr.created), "updated_at": at(pr.updated), "closed_at": at(pr.closed), "merged_at": at(pr.mergd),
	}
}

func (s *Sandbox) servePulls(c *githubCall, repo *gitRepo, rest []string) {
	m := c.r.Method
	switch {
	case len(rest) == 0 && m == http.MethodPost:
		c.call.action = "CreatePullRequest"
		if c.permitted("pull_requests", "write") {
			s.createPull(c, repo)
		}
	case len(rest) == 0 && m == http.MethodGet:
		c.call.action = "ListPullRequests"
		if !c.permitted("pull_requests", "read") {
			return
		}
		q := c.r.URL.Query()
		state, head, base := q.Get("state"), q.Get("head"), q.Get("base")
		if state == "" {
			state = "open"
		}
		c.call.params["state"], c.call.params["head"], c.call.params["base"] = state, head, base
		owner, _, _ := strings.Cut(repo.name, "/")
		list := []map[string]any{}
		for i := len(repo.pulls) - 1; i >= 0; i-- {
			pr := repo.pulls[i]
			if (state != "all" && pr.state != state) || (head != "" && head != owner+":"+pr.head) || (base != "" && base != pr.base) {
				continue
			}
			list = append(list, repo.pullView(c.api(), pr))
		}
		perPage, _ := strconv.Atoi(q.Get("per_page"))
		page, _ := strconv.Atoi(q.Get("page"))
		c.answer(http.StatusOK, false, paginate(list, page, perPage))
	case len(rest) == 1 && (m == http.MethodGet || m == http.MethodPatch):
		c.call.action = map[string]string{http.MethodGet: "GetPullRequest", http.MethodPatch: "UpdatePullRequest"}[m]
		c.call.params["number"] = rest[0]
		level := map[string]string{http.MethodGet: "read", http.MethodPatch: "write"}[m]
		if !c.permitted("pull_requests", level) {
			return
		}
		n, _ := strconv.Atoi(rest[0])
		if n < 1 || n > len(repo.pulls) {
			c.fail(http.StatusNotFound, "Not Found")
			return
		}
		pr := repo.pulls[n-1]
		if m == http.MethodGet {
			c.answer(http.StatusOK, false, repo.pullView(c.api(), pr))
			return
		}
		var in struct{ Title, Body, State *string }
		if !c.decode(&in) {
			return
		}
		if in.State != nil && *in.State != "open" && *in.State != "closed" {
			c.invalid("PullRequest", "state", "state must be open or closed")
			return
		}
		now := time.Now().UTC().Truncate(time.Second)
		if in.Title != nil {
			pr.title = *in.Title
		}
		if in.Body != nil {
			pr.body = *in.Body
		}
		if in.State != nil && *in.State != pr.state && !pr.merged {
			pr.state, pr.closed = *in.State, now
			if pr.state == "open" {
				pr.closed = time.Time{}
			}
		}
		pr.updated = now
		c.answer(http.StatusOK, true, repo.pullView(c.api(), pr))
	default:
		c.fail(http.StatusNotFound, "Not Found")
	}
}

func paginate[T any](list []T, page, perPage int) []T {
	if perPage <= 0 {
		perPage = 30
	}
	perPage = min(perPage, 100)
	if page <= 0 {
		page = 1
	}
	from := min((page-1)*perPage, len(list))
	return list[from:min(from+perPage, len(list))]
}

func (s *Sandbox) createPull(c *githubCall, repo *gitRepo) {
	var in struct {
		Title, Head, Base, Body string
		Draft                   bool
	}
	if !c.decode(&in) {
		return
	}
	owner, _, _ := strings.Cut(repo.name, "/")
	head := in.Head
	if o, b, ok := strings.Cut(head, ":"); ok {
		if o != owner {
			c.invalid("PullRequest", "head", "head must be a branch of "+repo.name+" (the sandbox has no forks)")
			return
		}
		head = b
	}
	c.call.params["head"], c.call.params["base"] = head, in.Base
	switch {
	case in.Title == "":
		c.invalid("PullRequest", "title", "title is missing")
		return
	case repo.branches[head] == "":
		c.invalid("PullRequest", "head", "head "+in.Head+" is not a branch")
		return
	case repo.branches[in.Base] == "":
		c.invalid("PullRequest", "base", "base "+in.Base+" is not a branch")
		return
	}
	for _, pr := range repo.pulls {
		if pr.state == "open" && pr.head == head && pr.base == in.Base {
			c.answer(http.StatusUnprocessableEntity, false, map[string]any{
				"message": "Validation Failed", "documentation_url": githubDocs, "status": "422",
				"errors": []map[string]string{{"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for " + owner + ":" + head + "."}},
			})
			return
		}
	}
	if repo.isAncestor(repo.branches[head], repo.branches[in.Base]) {
		c.answer(http.StatusUnprocessableEntity, false, map[string]any{
			"message": "Validation Failed", "documentation_url": githubDocs, "status": "422",
			"errors": []map[string]string{{"resource": "PullRequest", "code": "custom", "message": "No commits between " + in.Base + " and " + head}},
		})
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	pr := &pullRequest{number: len(repo.pulls) + 1, title: in.Title, body: in.Body, head: head, base: in.Base, user: c.login, state: "open", draft: in.Draft, created: now, updated: now}
	repo.pulls = append(repo.pulls, pr)
	c.call.params["number"] = strconv.Itoa(pr.number)
	c.answer(http.StatusCreated, true, repo.pullView(c.api(), pr))
}

// GitHubFile returns a file of a seeded repository at ref (a branch or a
// commit SHA; "" for the default branch) and its blob SHA.
func (s *Sandbox) GitHubFile(repo, ref, path string) (content []byte, sha string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.github.git[repo]
	if !ok {
		return nil, "", false
	}
	c, ok := r.resolve(ref)
	if !ok {
		return nil, "", false
	}
	sha, ok = c.files[path]
	return slices.Clone(r.blobs[sha]), sha, ok
}

// GitHubBranch returns the commit SHA a branch of a seeded repository is at.
func (s *Sandbox) GitHubBranch(repo, branch string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.github.git[repo]
	if !ok {
		return "", false
	}
	sha, ok := r.branches[branch]
	return sha, ok
}

// GitHubCommitView is a commit, without file contents.
type GitHubCommitView struct {
	SHA, Parent, Message, Author string
	// Changed are the paths the commit wrote.
	Changed []string
	Time    time.Time
}

// GitHubCommits returns the commits of a branch, newest first.
func (s *Sandbox) GitHubCommits(repo, branch string) []GitHubCommitView {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.github.git[repo]
	if !ok {
		return nil
	}
	var out []GitHubCommitView
	for sha := r.branches[branch]; sha != ""; {
		c := r.commits[sha]
		out = append(out, GitHubCommitView{SHA: c.sha, Parent: c.parent, Message: c.message, Author: c.author, Changed: slices.Clone(c.changed), Time: c.time})
		sha = c.parent
	}
	return out
}

// GitHubPullView is a pull request's state.
type GitHubPullView struct {
	Number              int
	Title, Body         string
	Head, Base, HeadSHA string
	State, User         string
	Draft, Merged       bool
	Created, Updated    time.Time
	Closed, MergedAt    time.Time
}

// GitHubPullRequests returns a seeded repository's pull requests, by number.
func (s *Sandbox) GitHubPullRequests(repo string) []GitHubPullView {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.github.git[repo]
	if !ok {
		return nil
	}
	var out []GitHubPullView
	for _, pr := range r.pulls {
		out = append(out, GitHubPullView{Number: pr.number, Title: pr.title, Body: pr.body, Head: pr.head, Base: pr.base, HeadSHA: r.branches[pr.head],
			State: pr.state, User: pr.user, Draft: pr.draft, Merged: pr.merged, Created: pr.created, Updated: pr.updated, Closed: pr.closed, MergedAt: pr.mergd})
	}
	return out
}

// MergeGitHubPullRequest merges an open pull request out of band, as a
// reviewer would: the base branch gets a merge commit holding the head's
// files, and the pull request is closed and merged.
func (s *Sandbox) MergeGitHubPullRequest(repo string, number int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.github.git[repo]
	if !ok || number < 1 || number > len(r.pulls) || r.pulls[number-1].state != "open" {
		return fmt.Errorf("sandbox: %s has no open pull request #%d", repo, number)
	}
	pr := r.pulls[number-1]
	head, base := r.commits[r.branches[pr.head]], r.commits[r.branches[pr.base]]
	files := map[string][]byte{}
	for p, sha := range head.files {
		if base.files[p] != sha {
			files[p] = r.blobs[sha]
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	c := r.commit(base.sha, fmt.Sprintf("Merge pull request #%d from %s", number, pr.head), "sandbox", files, base.files, now)
	r.branches[pr.base] = c.sha
	pr.state, pr.merged, pr.closed, pr.mergd, pr.updated = "closed", true, now, now, now
	return nil
}

// randomDigits returns n random decimal digits (the first not 0).
func randomDigits(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	if b[0] == '0' {
		b[0] = '5'
	}
	return string(b)
}
