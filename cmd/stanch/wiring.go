package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stanchhq/stanch/actions"
	awsactions "github.com/stanchhq/stanch/actions/aws"
	ghactions "github.com/stanchhq/stanch/actions/github"
	gitlabact "github.com/stanchhq/stanch/actions/gitlab"
	npmact "github.com/stanchhq/stanch/actions/npm"
	slackact "github.com/stanchhq/stanch/actions/slack"
	vaultact "github.com/stanchhq/stanch/actions/vault"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/destinations"
	"github.com/stanchhq/stanch/leaked"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
	stanchslack "github.com/stanchhq/stanch/slack"
	"github.com/stanchhq/stanch/triggers"
)

// newRegistry returns every action this build has: AWS actions with aws
// (by default the SDK's own configuration: credential chain, AWS_REGION,
// AWS_ENDPOINT_URL…, loaded on first use), GitHub actions as gh says, Slack
// actions posting through slack, and the token actions with their
// endpoints from the environment alone (no configuration file).
func newRegistry(aws awsactions.ProviderOptions, gh githubSettings, slack *stanchslack.Client) (*actions.Registry, error) {
	return newRegistryWith(aws, gh, slack, (&globals{}).tokenSettings())
}

// newRegistryWith is newRegistry with the token actions configured by tok.
func newRegistryWith(aws awsactions.ProviderOptions, gh githubSettings, slack *stanchslack.Client, tok tokenSettings) (*actions.Registry, error) {
	ghOpts, err := gh.options()
	if err != nil {
		return nil, err
	}
	ghp := ghactions.NewProvider(ghOpts)
	// aws.rotate_key writes the new key to Vault with the operator token
	// (docs/rotation.md), read only when such a step runs.
	aws.Destinations.Vault = destinations.VaultDeps{Address: tok.vaultAddress, Namespace: tok.vaultNamespace, Token: tok.vaultOperatorToken}
	aws.Destinations.GitHub = destinations.GitHubDeps{Client: ghp.Client}
	aws.Destinations.Azure = tok.azure
	aws.Destinations.SOPS = destinations.SOPSDeps{AgeKeyFile: tok.sopsAgeKeyFile, GitHub: ghp.Client}
	all := awsactions.Actions(awsactions.NewProvider(aws))
	all = append(all, slackact.Actions(slack, slackact.Options{RecordLink: gh.recordLink})...)
	all = append(all, ghactions.Actions(ghp)...)
	all = append(all, tokenActions(ghp, tok)...)
	return actions.NewRegistry(all...)
}

// tokenSettings are where the token actions find each provider
// (docs/configuration.md, docs/tokens.md). Empty: the action's default.
type tokenSettings struct {
	slackAPIURL, vaultAddress, vaultNamespace, gitlabURL, npmRegistry string
	// vaultOperatorToken reads the operator token from where the
	// configuration says; called only when a method: accessor step runs.
	vaultOperatorToken func() (string, error)
	azure              destinations.AzureDeps
	// sopsAgeKeyFile holds the age identity SOPS destinations decrypt with.
	sopsAgeKeyFile string
}

// tokenSettings reads the token providers' settings: each one's STANCH_*
// variable, else the configuration file, else the provider's own variable
// (VAULT_ADDR, VAULT_NAMESPACE). No secret is read here.
func (g *globals) tokenSettings() tokenSettings {
	get := func(key string) string { v, _ := g.setting(key); return v }
	t := tokenSettings{
		slackAPIURL:    withSlash(get("slack.api_url")),
		vaultAddress:   get("vault.address"),
		vaultNamespace: get("vault.namespace"),
		gitlabURL:      gitlabAPIBase(get("gitlab.url")),
		npmRegistry:    get("npm.registry"),
		sopsAgeKeyFile: get("sops.age_key_file"),
		azure:          g.azureDeps(),
	}
	env, file := get("vault.operator_token_env"), get("vault.operator_token_file")
	if env == "" {
		env = envVaultOperatorToken
	}
	t.vaultOperatorToken = func() (string, error) {
		if file != "" {
			tok, err := readSecret("", file)
			if err != nil {
				return "", fmt.Errorf("the Vault operator token (vault.operator_token_file): %w", err)
			}
			return tok, nil
		}
		return os.Getenv(env), nil
	}
	return t
}

// withSlash ends a base URL with "/", as slack-go joins method names to it.
func withSlash(u string) string {
	if u == "" || strings.HasSuffix(u, "/") {
		return u
	}
	return u + "/"
}

