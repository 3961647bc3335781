package destinations

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	sopsage "github.com/getsops/sops/v3/age"
	gh "github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/actions"
)

// sopsPull delivers a SOPS file in a GitHub repository as a commit on a
// branch, with a pull request into the base branch: people review and
// merge it, as they would any change to the file.
type sopsPull struct{ *sopsFile }

func (p *sopsPull) Describe() string {
	return fmt.Sprintf("SOPS file %s in %s", p.spec.Path, p.spec.Repository)
}

func (p *sopsPull) branchName(m Mark) string {
	if p.spec.Branch != "" {
		return p.spec.Branch
	}
	return "stanch/" + m.RunID + "/" + m.StepID
}

func (p *sopsPull) Calls() []actions.Call {
	branch := p.spec.Branch
	if branch == "" {
		branch = "stanch/{run}/{step}"
	}
	base := p.spec.Base
	if base == "" {
		base = "(the default branch)"
	}
	par := func(extra ...string) map[string]any {
		m := map[string]any{"repository": p.spec.Repository, "path": p.spec.Path, "base": base, "branch": branch}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	return []actions.Call{
		{Service: "github", Operation: "GET /repos/{owner}/{repo}/contents/{path}", Params: par("ref", "base and branch")},
		{Service: "github", Operation: "POST /repos/{owner}/{repo}/git/refs", Params: par(), Mutates: true,
			Effect: fmt.Sprintf("create branch %s of %s from %s (unless there)", branch, p.spec.Repository, base)},
		{Service: "github", Operation: "PUT /repos/{owner}/{repo}/contents/{path}", Params: par("keys", strings.Join(sortedKeys(p.spec.Keys), ", ")), Mutates: true,
			Effect: fmt.Sprintf("commit %s to branch %s with %s replaced, re-encrypted for the file's own recipients", p.Describe(), branch, strings.Join(sortedKeys(p.spec.Keys), ", "))},
		{Service: "github", Operation: "GET /repos/{owner}/{repo}/pulls", Params: par()},
		{Service: "github", Operation: "POST /repos/{owner}/{repo}/pulls", Params: par(), Mutates: true,
			Effect: fmt.Sprintf("open a pull request of %s into %s in %s (unless one is open)", branch, base, p.spec.Repository)},
	}
}

func (p *sopsPull) client() (*gh.Client, string, string, error) {
	owner, repo, _ := strings.Cut(p.spec.Repository, "/")
	if p.deps.GitHub == nil {
		return nil, "", "", actions.Permanent(errors.New("GitHub is not configured for SOPS files in a repository (see docs/configuration.md)"))
	}
	c, err := p.deps.GitHub()
	if err != nil {
		return nil, "", "", actions.Permanent(fmt.Errorf("GitHub client: %w", err))
	}
	return c, owner, repo, nil
}

// ghError classifies a GitHub API error for the runner.
func ghError(what string, err error) error {
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		switch code := er.Response.StatusCode; {
		case code == http.StatusTooManyRequests || code >= 500:
			return actions.Retryable(fmt.Errorf("%s: %w", what, err))
		case code == http.StatusConflict:
			return actions.Retryable(fmt.Errorf("%s: someone changed the file meanwhile: %w", what, err))
		case code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusNotFound:
			return actions.Permanent(fmt.Errorf("%s: %w (missing, or stanch's GitHub credentials lack contents: write or pull_requests: write)", what, err))
		default:
			return actions.Permanent(fmt.Errorf("%s: %w", what, err))
		}
	}
	var rl *gh.RateLimitError
	if errors.As(err, &rl) {
		return actions.Retryable(fmt.Errorf("%s: %w", what, err))
	}
	return actions.Retryable(fmt.Errorf("%s: %w", what, err))
}

func isNotFound(err error) bool {
	var er *gh.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound
}

