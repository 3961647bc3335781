package triggers

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/alert"
)

// GitHub raises an AWS key id and its secret as two alerts when both sit in
// the same file of the same commit: the aws_secret_access_key alert's
// literal is the secret alone. Its key id is the literal of the key id
// alert found at the same place.

// keyIDSecretTypes are the secret types whose literal is a key id, as the
// list endpoint's comma-separated secret_type filter takes them.
const keyIDSecretTypes = "aws_access_key_id,aws_temporary_access_key_id"

// pairLines is how far apart the two halves of a pair may be.
const pairLines = 3

type commitLocation struct {
	path, commit string
	line         int
}

func commitLocations(locs []*github.SecretScanningAlertLocation) []commitLocation {
	var out []commitLocation
	for _, l := range locs {
		if l.GetType() == "commit" && l.Details != nil {
			out = append(out, commitLocation{path: l.Details.GetPath(), commit: l.Details.GetCommitSHA(), line: l.Details.GetStartline()})
		}
	}
	return out
}

// samePlace reports whether two alerts were found in the same file of the
// same commit, on lines close by.
func samePlace(a, b []commitLocation) bool {
	for _, x := range a {
		for _, y := range b {
			if x.path == y.path && x.commit == y.commit && abs(x.line-y.line) <= pairLines {
				return true
			}
		}
	}
	return false
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// pairedKeyID finds the key id of an alert whose literal is only the
// secret, and the number of the alert it was taken from.
func (g *GitHubResolver) pairedKeyID(ctx context.Context, owner, repo string, ref GitHubAlertRef, secretType string, own []*github.SecretScanningAlertLocation) (string, int, error) {
	name := fmt.Sprintf("alert %s#%d", ref.Repo, ref.Number)
	ours := commitLocations(own)
	if len(ours) == 0 {
		return "", 0, fmt.Errorf("%w: GitHub %s (%s) holds the secret without its key id, and GitHub lists no commit location for it, so the alert for the key id at the same place cannot be found; find the key id next to the secret and run stanch run --alert with it", alert.ErrUnactionable, name, secretType)
	}
	opts := &github.SecretScanningAlertListOptions{SecretType: keyIDSecretTypes, ListOptions: github.ListOptions{PerPage: 100}}
	for {
		list, res, err := g.Client.SecretScanning.ListAlertsForRepo(ctx, owner, repo, opts)
		if err != nil {
			return "", 0, githubFailure("list the key id alerts of", "repository "+ref.Repo, ref.Repo, err)
		}
		for _, cand := range list {
			number := int64(cand.GetNumber())
			if number == ref.Number {
				continue
			}
			theirs, err := g.locations(ctx, owner, repo, number)
			if err != nil {
				return "", 0, githubFailure("list the locations of", fmt.Sprintf("alert %s#%d", ref.Repo, number), ref.Repo, err)
			}
			if !samePlace(ours, commitLocations(theirs)) {
				continue
			}
			secret := cand.GetSecret()
			if secret == "" {
				// A list answered with hide_secret, or an older server.
				full, _, err := g.Client.SecretScanning.GetAlert(ctx, owner, repo, number)
				if err != nil {
					return "", 0, githubFailure("get", fmt.Sprintf("alert %s#%d", ref.Repo, number), ref.Repo, err)
				}
				secret = full.GetSecret()
			}
			if id, ok := alert.KeyID(secret); ok {
				return id, int(number), nil
			}
		}
		if res.NextPage == 0 {
			break
		}
		opts.ListOptions.Page = res.NextPage
	}
	at := make([]string, 0, len(ours))
	for _, l := range ours {
		at = append(at, fmt.Sprintf("%s:%d in commit %s", l.path, l.line, shortSHA(l.commit)))
	}
	return "", 0, fmt.Errorf("%w: GitHub %s (%s) holds the secret without its key id, and no %s alert sits at the same place (%s, within %d lines) to tell it; find the key id next to the secret, run stanch run --alert with it, then resolve the alert", alert.ErrUnactionable, name, secretType, strings.ReplaceAll(keyIDSecretTypes, ",", " or "), strings.Join(at, "; "), pairLines)
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
