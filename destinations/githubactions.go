package destinations

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"
	"golang.org/x/crypto/nacl/box"

	"github.com/stanchhq/stanch/actions"
)

// GitHubActionsSpec is a set of GitHub Actions secrets to write the new
// credential to: a repository's, one of its environments', or an
// organisation's.
type GitHubActionsSpec struct {
	// Repository is owner/name; with Environment, that environment's
	// secrets. Exactly one of Repository and Org.
	Repository  string `json:"repository,omitempty"`
	Environment string `json:"environment,omitempty"`
	// Org is an organisation whose secrets to write; Visibility (all,
	// private or selected) says which of its repositories may use them,
	// SelectedRepositories (names in the org) which ones for selected.
	Org                  string   `json:"org,omitempty"`
	Visibility           string   `json:"visibility,omitempty"`
	SelectedRepositories []string `json:"selected_repositories,omitempty"`
	// Secrets maps each secret's name to the credential's field it holds
	// (AWS_ACCESS_KEY_ID: AccessKeyId).
	Secrets map[string]string `json:"secrets"`
}

var githubSecretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (s GitHubActionsSpec) check() error {
	var problems []string
	switch {
	case s.Repository != "" && s.Org != "":
		problems = append(problems, "name either repository (owner/name) or org, not both")
	case s.Repository == "" && s.Org == "":
		problems = append(problems, "repository (owner/name) or org is required")
	case s.Repository != "":
		if o, n, ok := strings.Cut(s.Repository, "/"); !ok || o == "" || n == "" || strings.Contains(n, "/") {
			problems = append(problems, fmt.Sprintf("repository %q is not owner/name", s.Repository))
		}
		if s.Visibility != "" || len(s.SelectedRepositories) > 0 {
			problems = append(problems, "visibility and selected_repositories are for org secrets only")
		}
	default:
		if s.Environment != "" {
			problems = append(problems, "environment is for repository secrets only")
		}
		switch s.Visibility {
		case "all", "private":
			if len(s.SelectedRepositories) > 0 {
				problems = append(problems, "selected_repositories needs visibility: selected")
			}
		case "selected":
			if len(s.SelectedRepositories) == 0 {
				problems = append(problems, "visibility: selected needs selected_repositories (names of the org's repositories)")
			}
		case "":
			// Required rather than defaulted: a default could widen who
			// may read the new credential.
			problems = append(problems, "visibility (all, private or selected) is required for org secrets")
		default:
			problems = append(problems, fmt.Sprintf("visibility %q: want all, private or selected", s.Visibility))
		}
	}
	if len(s.Secrets) == 0 {
		problems = append(problems, "secrets is required: each secret's name and the credential's field it holds (AWS_ACCESS_KEY_ID: AccessKeyId)")
	}
	for _, name := range sortedNames(s.Secrets) {
		switch {
		case !githubSecretName.MatchString(name):
			problems = append(problems, fmt.Sprintf("secret name %q: letters, digits and _ only, not starting with a digit", name))
		case strings.HasPrefix(strings.ToUpper(name), "GITHUB_"):
			problems = append(problems, fmt.Sprintf("secret name %q: GitHub refuses names starting with GITHUB_", name))
		case s.Secrets[name] == "":
			problems = append(problems, fmt.Sprintf("secret %s: name the credential's field it holds (AccessKeyId, SecretAccessKey, UserName)", name))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// GitHubDeps say how stanch reaches GitHub Actions secrets.
type GitHubDeps struct {
	// Client returns the GitHub client (stanch's github settings: a token
	// or a GitHub App installation); called only when a rotation writes.
	Client func() (*gh.Client, error)
}

type githubActions struct {
	spec GitHubActionsSpec
	deps GitHubDeps
}

func newGitHubActions(s GitHubActionsSpec, deps GitHubDeps) (Destination, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return &githubActions{spec: s, deps: deps}, nil
}

func (g *githubActions) Describe() string {
	names := strings.Join(sortedNames(g.spec.Secrets), ", ")
	switch {
	case g.spec.Org != "":
		return fmt.Sprintf("GitHub Actions secrets %s of org %s", names, g.spec.Org)
	case g.spec.Environment != "":
		return fmt.Sprintf("GitHub Actions secrets %s of %s environment %s", names, g.spec.Repository, g.spec.Environment)
	}
	return fmt.Sprintf("GitHub Actions secrets %s of %s", names, g.spec.Repository)
}

// kind is how go-github and the plan name the scope: Repo, Env or Org.
func (g *githubActions) kind() string {
	switch {
	case g.spec.Org != "":
		return "Org"
	case g.spec.Environment != "":
		return "Env"
	}
	return "Repo"
}

func (g *githubActions) params() map[string]any {
	p := map[string]any{}
	switch {
	case g.spec.Org != "":
		p["org"], p["visibility"] = g.spec.Org, g.spec.Visibility
		if len(g.spec.SelectedRepositories) > 0 {
			p["selected_repositories"] = strings.Join(g.spec.SelectedRepositories, ", ")
		}
	default:
		p["repository"] = g.spec.Repository
		if g.spec.Environment != "" {
			p["environment"] = g.spec.Environment
		}
	}
	return p
}

func (g *githubActions) Calls() []actions.Call {
	k := g.kind()
	var calls []actions.Call
	if k == "Env" {
		calls = append(calls, actions.Call{Service: "github", Operation: "Repositories.Get", Params: g.params()})
	}
	for _, r := range g.spec.SelectedRepositories {
		calls = append(calls, actions.Call{Service: "github", Operation: "Repositories.Get", Params: map[string]any{"repository": g.spec.Org + "/" + r}})
	}
	calls = append(calls, actions.Call{Service: "github", Operation: "Actions.Get" + k + "PublicKey", Params: g.params()})
	for _, name := range sortedNames(g.spec.Secrets) {
		p := g.params()
		p["secret_name"] = name
		calls = append(calls,
			actions.Call{Service: "github", Operation: "Actions.Get" + k + "Secret", Params: p},
			actions.Call{Service: "github", Operation: "Actions.CreateOrUpdate" + k + "Secret", Params: p, Mutates: true,
				Effect: fmt.Sprintf("seal the new credential's %s with the public key and set secret %s", g.spec.Secrets[name], name)})
	}
	return calls
}

// scope is one rotation's view of where the secrets are: the client and,
// for an environment, the repository's id.
type githubScope struct {
	g      *githubActions
	client *gh.Client
	repoID int
	// skew is GitHub's clock minus stanch's, from the Date of the first
	// answer (floored to the second, so it errs early).
	skew      time.Duration
	skewKnown bool
}

func (g *githubActions) open(ctx context.Context) (*githubScope, error) {
	if g.deps.Client == nil {
		return nil, actions.Permanent(errors.New("GitHub is not configured for writing Actions secrets (github.token_env or github.app; see docs/rotation.md)"))
	}
	client, err := g.deps.Client()
	if err != nil {
		return nil, err
	}
	s := &githubScope{g: g, client: client}
	if g.spec.Environment != "" {
		owner, name, _ := strings.Cut(g.spec.Repository, "/")
		repo, _, err := client.Repositories.Get(ctx, owner, name)
		if err != nil {
			return nil, githubError("read repository "+g.spec.Repository, err)
		}
		s.repoID = int(repo.GetID())
	}
	return s, nil
}

// since is when secrets written by this rotation were written at the
// earliest, on GitHub's clock in whole seconds (updated_at's precision).
func (s *githubScope) since(m Mark) time.Time {
	return m.Since.Add(s.skew).Truncate(time.Second)
}

func (s *githubScope) noteSkew(res *gh.Response) {
	if s.skewKnown || res == nil || res.Response == nil {
		return
	}
	date, err := http.ParseTime(res.Header.Get("Date"))
	if err != nil {
		return
	}
	s.skewKnown = true
	// Date is in whole seconds: within two seconds the clocks are taken to
	// agree, and updated_at's own truncation is the only correction.
	if d := time.Until(date); d > 2*time.Second || d < -2*time.Second {
		s.skew = d
	}
}

// updated returns a secret's updated_at; ok is false when it is not set.
func (s *githubScope) updated(ctx context.Context, name string) (time.Time, bool, error) {
	var sec *gh.Secret
	var res *gh.Response
	var err error
	switch s.g.kind() {
	case "Org":
		sec, res, err = s.client.Actions.GetOrgSecret(ctx, s.g.spec.Org, name)
	case "Env":
		sec, res, err = s.client.Actions.GetEnvSecret(ctx, s.repoID, s.g.spec.Environment, name)
	default:
		owner, repo, _ := strings.Cut(s.g.spec.Repository, "/")
		sec, res, err = s.client.Actions.GetRepoSecret(ctx, owner, repo, name)
	}
	s.noteSkew(res)
	if res != nil && res.StatusCode == http.StatusNotFound {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, githubError("read secret "+name+" of "+s.where(), err)
	}
	return sec.UpdatedAt.Time, true, nil
}

func (s *githubScope) where() string {
	switch s.g.kind() {
	case "Org":
		return "org " + s.g.spec.Org
	case "Env":
		return s.g.spec.Repository + " environment " + s.g.spec.Environment
	}
	return s.g.spec.Repository
}

// fresh reports whether secret name was written since the step began.
func (s *githubScope) fresh(ctx context.Context, name string, m Mark) (bool, error) {
	at, ok, err := s.updated(ctx, name)
	if err != nil || !ok {
		return false, err
	}
	return !at.Before(s.since(m)), nil
}

// Holds cannot read the secrets (GitHub never gives a value back): it
// holds this rotation's credential when every secret was updated at or
// after the step's first attempt began. Within a step the credential is
// the same across attempts (Secrets Manager keeps it), so such a write is
// this rotation's, unless someone else wrote the same secret during the
// step: that is this check's limit (docs/rotation.md).
func (g *githubActions) Holds(ctx context.Context, c Credential, m Mark) (bool, error) {
	if _, err := mapped(c, g.spec.Secrets); err != nil {
		return false, actions.Permanent(err)
	}
	if m.Since.IsZero() {
		return false, actions.Permanent(errors.New("GitHub Actions secrets cannot be read back: telling this rotation's write needs the step's start time, which is missing"))
	}
	s, err := g.open(ctx)
	if err != nil {
		return false, err
	}
	for _, name := range sortedNames(g.spec.Secrets) {
		ok, err := s.fresh(ctx, name, m)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (g *githubActions) Write(ctx context.Context, c Credential, m Mark) (string, error) {
	values, err := mapped(c, g.spec.Secrets)
	if err != nil {
		return "", actions.Permanent(err)
	}
	if m.Since.IsZero() {
		return "", actions.Permanent(errors.New("GitHub Actions secrets cannot be read back: telling this rotation's write needs the step's start time, which is missing"))
	}
	s, err := g.open(ctx)
	if err != nil {
		return "", err
	}
	var selected []int64
	for _, r := range g.spec.SelectedRepositories {
		repo, _, err := s.client.Repositories.Get(ctx, g.spec.Org, r)
		if err != nil {
			return "", githubError("read repository "+g.spec.Org+"/"+r+" (selected_repositories)", err)
		}
		selected = append(selected, repo.GetID())
	}
	key, err := s.publicKey(ctx)
	if err != nil {
		return "", err
	}
	var written, kept []string
	for _, name := range sortedNames(g.spec.Secrets) {
		// An earlier attempt may have set some of the secrets before it
		// died: those are not set again.
		if ok, err := s.fresh(ctx, name, m); err != nil {
			return "", err
		} else if ok {
			kept = append(kept, name)
			continue
		}
		if err := s.put(ctx, &key, name, values[name], selected); err != nil {
			return "", err
		}
		// Verified by metadata: the value cannot be read back.
		if ok, err := s.fresh(ctx, name, m); err != nil {
			return "", fmt.Errorf("verify: %w", err)
		} else if !ok {
			return "", actions.Retryable(fmt.Errorf("verify: secret %s of %s: GitHub accepted it but its updated_at is before the step began", name, s.where()))
		}
		written = append(written, name)
	}
	what := "set " + strings.Join(written, ", ") + " sealed with key " + key.id
	if len(kept) > 0 {
		what += "; " + strings.Join(kept, ", ") + " already set by this step"
	}
	return what, nil
}

type sealingKey struct {
	id  string
	key [32]byte
}

func (s *githubScope) publicKey(ctx context.Context) (sealingKey, error) {
	var pk *gh.PublicKey
	var res *gh.Response
	var err error
	switch s.g.kind() {
	case "Org":
		pk, res, err = s.client.Actions.GetOrgPublicKey(ctx, s.g.spec.Org)
	case "Env":
		pk, res, err = s.client.Actions.GetEnvPublicKey(ctx, s.repoID, s.g.spec.Environment)
	default:
		owner, repo, _ := strings.Cut(s.g.spec.Repository, "/")
		pk, res, err = s.client.Actions.GetRepoPublicKey(ctx, owner, repo)
	}
	s.noteSkew(res)
	if err != nil {
		return sealingKey{}, githubError("read the Actions public key of "+s.where(), err)
	}
	raw, err := base64.StdEncoding.DecodeString(pk.GetKey())
	if err != nil || len(raw) != 32 {
		return sealingKey{}, actions.Permanent(fmt.Errorf("the Actions public key of %s is not 32 bytes of base64", s.where()))
	}
	k := sealingKey{id: pk.GetKeyID()}
	copy(k.key[:], raw)
	return k, nil
}

// put seals value with the scope's public key and sets the secret. GitHub
// changes the key from time to time: a put refused for its key_id reads
// the key again and seals once more.
func (s *githubScope) put(ctx context.Context, key *sealingKey, name, value string, selected []int64) error {
	for try := 0; ; try++ {
		sealed, err := box.SealAnonymous(nil, []byte(value), &key.key, rand.Reader)
		if err != nil {
			return actions.Retryable(fmt.Errorf("seal secret %s: %w", name, err))
		}
		e := &gh.EncryptedSecret{Name: name, KeyID: key.id, EncryptedValue: base64.StdEncoding.EncodeToString(sealed)}
		var res *gh.Response
		switch s.g.kind() {
		case "Org":
			e.Visibility, e.SelectedRepositoryIDs = s.g.spec.Visibility, selected
			res, err = s.client.Actions.CreateOrUpdateOrgSecret(ctx, s.g.spec.Org, e)
		case "Env":
			res, err = s.client.Actions.CreateOrUpdateEnvSecret(ctx, s.repoID, s.g.spec.Environment, e)
		default:
			owner, repo, _ := strings.Cut(s.g.spec.Repository, "/")
			res, err = s.client.Actions.CreateOrUpdateRepoSecret(ctx, owner, repo, e)
		}
		if err == nil {
			return nil
		}
		if try == 0 && res != nil && res.StatusCode == http.StatusUnprocessableEntity && strings.Contains(err.Error(), "key_id") {
			fresh, kerr := s.publicKey(ctx)
			if kerr == nil && fresh.id != key.id {
				*key = fresh
				continue
			}
		}
		return githubError("set secret "+name+" of "+s.where(), err)
	}
}

// githubError classifies a GitHub API error: rate limits, server errors
// and network trouble are retryable; refusals (credentials, permissions,
// not found, validation) are permanent.
func githubError(what string, err error) error {
	var rl *gh.RateLimitError
	var abuse *gh.AbuseRateLimitError
	var er *gh.ErrorResponse
	switch {
	case actions.KindOf(err) == actions.KindPermanent:
		return err
	case errors.As(err, &rl), errors.As(err, &abuse):
		return actions.Retryable(fmt.Errorf("%s: %w", what, err))
	case errors.As(err, &er) && er.Response != nil:
		code := er.Response.StatusCode
		switch {
		case code == http.StatusTooManyRequests || code >= 500:
			return actions.Retryable(fmt.Errorf("%s: %w", what, err))
		case code == http.StatusForbidden || code == http.StatusNotFound:
			return actions.Permanent(fmt.Errorf("%s: %w (missing, or not visible to stanch's credentials: they need the GitHub App permission %s)", what, err, githubPermissionFor(what)))
		}
		return actions.Permanent(fmt.Errorf("%s: %w", what, err))
	}
	return actions.Retryable(fmt.Errorf("%s: %w", what, err))
}

func githubPermissionFor(what string) string {
	if strings.Contains(what, "org ") {
		return "organization_secrets: write"
	}
	return "secrets: write"
}

func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// githubActionsPermissions are what writing to GitHub Actions secrets needs.
var githubActionsPermissions = []actions.Permission{
	{Provider: "github", Name: "secrets: write", Why: "destinations github_actions (repository or environment): read the public key and the secrets' updated_at, set the secrets"},
	{Provider: "github", Name: "organization_secrets: write", Why: "destinations github_actions with org: read the org's public key and the secrets' updated_at, set the secrets"},
	{Provider: "github", Name: "metadata: read", Why: "destinations github_actions: find the repository id of an environment or of selected_repositories"},
}
