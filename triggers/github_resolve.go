package triggers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/leaked"
)

// GitHubResolver fetches a secret-scanning alert and its locations through
// the REST API and turns it into an alert: the secret literal tells the
// key id, and is redacted everywhere after that. An alert whose literal is
// an AWS secret without its key id takes the id from the paired alert at
// the same place. Failures that retrying cannot fix (GitHub refuses
// stanch, no key id can be found) wrap alert.ErrUnactionable and say what a
// person must do; the others are retried.
type GitHubResolver struct {
	Client *github.Client
	Now    func() time.Time
}

// Resolve implements the deferred resolution of a GitHubAlertRef.
func (g *GitHubResolver) Resolve(ctx context.Context, raw json.RawMessage) ([]alert.Alert, error) {
	var ref GitHubAlertRef
	if err := json.Unmarshal(raw, &ref); err != nil {
		return nil, fmt.Errorf("%w: the recorded GitHub alert reference is unreadable: %v", alert.ErrUnactionable, err)
	}
	// The reference was checked when it was recorded; it is checked again
	// here because its names become paths requested with stanch's token.
	if err := CheckRepo("the recorded repository", ref.Repo); err != nil {
		return nil, fmt.Errorf("%w: %v", alert.ErrUnactionable, err)
	}
	if err := checkAlertNumber("the recorded alert number", ref.Number); err != nil {
		return nil, fmt.Errorf("%w: %v", alert.ErrUnactionable, err)
	}
	owner, repo, _ := strings.Cut(ref.Repo, "/")
	name := fmt.Sprintf("alert %s#%d", ref.Repo, ref.Number)
	ghAlert, _, err := g.Client.SecretScanning.GetAlert(ctx, owner, repo, ref.Number)
	if err != nil {
		return nil, githubFailure("get", name, ref.Repo, err)
	}
	locs, err := g.locations(ctx, owner, repo, ref.Number)
	if err != nil {
		return nil, githubFailure("list the locations of", name, ref.Repo, err)
	}
	if ghAlert.Secret == nil {
		return nil, fmt.Errorf("%w: GitHub returned %s without its secret literal, which tells stanch which credential leaked; give the token or App read access to the secret (secret_scanning_alerts), then redeliver the webhook", alert.ErrUnactionable, name)
	}
	secretType := ghAlert.GetSecretType()
	loc := alert.Location{Repo: ref.Repo, URL: ghAlert.GetHTMLURL(), AlertNumber: int(ref.Number)}
	if commits := commitLocations(locs); len(commits) > 0 {
		loc.Path, loc.Line, loc.Commit = commits[0].path, commits[0].line, commits[0].commit
	}
	title := fmt.Sprintf("GitHub secret scanning: %s in %s", ghAlert.GetSecretTypeDisplayName(), ref.Repo)
	cred, ok, err := githubCredential(secretType, ghAlert.GetSecret())
	if err != nil {
		return nil, fmt.Errorf("%w: GitHub %s: %v; find the key id and run stanch run --alert with it", alert.ErrUnactionable, name, err)
	}
	if !ok {
		id, pair, err := g.pairedKeyID(ctx, owner, repo, ref, secretType, locs)
		if err != nil {
			return nil, err
		}
		cred = awsCredential(id)
		title += fmt.Sprintf(" (key id from the paired alert #%d)", pair)
	}
	severity := "high"
	if ref.Action == "publicly_leaked" {
		severity = "critical"
	}
	// The alert as fetched, with the secret literal redacted (the key id
	// alone is kept by the redaction).
	fetched, _ := json.Marshal(ghAlert)
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	a := alert.Alert{
		Source:     alert.SourceGitHub,
		Kind:       alert.KindCredentialExposed,
		ReceivedAt: now(),
		DedupKey:   fmt.Sprintf("github:%s#%d", ref.Repo, ref.Number),
		Credential: cred,
		Location:   loc,
		Severity:   severity,
		Title:      title,
		Raw:        alert.RedactJSON(fetched),
	}
	if err := finish(&a, now()); err != nil {
		return nil, fmt.Errorf("%w: GitHub %s does not make a valid alert: %v", alert.ErrUnactionable, name, err)
	}
	return []alert.Alert{a}, nil
}

// locations lists every location of an alert, page by page.
func (g *GitHubResolver) locations(ctx context.Context, owner, repo string, number int64) ([]*github.SecretScanningAlertLocation, error) {
	var all []*github.SecretScanningAlertLocation
	opts := &github.ListOptions{PerPage: 100}
	for {
		page, res, err := g.Client.SecretScanning.ListLocationsForAlert(ctx, owner, repo, number, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if res.NextPage == 0 {
			return all, nil
		}
		opts.Page = res.NextPage
	}
}

// keyIDTypes are the secret types whose literal is an AWS key id.
var keyIDTypes = map[string]bool{"aws_access_key_id": true, "aws_temporary_access_key_id": true}

// githubCredential maps a GitHub secret type to a credential: AWS types
// by the key id that is the literal; a token of a kind stanch knows by its
// shape (alert.TokenKinds), remembered by this process; anything else by a
// fingerprint, under the provider its secret type names. It is
// false for an AWS type whose literal is not a key id (the secret access
// key or session token alone), and an error when the literal of a key id
// type is not one key id (two of them, or one with more around it): which
// key leaked is then not known, and guessing could contain the wrong one.
func githubCredential(secretType, secret string) (alert.Credential, bool, error) {
	if strings.HasPrefix(secretType, "aws_") {
		if id, ok := alert.KeyID(secret); ok {
			return awsCredential(id), true, nil
		}
		if keyIDTypes[secretType] {
			return alert.Credential{}, false, fmt.Errorf("the secret literal of this %s alert is not one AWS access key id", secretType)
		}
		return alert.Credential{}, false, nil
	}
	// A token: its value tells its kind, and is remembered by this process
	// for the action that revokes it (which can also fetch the alert
	// again: the alert keeps the repository and number).
	if cred, ok := alert.TokenCredential(secret); ok {
		leaked.Process.Remember(strings.TrimSpace(secret))
		return cred, true, nil
	}
	provider, _, _ := strings.Cut(secretType, "_")
	cred := alert.Credential{Provider: provider, Kind: alert.CredentialToken, ID: alert.Fingerprint(secret)}
	if k, ok := githubSecretTypes[secretType]; ok {
		cred.Provider, cred.TokenType = k.provider, k.tokenType
	}
	return cred, true, nil
}

// awsCredential is the credential of an AWS key id, of the kind its prefix
// says.
func awsCredential(id string) alert.Credential {
	kind, _ := alert.KindOf(id)
	return alert.Credential{Provider: "aws", Kind: kind, ID: id}
}