// gitlabAPIBase turns a GitLab instance's URL (https://gitlab.example.com,
// also under a path) into its REST base, …/api/v4; a REST base is kept.
func gitlabAPIBase(u string) string {
	u = strings.TrimRight(u, "/")
	if u == "" || strings.HasSuffix(u, "/api/v4") {
		return u
	}
	return u + "/api/v4"
}

// tokenActions are the actions that revoke leaked GitHub, Slack, Vault,
// GitLab and npm tokens with the tokens themselves (docs/tokens.md). They
// reach a token they did not see through ghp's secret-scanning alerts.
// GitHub's revocation endpoint follows ghp's API (github.api_url); the
// others' endpoints are tok's.
func tokenActions(ghp *ghactions.Provider, tok tokenSettings) []actions.Action {
	fromAlert := ghp.AlertSecret()
	all := ghactions.TokenActions(ghp)
	all = append(all, slackact.TokenActions(slackact.TokenOptions{APIURL: tok.slackAPIURL, AlertSecret: fromAlert})...)
	all = append(all, vaultact.Actions(vaultact.Options{Address: tok.vaultAddress, Namespace: tok.vaultNamespace, AlertSecret: fromAlert,
		OperatorToken: tok.vaultOperatorToken})...)
	all = append(all, gitlabact.Actions(gitlabact.Options{BaseURL: tok.gitlabURL, AlertSecret: fromAlert})...)
	all = append(all, npmact.Actions(npmact.Options{RegistryURL: tok.npmRegistry, AlertSecret: fromAlert})...)
	return all
}

// registry returns every action, configured from --config and the
// environment.
func (g *globals) registry() (*actions.Registry, error) {
	slack, err := g.slackClient()
	if err != nil {
		return nil, err
	}
	return g.registryWith(g.githubSettings(), slack)
}

// schemaRegistry is every action without credentials: enough to check
// playbooks and list permissions, and it reads no secret, so that
// validate, permissions and config check run in CI without production
// secrets.
func schemaRegistry() (*actions.Registry, error) {
	return newRegistry(awsactions.ProviderOptions{}, githubSettings{}, stanchslack.NewClient(stanchslack.Options{}))
}

// registryWith is registry with GitHub configured by gh (stanch serve's
// flags) and Slack by slack.
func (g *globals) registryWith(gh githubSettings, slack *stanchslack.Client) (*actions.Registry, error) {
	opts, err := g.cfg.providerOptions()
	if err != nil {
		return nil, err
	}
	// github.resolve_alert's comment links the run's incident record.
	if gh.recordLink, err = g.recordLinks(); err != nil {
		return nil, err
	}
	return newRegistryWith(opts, gh, slack, g.tokenSettings())
}

// loadPlaybook loads and validates one playbook; an invalid one is reported
// in full and becomes exit code 1.
func loadPlaybook(g *globals, reg *actions.Registry, path string) (*playbooks.Playbook, error) {
	pb, err := playbooks.Load(path, reg)
	if err != nil {
		var perrs playbooks.Errors
		if errors.As(err, &perrs) {
			sayLines(g.stderr, perrs.Error())
			return nil, &exitError{code: exitFailed, msg: fmt.Sprintf("%s: %d problem(s); fix them and run again (stanch validate %s)", path, len(perrs), path)}
		}
		return nil, err
	}
	return pb, nil
}

// readAlerts reads alerts from a file or "-" (stdin): a stanch Alert or any
// payload a trigger understands.
func readAlerts(g *globals, path string) ([]alert.Alert, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(g.stdin, 32<<20))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read alert: %w", err)
	}
	// Before parsing, which redacts: a token given as the alert's
	// credential.id becomes its fingerprint there, and the action that
	// revokes it needs the value.
	held := rememberTokens(string(data))
	rep, err := triggers.ParseDocument(data, time.Now(), triggers.SourceFiles{Dirs: []string{"."}})
	if err != nil {
		forgetUnused(held, nil)
		return nil, fmt.Errorf("alert %s: %w", path, err)
	}
	reportSkipped(g.stderr, path, rep)
	alerts := rep.Alerts
	forgetUnused(held, alerts)
	if len(alerts) == 0 {
		return nil, fmt.Errorf("alert %s: no findings in it", path)
	}
	return alerts, nil
}

// rememberTokens keeps, in this process's memory only (leaked.Process),
// the value of every token of a revocable kind in text, and returns their
// fingerprints. Nothing is written anywhere: a run that this process does
// not work (stanch run --detach) cannot revoke it with the value, and says
// so.
func rememberTokens(text string) []string {
	var fps []string
	for _, v := range alert.TokensIn(text) {
		if k, ok := alert.TokenKindOf(v); ok && k.Revocable {
			fps = append(fps, leaked.Process.Remember(v))
		}
	}
	return fps
}

