package sandbox

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
)

// TestGitHubDeliverFileAsPullRequest walks the delivery of a re-encrypted
// file: read it on the default branch, branch off, commit on the branch,
// open a pull request, find it again on a retry.
func TestGitHubDeliverFileAsPullRequest(t *testing.T) {
	t.Parallel()
	sb, _, c := repoSandbox(t)
	ctx := context.Background()
	const path = "secrets/prod.enc.yaml"

	file, _, _, err := c.Repositories.GetContents(ctx, "acme", "api", path, nil)
	require.NoError(t, err)
	content, err := file.GetContent()
	require.NoError(t, err)
	require.Equal(t, "db: ENC[old]\n", content)
	require.Equal(t, gitBlobSHA([]byte(content)), file.GetSHA(), "blob SHAs are Git's")
	_, dir, _, err := c.Repositories.GetContents(ctx, "acme", "api", "secrets", nil)
	require.NoError(t, err)
	require.Len(t, dir, 1)
	_, _, _, err = c.Repositories.GetContents(ctx, "acme", "api", "missing.txt", nil)
	require.Equal(t, http.StatusNotFound, statusOf(t, err))

	main, _, err := c.Git.GetRef(ctx, "acme", "api", "refs/heads/main")
	require.NoError(t, err)
	_, _, err = c.Git.GetRef(ctx, "acme", "api", "heads/stanch/rotate")
	require.Equal(t, http.StatusNotFound, statusOf(t, err))
	ref, res, err := c.Git.CreateRef(ctx, "acme", "api", &github.Reference{Ref: github.String("refs/heads/stanch/rotate"), Object: &github.GitObject{SHA: main.Object.SHA}})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode)
	require.Equal(t, "refs/heads/stanch/rotate", ref.GetRef())
	_, _, err = c.Git.CreateRef(ctx, "acme", "api", &github.Reference{Ref: github.String("refs/heads/stanch/rotate"), Object: &github.GitObject{SHA: main.Object.SHA}})
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err), "Reference already exists")
	_, _, err = c.Git.CreateRef(ctx, "acme", "api", &github.Reference{Ref: github.String("refs/heads/x"), Object: &github.GitObject{SHA: github.String(strings.Repeat("0", 40))}})
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err), "Object does not exist")

	// A pull request needs commits between base and head.
	pr := &github.NewPullRequest{Title: github.String("Rotate the leaked key"), Head: github.String("acme:stanch/rotate"), Base: github.String("main"), Body: github.String("run r-1")}
	_, _, err = c.PullRequests.Create(ctx, "acme", "api", pr)
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err))

	branch := github.String("stanch/rotate")
	newContent := "db: ENC[" + planted.InPath + "]\n"
	opts := &github.RepositoryContentFileOptions{Message: github.String("Rotate db"), Content: []byte(newContent), Branch: branch}
	_, _, err = c.Repositories.UpdateFile(ctx, "acme", "api", path, opts)
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err), `"sha" wasn't supplied`)
	opts.SHA = github.String(strings.Repeat("a", 40))
	_, _, err = c.Repositories.UpdateFile(ctx, "acme", "api", path, opts)
	require.Equal(t, http.StatusConflict, statusOf(t, err), "a SHA the file is not at")
	opts.SHA = file.SHA
	opts.Branch = github.String("nope")
	_, _, err = c.Repositories.UpdateFile(ctx, "acme", "api", path, opts)
	require.Equal(t, http.StatusNotFound, statusOf(t, err), "no such branch")
	opts.Branch = branch
	out, res, err := c.Repositories.UpdateFile(ctx, "acme", "api", path, opts)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, gitBlobSHA([]byte(newContent)), out.Content.GetSHA())
	head, ok := sb.GitHubBranch("acme/api", "stanch/rotate")
	require.True(t, ok)
	require.Equal(t, head, out.Commit.GetSHA())
	require.Equal(t, []string{main.Object.GetSHA()}, []string{out.Commit.Parents[0].GetSHA()})
	_, _, err = c.Repositories.UpdateFile(ctx, "acme", "api", path, opts)
	require.Equal(t, http.StatusConflict, statusOf(t, err), "the old SHA, once the file moved on")

	got, _, _, err := c.Repositories.GetContents(ctx, "acme", "api", path, &github.RepositoryContentGetOptions{Ref: "stanch/rotate"})
	require.NoError(t, err)
	gotContent, _ := got.GetContent()
	require.Equal(t, newContent, gotContent)
	onMain, _, _ := sb.GitHubFile("acme/api", "main", path)
	require.Equal(t, "db: ENC[old]\n", string(onMain), "main is untouched")
	created, res, err := c.Repositories.CreateFile(ctx, "acme", "api", "secrets/new.enc.yaml", &github.RepositoryContentFileOptions{Message: github.String("add"), Content: []byte("x: 1\n"), Branch: branch, SHA: github.String("ignored")})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode)
	require.NotEmpty(t, created.Commit.GetSHA())
	commits := sb.GitHubCommits("acme/api", "stanch/rotate")
	require.Len(t, commits, 3)
	require.Equal(t, []string{path}, commits[1].Changed)
	require.Equal(t, "Rotate db", commits[1].Message)

	opened, res, err := c.PullRequests.Create(ctx, "acme", "api", pr)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode)
	require.Equal(t, 1, opened.GetNumber())
	require.Equal(t, "stanch/rotate", opened.GetHead().GetRef())
	require.Equal(t, head != "", opened.GetHead().GetSHA() != "")
	_, _, err = c.PullRequests.Create(ctx, "acme", "api", pr)
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err), "A pull request already exists")

	// Idempotency: a retry finds the open pull request by head.
	list, _, err := c.PullRequests.List(ctx, "acme", "api", &github.PullRequestListOptions{Head: "acme:stanch/rotate", State: "open"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, 1, list[0].GetNumber())
	list, _, err = c.PullRequests.List(ctx, "acme", "api", &github.PullRequestListOptions{Head: "acme:other"})
	require.NoError(t, err)
	require.Empty(t, list)
	one, _, err := c.PullRequests.Get(ctx, "acme", "api", 1)
	require.NoError(t, err)
	require.Equal(t, "run r-1", one.GetBody())

	require.NoError(t, sb.MergeGitHubPullRequest("acme/api", 1))
	merged, _, _ := sb.GitHubFile("acme/api", "", path)
	require.Equal(t, newContent, string(merged))
	list, _, err = c.PullRequests.List(ctx, "acme", "api", &github.PullRequestListOptions{Head: "acme:stanch/rotate"})
	require.NoError(t, err)
	require.Empty(t, list, "merged: no longer open")
	prs := sb.GitHubPullRequests("acme/api")
	require.True(t, prs[0].Merged)

	res, err = c.Git.DeleteRef(ctx, "acme", "api", "heads/stanch/rotate")
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, res.StatusCode)

	var put Call
	for _, call := range sb.Calls() {
		if call.Action == "CreateOrUpdateFileContents" && call.Status == http.StatusOK {
			put = call
		}
	}
	require.Equal(t, map[string]string{"repo": "acme/api", "file": path, "branch": "stanch/rotate", "size": "50",
		"blob_sha": out.Content.GetSHA(), "commit_sha": out.Commit.GetSHA(), "path": "/api/v3/repos/acme/api/contents/" + path}, put.Params)
	planted.RequireNone(t, "the call log", sb.Calls())
	planted.RequireNone(t, "the state", sb.State())
}