// pullState is what the repository holds for this rotation.
type pullState struct {
	c                      *gh.Client
	owner, repo            string
	base, branch           string
	baseSHA                string // the base branch's commit
	branchExists           bool
	branchFile             *sopsDoc // the branch's version, when the branch exists
	branchBlob             string   // its blob SHA
	baseHolds, branchHolds bool
	pull                   *gh.PullRequest // the open pull request of branch into base
}

func (p *sopsPull) state(ctx context.Context, c Credential, m Mark) (*pullState, map[string]string, error) {
	want, err := mapped(c, p.spec.Keys)
	if err != nil {
		return nil, nil, actions.Permanent(err)
	}
	ids, err := ageIdentities(p.deps.AgeKeyFile)
	if err != nil {
		return nil, nil, actions.Permanent(err)
	}
	client, owner, repo, err := p.client()
	if err != nil {
		return nil, nil, err
	}
	s := &pullState{c: client, owner: owner, repo: repo, base: p.spec.Base, branch: p.branchName(m)}
	if s.base == "" {
		r, _, err := client.Repositories.Get(ctx, owner, repo)
		if err != nil {
			return nil, nil, ghError("read repository "+p.spec.Repository, err)
		}
		s.base = r.GetDefaultBranch()
	}
	ref, _, err := client.Git.GetRef(ctx, owner, repo, "heads/"+s.base)
	if err != nil {
		return nil, nil, ghError(fmt.Sprintf("read branch %s of %s", s.base, p.spec.Repository), err)
	}
	s.baseSHA = ref.GetObject().GetSHA()
	baseDoc, _, err := p.fetch(ctx, s, s.base, ids)
	if err != nil {
		return nil, nil, err
	}
	s.baseHolds = baseDoc.holds(want)
	if _, _, err := client.Git.GetRef(ctx, owner, repo, "heads/"+s.branch); err == nil {
		s.branchExists = true
	} else if !isNotFound(err) {
		return nil, nil, ghError(fmt.Sprintf("read branch %s of %s", s.branch, p.spec.Repository), err)
	}
	if s.branchExists {
		if s.branchFile, s.branchBlob, err = p.fetch(ctx, s, s.branch, ids); err != nil {
			return nil, nil, err
		}
		s.branchHolds = s.branchFile.holds(want)
		pulls, _, err := client.PullRequests.List(ctx, owner, repo, &gh.PullRequestListOptions{State: "open", Head: owner + ":" + s.branch, Base: s.base})
		if err != nil {
			return nil, nil, ghError("list the pull requests of "+s.branch, err)
		}
		if len(pulls) > 0 {
			s.pull = pulls[0]
		}
	}
	return s, want, nil
}

// fetch reads and decrypts the file on ref.
func (p *sopsPull) fetch(ctx context.Context, s *pullState, ref string, ids sopsage.ParsedIdentities) (*sopsDoc, string, error) {
	file, _, _, err := s.c.Repositories.GetContents(ctx, s.owner, s.repo, p.spec.Path, &gh.RepositoryContentGetOptions{Ref: ref})
	if err != nil {
		return nil, "", ghError(fmt.Sprintf("read %s on %s", p.Describe(), ref), err)
	}
	if file == nil {
		return nil, "", actions.Permanent(fmt.Errorf("%s on %s is a folder, not a file", p.Describe(), ref))
	}
	data, err := file.GetContent()
	if err != nil {
		return nil, "", actions.Permanent(fmt.Errorf("read %s on %s: %w", p.Describe(), ref, err))
	}
	d, err := p.openWith([]byte(data), fmt.Sprintf("%s on %s", p.Describe(), ref), ids)
	if err != nil {
		return nil, "", err
	}
	return d, file.GetSHA(), nil
}

// Holds: the base branch holds the new values (the pull request was
// merged), or the branch holds them and its pull request is open.
func (p *sopsPull) Holds(ctx context.Context, c Credential, m Mark) (bool, error) {
	s, _, err := p.state(ctx, c, m)
	if err != nil {
		return false, err
	}
	return s.baseHolds || (s.branchHolds && s.pull != nil), nil
}