// forgetUnused drops the values rememberTokens kept that no alert names
// as its credential: a token elsewhere in the document (a title, a
// description) is not this run's to revoke, and is not kept.
func forgetUnused(fps []string, alerts []alert.Alert) {
	for _, fp := range fps {
		if !slices.ContainsFunc(alerts, func(a alert.Alert) bool { return a.Credential.ID == fp }) {
			leaked.Process.Forget(fp)
		}
	}
}

// openRunner opens the database and a runner on it.
func openRunner(ctx context.Context, g *globals, dbURL string, reg *actions.Registry, observer func(runner.Event), options ...func(*runner.Config)) (*runner.Runner, *runner.Database, error) {
	db, err := runner.OpenDatabase(ctx, dbURL)
	if err != nil {
		if errors.Is(err, runner.ErrDatabaseURL) {
			return nil, nil, usageError{err}
		}
		return nil, nil, err
	}
	cfg := runner.Config{DB: db, Registry: reg, Logger: g.logger(), Observer: observer}
	for _, o := range options {
		o(&cfg)
	}
	r, err := runner.New(ctx, cfg)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return r, db, nil
}

// loadInputs builds the registry, loads the playbook and reads the alerts:
// what plan and run both start with.
func loadInputs(g *globals, playbookPath, alertPath string) (*actions.Registry, *playbooks.Playbook, []alert.Alert, error) {
	reg, err := g.registry()
	if err != nil {
		return nil, nil, nil, err
	}
	pb, err := loadPlaybook(g, reg, playbookPath)
	if err != nil {
		return nil, nil, nil, err
	}
	alerts, err := readAlerts(g, alertPath)
	if err != nil {
		return nil, nil, nil, err
	}
	return reg, pb, alerts, nil
}

// startRunner opens the store and starts working runs; stop waits up to
// grace for running steps, then closes everything.
func startRunner(ctx context.Context, g *globals, dbURL string, reg *actions.Registry, observer func(runner.Event), grace time.Duration, options ...func(*runner.Config)) (*runner.Runner, func(), error) {
	r, db, err := openRunner(ctx, g, dbURL, reg, observer, options...)
	if err != nil {
		return nil, nil, err
	}
	if err := r.Start(ctx); err != nil {
		db.Close()
		return nil, nil, err
	}
	// This process works the store now: it takes the token values of the
	// alerts others hand it (docs/tokens.md).
	closeValues := func() {}
	if db.Dialect == runner.SQLite {
		closeValues = listenValues(g, db.Path)
	}
	stop := func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
		_ = r.Stop(stopCtx)
		closeValues()
		db.Close()
	}
	return r, stop, nil
}

// loadPlaybooks loads every playbook the globs name.
func loadPlaybooks(g *globals, reg *actions.Registry, globs []string) ([]*playbooks.Playbook, error) {
	var books []*playbooks.Playbook
	for _, pattern := range globs {
		paths, err := filepath.Glob(pattern)
		if err != nil || len(paths) == 0 {
			return nil, fmt.Errorf("--playbooks %q matches no file", pattern)
		}
		for _, p := range paths {
			pb, err := loadPlaybook(g, reg, p)
			if err != nil {
				return nil, err
			}
			books = append(books, pb)
		}
	}
	return books, nil
}

// joinRunner opens the store and works its runs here unless another
// process already does: holder then names it ("stanch process 1234"), and
// what is submitted is queued for that process. On PostgreSQL, where any
// number of processes work the store, it is always local. stop closes what
// was opened.
func joinRunner(ctx context.Context, g *globals, dbURL string, reg *actions.Registry, observer func(runner.Event)) (r *runner.Runner, holder string, stop func(), err error) {
	r, db, err := openRunner(ctx, g, dbURL, reg, observer)
	if err != nil {
		return nil, "", nil, err
	}
	var busy *runner.BusyError
	if err := r.Start(ctx); errors.As(err, &busy) {
		// Whoever holds the store must be named: the runs wait for it, and
		// a process that exits soon (stanch run) leaves them to the next.
		return r, "stanch process " + busy.PID + " (it holds " + busy.Lock + ")", func() { db.Close() }, nil
	} else if err != nil {
		db.Close()
		return nil, "", nil, err
	}
	closeValues := func() {}
	if db.Dialect == runner.SQLite {
		closeValues = listenValues(g, db.Path)
	}
	return r, "", func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = r.Stop(stopCtx)
		closeValues()
		db.Close()
	}, nil
}