func TestGitHubRefUpdateAndFaults(t *testing.T) {
	t.Parallel()
	sb, _, c := repoSandbox(t)
	ctx := context.Background()
	main, _, err := c.Git.GetRef(ctx, "acme", "web", "heads/main")
	require.NoError(t, err)
	_, _, err = c.Git.CreateRef(ctx, "acme", "web", &github.Reference{Ref: github.String("refs/heads/b"), Object: main.Object})
	require.NoError(t, err)
	out, _, err := c.Repositories.CreateFile(ctx, "acme", "web", "a.txt", &github.RepositoryContentFileOptions{Message: github.String("a"), Content: []byte("a"), Branch: github.String("b")})
	require.NoError(t, err)
	_, _, err = c.Git.UpdateRef(ctx, "acme", "web", &github.Reference{Ref: github.String("refs/heads/b"), Object: main.Object}, false)
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err), "not a fast forward")
	_, _, err = c.Git.UpdateRef(ctx, "acme", "web", &github.Reference{Ref: github.String("refs/heads/b"), Object: main.Object}, true)
	require.NoError(t, err)
	_, _, err = c.Git.UpdateRef(ctx, "acme", "web", &github.Reference{Ref: github.String("refs/heads/b"), Object: &github.GitObject{SHA: out.Commit.SHA}}, false)
	require.NoError(t, err)
	sha, _ := sb.GitHubBranch("acme/web", "b")
	require.Equal(t, out.Commit.GetSHA(), sha)

	sb.SetFault("github", Fault{ErrorRate: 1})
	_, _, _, err = c.Repositories.GetContents(ctx, "acme", "web", "a.txt", nil)
	require.Equal(t, http.StatusServiceUnavailable, statusOf(t, err))
}