// Write does what is missing of: the branch, the commit, the pull request.
// Each part is skipped when an earlier attempt did it, so a retry after a
// crash adds no second commit and no second pull request.
func (p *sopsPull) Write(ctx context.Context, c Credential, m Mark) (string, error) {
	s, want, err := p.state(ctx, c, m)
	if err != nil {
		return "", err
	}
	if s.baseHolds {
		return fmt.Sprintf("already on %s", s.base), nil
	}
	var done []string
	if !s.branchExists {
		_, _, err := s.c.Git.CreateRef(ctx, s.owner, s.repo, &gh.Reference{Ref: gh.String("refs/heads/" + s.branch), Object: &gh.GitObject{SHA: gh.String(s.baseSHA)}})
		if err != nil {
			return "", ghError(fmt.Sprintf("create branch %s of %s", s.branch, p.spec.Repository), err)
		}
		ids, err := ageIdentities(p.deps.AgeKeyFile)
		if err != nil {
			return "", actions.Permanent(err)
		}
		if s.branchFile, s.branchBlob, err = p.fetch(ctx, s, s.branch, ids); err != nil {
			return "", err
		}
		done = append(done, "branch "+s.branch)
	}
	if !s.branchHolds {
		if err := s.branchFile.set(want); err != nil {
			return "", actions.Permanent(fmt.Errorf("%s: %w", p.Describe(), err))
		}
		out, err := s.branchFile.seal()
		if err != nil {
			return "", actions.Permanent(fmt.Errorf("%s: %w", p.Describe(), err))
		}
		msg := fmt.Sprintf("Rotate %s in %s\n\nstanch run %s, step %s: the new credential %s replaces %s.", strings.Join(sortedKeys(p.spec.Keys), ", "), p.spec.Path, m.RunID, m.StepID, c.ID, strings.Join(sortedKeys(p.spec.Keys), ", "))
		// The blob SHA read is a check-and-set: a commit by anyone in
		// between is refused (409) rather than overwritten.
		res, _, err := s.c.Repositories.UpdateFile(ctx, s.owner, s.repo, p.spec.Path, &gh.RepositoryContentFileOptions{
			Message: gh.String(msg), Content: out, SHA: gh.String(s.branchBlob), Branch: gh.String(s.branch),
		})
		if err != nil {
			return "", ghError(fmt.Sprintf("commit %s to branch %s", p.spec.Path, s.branch), err)
		}
		done = append(done, "commit "+short(res.GetSHA()))
		// Verified: the branch's file decrypts, MAC and all, to the new
		// values.
		ids, err := ageIdentities(p.deps.AgeKeyFile)
		if err != nil {
			return "", actions.Permanent(err)
		}
		back, _, err := p.fetch(ctx, s, s.branch, ids)
		if err != nil {
			return "", err
		}
		if !back.holds(want) {
			return "", actions.Retryable(fmt.Errorf("%s on branch %s does not hold the new values when read back: someone wrote it meanwhile", p.Describe(), s.branch))
		}
	}
	if s.pull == nil {
		title := fmt.Sprintf("Rotate the credential in %s", p.spec.Path)
		body := fmt.Sprintf("stanch rotated a leaked credential (run %s, step %s). This replaces %s in `%s` with the new credential %s, re-encrypted with sops for the file's own recipients; every other value is as it was.\n\nMerge it so that the file's consumers read the new credential.",
			m.RunID, m.StepID, strings.Join(sortedKeys(p.spec.Keys), ", "), p.spec.Path, c.ID)
		pr, _, err := s.c.PullRequests.Create(ctx, s.owner, s.repo, &gh.NewPullRequest{Title: gh.String(title), Head: gh.String(s.branch), Base: gh.String(s.base), Body: gh.String(body)})
		if err != nil {
			return "", ghError(fmt.Sprintf("open a pull request of %s into %s", s.branch, s.base), err)
		}
		s.pull = pr
	}
	done = append(done, fmt.Sprintf("pull request #%d", s.pull.GetNumber()))
	return strings.Join(done, ", "), nil
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
