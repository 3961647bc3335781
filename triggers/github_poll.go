package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-github/v60/github"
)

// GitHubBackstop lists the open secret-scanning alerts of repositories and
// organisations and defers each, as a webhook delivery would: GitHub does
// not retry failed deliveries, and deduplication on repository and alert
// number makes polling again harmless.
type GitHubBackstop struct {
	Client *github.Client
	Repos  []string // owner/name
	Orgs   []string
	Sink   Deferrer
}

// Poll lists and defers every open alert once. An alert whose repository
// or number GitHub would not have made is skipped, and named in the error
// once every other alert is deferred.
func (b *GitHubBackstop) Poll(ctx context.Context) error {
	var skipped []error
	for _, repo := range b.Repos {
		if err := CheckRepo("--github-poll-repo", repo); err != nil {
			return err
		}
		owner, name, _ := strings.Cut(repo, "/")
		opts := &github.SecretScanningAlertListOptions{State: "open", ListOptions: github.ListOptions{PerPage: 100}}
		for {
			alerts, res, err := b.Client.SecretScanning.ListAlertsForRepo(ctx, owner, name, opts)
			if err != nil {
				return fmt.Errorf("list secret-scanning alerts of %s: %w", repo, err)
			}
			if err := b.deferAll(ctx, repo, alerts, &skipped); err != nil {
				return err
			}
			if res.NextPage == 0 {
				break
			}
			opts.ListOptions.Page = res.NextPage
		}
	}
	for _, org := range b.Orgs {
		if err := CheckOwner("--github-poll-org", org); err != nil {
			return err
		}
		opts := &github.SecretScanningAlertListOptions{State: "open", ListOptions: github.ListOptions{PerPage: 100}}
		for {
			alerts, res, err := b.Client.SecretScanning.ListAlertsForOrg(ctx, org, opts)
			if err != nil {
				return fmt.Errorf("list secret-scanning alerts of organisation %s: %w", org, err)
			}
			for _, a := range alerts {
				if err := b.deferAll(ctx, a.GetRepository().GetFullName(), []*github.SecretScanningAlert{a}, &skipped); err != nil {
					return err
				}
			}
			if res.NextPage == 0 {
				break
			}
			opts.ListOptions.Page = res.NextPage
		}
	}
	return errors.Join(skipped...)
}

func (b *GitHubBackstop) deferAll(ctx context.Context, repo string, alerts []*github.SecretScanningAlert, skipped *[]error) error {
	for _, a := range alerts {
		if err := errors.Join(CheckRepo("a listed alert's repository", repo), checkAlertNumber("a listed alert's number", int64(a.GetNumber()))); err != nil {
			*skipped = append(*skipped, fmt.Errorf("alert skipped: %w", err))
			continue
		}
		ref, _ := json.Marshal(GitHubAlertRef{Repo: repo, Number: int64(a.GetNumber()), SecretType: a.GetSecretType(), Action: "poll"})
		if err := b.Sink.Defer(ctx, ResolverGitHubAlert, fmt.Sprintf("github:%s#%d", repo, a.GetNumber()), ref); err != nil {
			return err
		}
	}
	return nil
}
