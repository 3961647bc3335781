package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	awsactions "github.com/stanchhq/stanch/actions/aws"
	"github.com/stanchhq/stanch/internal/strictyaml"
	"github.com/stanchhq/stanch/internal/yamldiag"
	"github.com/stanchhq/stanch/reportlink"
	"github.com/stanchhq/stanch/triggers"
)

// fileConfig is stanch's configuration file: everything a deployment
// sets, in one place. It names where secrets come from (an environment
// variable or a file), never the secrets themselves, so that it can be
// checked in CI and kept in version control. Flags and STANCH_* variables
// override it (see settings.go for the order).
type fileConfig struct {
	// Database is the store: file:PATH or postgres://USER@HOST/DB (the
	// password from PGPASSWORD or ~/.pgpass, never here).
	Database  string         `yaml:"database"`
	Log       logConfig      `yaml:"log"`
	Playbooks []string       `yaml:"playbooks"`
	Serve     serveConfig    `yaml:"serve"`
	Triggers  triggersConfig `yaml:"triggers"`
	GitHub    githubConfig   `yaml:"github"`
	Slack     slackConfig    `yaml:"slack"`
	Vault     vaultConfig    `yaml:"vault"`
	Azure     azureConfig    `yaml:"azure"`
	GitLab    gitlabConfig   `yaml:"gitlab"`
	SOPS      sopsConfig     `yaml:"sops"`
	NPM       npmConfig      `yaml:"npm"`
	AWS       awsConfig      `yaml:"aws"`
	Report    reportConfig   `yaml:"report"`

	// path is the file; at says where each key's value is in it.
	path string
	at   strictyaml.Positions
}

type logConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

type serveConfig struct {
	Listen         string        `yaml:"listen"`
	TLS            tlsConfig     `yaml:"tls"`
	MetricsListen  string        `yaml:"metrics_listen"`
	RateLimit      *float64      `yaml:"rate_limit"`
	TrustedProxies []string      `yaml:"trusted_proxies"`
	ShutdownGrace  time.Duration `yaml:"shutdown_grace"`
}

type tlsConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"` // a file: its content is secret, its name is not
}

type triggersConfig struct {
	EventBridge eventBridgeConfig `yaml:"eventbridge"`
	GitHub      secretSource      `yaml:"github"`
	SNS         snsConfig         `yaml:"sns"`
	SQS         sqsConfig         `yaml:"sqs"`
}

type eventBridgeConfig struct {
	Header       string `yaml:"header"`
	secretSource `yaml:",inline"`
}

type snsConfig struct {
	Topics []string `yaml:"topics"`
}

type sqsConfig struct {
	Queues []string `yaml:"queues"`
}

// secretSource names where a secret is read: an environment variable or a
// file (a mounted Kubernetes or systemd secret), never the secret itself.
type secretSource struct {
	SecretEnv  string `yaml:"secret_env"`
	SecretFile string `yaml:"secret_file"`
}

type githubConfig struct {
	APIURL    string           `yaml:"api_url"`
	TokenEnv  string           `yaml:"token_env"`
	TokenFile string           `yaml:"token_file"`
	App       *githubAppConfig `yaml:"app"`
	Poll      githubPollConfig `yaml:"poll"`
}

type githubAppConfig struct {
	ID             int64  `yaml:"id"`
	InstallationID int64  `yaml:"installation_id"`
	PrivateKeyFile string `yaml:"private_key_file"`
}

type githubPollConfig struct {
	Repos    []string      `yaml:"repos"`
	Orgs     []string      `yaml:"orgs"`
	Interval time.Duration `yaml:"interval"`
}

type slackConfig struct {
	APIURL            string `yaml:"api_url"`
	TokenEnv          string `yaml:"token_env"`
	TokenFile         string `yaml:"token_file"`
	SigningSecretEnv  string `yaml:"signing_secret_env"`
	SigningSecretFile string `yaml:"signing_secret_file"`
	AlertsChannel     string `yaml:"alerts_channel"`
}

// vaultConfig is where vault.revoke_token finds Vault (docs/tokens.md).
type vaultConfig struct {
	Address   string `yaml:"address"`
	Namespace string `yaml:"namespace"`
	// Where the operator token for method: accessor is: a variable's name
	// or a file, never the token; read only when such a step runs.
	OperatorTokenEnv  string `yaml:"operator_token_env"`
	OperatorTokenFile string `yaml:"operator_token_file"`
}

// gitlabConfig is where gitlab.revoke_token finds GitLab: a self-managed
// instance (https://gitlab.example.com) or its REST base (…/api/v4).
type gitlabConfig struct {
	URL string `yaml:"url"`
}

// npmConfig is the registry npm.revoke_token revokes tokens at.
type npmConfig struct {
	Registry string `yaml:"registry"`
}

// reportConfig is where stanch serve answers reports, and how links to
// them are signed (docs/configuration.md): the key and the bearer tokens
// are named by a variable or a file, never given here.
type reportConfig struct {
	// BaseURL is stanch serve's public URL; without it no links are made.
	BaseURL          string        `yaml:"base_url"`
	LinkLifetime     time.Duration `yaml:"link_lifetime"`
	SigningKeyEnv    string        `yaml:"signing_key_env"`
	SigningKeyFile   string        `yaml:"signing_key_file"`
	BearerTokensEnv  string        `yaml:"bearer_tokens_env"`
	BearerTokensFile string        `yaml:"bearer_tokens_file"`
}

type awsConfig struct {
	ResponseRoles *rolesConfig `yaml:"response_roles"`
}

type rolesConfig struct {
	// ARN is the role in each account, with {account} for the account id.
	ARN              string `yaml:"arn"`
	SessionName      string `yaml:"session_name"`
	ExternalIDSource `yaml:",inline"`
	Accounts         map[string]accountRole `yaml:"accounts"`
}

type accountRole struct {
	ARN              string `yaml:"arn"`
	ExternalIDSource `yaml:",inline"`
}

// ExternalIDSource is where the external id comes from: given as is (it is an
// identifier, not a secret), or read from an environment variable or file.
type ExternalIDSource struct {
	ExternalID     string `yaml:"external_id"`
	ExternalIDEnv  string `yaml:"external_id_env"`
	ExternalIDFile string `yaml:"external_id_file"`
}

func (v ExternalIDSource) resolve(where string) (string, error) {
	set := 0
	for _, s := range []string{v.ExternalID, v.ExternalIDEnv, v.ExternalIDFile} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return "", fmt.Errorf("%s: give only one of external_id, external_id_env, external_id_file", where)
	}
	switch {
	case v.ExternalIDEnv != "":
		val, ok := os.LookupEnv(v.ExternalIDEnv)
		if !ok || val == "" {
			return "", fmt.Errorf("%s: environment variable %s (external_id_env) is not set", where, v.ExternalIDEnv)
		}
		return val, nil
	case v.ExternalIDFile != "":
		data, err := os.ReadFile(v.ExternalIDFile)
		if err != nil {
			return "", fmt.Errorf("%s: external_id_file: %w", where, err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	return v.ExternalID, nil
}

// loadConfig reads and checks the configuration file at path; an empty
// path is the empty configuration. Every problem of the file is reported
// at once (yamldiag.Problems), secrets are not read: they are resolved
// when used.
func loadConfig(path string) (*fileConfig, error) {
	cfg := &fileConfig{path: path, at: strictyaml.Positions{}}
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	at, err := strictyaml.Decode(path, data, cfg)
	cfg.at = at
	var probs yamldiag.Problems
	if err != nil && !errors.As(err, &probs) {
		return nil, err
	}
	// What decoded is checked too, so one run shows everything to fix.
	probs = append(probs, cfg.check()...)
	if len(probs) > 0 {
		probs.Sort()
		return nil, probs
	}
	return cfg, nil
}

// origin names where a key's value is: "stanch.yaml:12:9".
func (c *fileConfig) origin(key string) string {
	p, ok := c.at[key]
	if !ok {
		return c.path
	}
	return fmt.Sprintf("%s:%d:%d", c.path, p.Line, p.Col)
}

// relative resolves a path the file names against the file's directory,
// as people expect of paths in a configuration file.
func (c *fileConfig) relative(p string) string {
	if p == "" || filepath.IsAbs(p) || c.path == "" || strings.Contains(p, "://") {
		return p
	}
	return filepath.Join(filepath.Dir(c.path), p)
}

var (
	envNameRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	snsTopicRe  = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$`)
	slackChanRe = regexp.MustCompile(`^(#?[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{2,})$`)
)

// check reports, with their positions, every value that could not work,
// without reading any secret: what a deployment must fix before it runs.
func (c *fileConfig) check() yamldiag.Problems {
	probs := yamldiag.Collector{File: c.path}
	add := func(key, hint, format string, args ...any) {
		probs.Add(c.at[key], hint, format, args...)
	}
	if d := c.Database; d != "" {
		switch {
		case strings.HasPrefix(d, "file:"):
		case strings.HasPrefix(d, "postgres://"), strings.HasPrefix(d, "postgresql://"):
			if u, err := url.Parse(d); err != nil {
				add("database", "", "database %q is not a URL: %v", d, err)
			} else if _, has := u.User.Password(); has {
				add("database", "leave the password out: set PGPASSWORD, or use ~/.pgpass", "the database URL holds a password; secrets stay out of the configuration file")
			}
		default:
			add("database", "file:PATH for the embedded SQLite store, or postgres://USER@HOST/DB", "database %q is neither file:PATH nor postgres://…", d)
		}
	}
	oneOf := func(key, v string, allowed ...string) {
		if v != "" && !containsString(allowed, v) {
			add(key, "one of: "+strings.Join(allowed, ", "), "%q is not a valid `%s`", v, key)
		}
	}
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "text", "json")
	for i, p := range c.Playbooks {
		key := fmt.Sprintf("playbooks[%d]", i)
		if matches, err := filepath.Glob(c.relative(p)); err != nil || len(matches) == 0 {
			add(key, "paths are relative to the configuration file's directory", "playbooks %q matches no file", p)
		}
	}
	hostPort := func(key, v string) {
		if v == "" {
			return
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			add(key, "write host:port, such as 127.0.0.1:8080 or :8443", "`%s` %q is not host:port", key, v)
		}
	}
	hostPort("serve.listen", c.Serve.Listen)
	hostPort("serve.metrics_listen", c.Serve.MetricsListen)
	if (c.Serve.TLS.Cert == "") != (c.Serve.TLS.Key == "") {
		add("serve.tls", "give both cert and key, or neither", "`serve.tls` needs both `cert` and `key`")
	}
	if r := c.Serve.RateLimit; r != nil && *r < 0 {
		add("serve.rate_limit", "0 turns the limit off", "`serve.rate_limit` %v is below zero", *r)
	}
	for i, p := range c.Serve.TrustedProxies {
		if _, err := triggers.ParseTrustedProxy(p); err != nil {
			add(fmt.Sprintf("serve.trusted_proxies[%d]", i), "a CIDR such as 10.0.0.0/8, or an address", "%v", err)
		}
	}
	secret := func(key string, s secretSource) {
		if s.SecretEnv != "" && s.SecretFile != "" {
			add(key+".secret_file", "", "give `secret_env` or `secret_file` in `%s`, not both", key)
		}
		if s.SecretEnv != "" && !envNameRe.MatchString(s.SecretEnv) {
			add(key+".secret_env", "name the variable that holds the secret, not the secret", "%q is not an environment variable's name", s.SecretEnv)
		}
	}
	secret("triggers.eventbridge", c.Triggers.EventBridge.secretSource)
	secret("triggers.github", c.Triggers.GitHub)
	for i, t := range c.Triggers.SNS.Topics {
		if !snsTopicRe.MatchString(t) {
			add(fmt.Sprintf("triggers.sns.topics[%d]", i), "arn:aws:sns:REGION:ACCOUNT:NAME", "%q is not an SNS topic ARN", t)
		}
	}
	for i, q := range c.Triggers.SQS.Queues {
		if u, err := url.Parse(q); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add(fmt.Sprintf("triggers.sqs.queues[%d]", i), "an SQS queue URL: https://sqs.REGION.amazonaws.com/ACCOUNT/NAME", "%q is not a queue URL", q)
		}
	}
	httpURL := func(key, v, hint string) {
		if v == "" {
			return
		}
		if u, err := url.Parse(v); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			add(key, hint, "%q is not a URL", v)
		} else if u.User != nil {
			add(key, "leave credentials out of the URL: name a variable or file that holds them", "`%s` holds credentials; secrets stay out of the configuration file", key)
		}
	}
	gh := c.GitHub
	httpURL("github.api_url", gh.APIURL, "GitHub Enterprise Server's API, such as https://ghe.example.com/api/v3/")
	httpURL("slack.api_url", c.Slack.APIURL, "Slack's Web API base, such as https://slack.com/api/")
	httpURL("vault.address", c.Vault.Address, "Vault's address, such as https://vault.example.com:8200")
	httpURL("gitlab.url", c.GitLab.URL, "a self-managed GitLab, such as https://gitlab.example.com (or its REST base …/api/v4)")
	httpURL("npm.registry", c.NPM.Registry, "the registry, such as https://registry.npmjs.org/")
	if v := c.Vault; v.OperatorTokenEnv != "" && !envNameRe.MatchString(v.OperatorTokenEnv) {
		// Not quoted: what is there instead of a name may be the token.
		add("vault.operator_token_env", "name the variable that holds the token, not the token", "`vault.operator_token_env` is not an environment variable's name (its value is not repeated here)")
	}
	if v := c.Vault; v.OperatorTokenEnv != "" && v.OperatorTokenFile != "" {
		add("vault.operator_token_file", "", "give `operator_token_env` or `operator_token_file`, not both")
	}
	httpURL("azure.keyvault_url", c.Azure.KeyVaultURL, "the vault's URL, such as https://kv-prod.vault.azure.net/")
	if a := c.Azure; a.TokenEnv != "" && !envNameRe.MatchString(a.TokenEnv) {
		add("azure.token_env", "name the variable that holds the token, not the token", "`azure.token_env` is not an environment variable's name (its value is not repeated here)")
	} else if a.TokenEnv != "" && a.TokenFile != "" {
		add("azure.token_file", "", "give `token_env` or `token_file`, not both")
	}
	if gh.TokenEnv != "" && !envNameRe.MatchString(gh.TokenEnv) {
		add("github.token_env", "name the variable that holds the token, not the token", "%q is not an environment variable's name", gh.TokenEnv)
	}
	if gh.TokenEnv != "" && gh.TokenFile != "" {
		add("github.token_file", "", "give `token_env` or `token_file`, not both")
	}
	if app := gh.App; app != nil {
		if gh.TokenEnv != "" || gh.TokenFile != "" {
			add("github.app", "", "give either a token or a GitHub App, not both")
		}
		if app.ID <= 0 {
			add("github.app", "the App's id, from its settings page", "`github.app` needs `id`, a number above 0")
		}
		if app.InstallationID <= 0 {
			add("github.app", "the installation's id in the organisation or account", "`github.app` needs `installation_id`, a number above 0")
		}
		if app.PrivateKeyFile == "" {
			add("github.app", "the .pem file GitHub generated for the App", "`github.app` needs `private_key_file`")
		}
	}
	for i, r := range gh.Poll.Repos {
		if err := triggers.CheckRepo("", r); err != nil {
			add(fmt.Sprintf("github.poll.repos[%d]", i), "owner/name", "%q is not a repository's owner/name", r)
		}
	}
	for i, o := range gh.Poll.Orgs {
		if err := triggers.CheckOwner("", o); err != nil {
			add(fmt.Sprintf("github.poll.orgs[%d]", i), "", "%q is not an organisation's name", o)
		}
	}
	sl := c.Slack
	for key, name := range map[string]string{"slack.token_env": sl.TokenEnv, "slack.signing_secret_env": sl.SigningSecretEnv} {
		if name != "" && !envNameRe.MatchString(name) {
			add(key, "name the variable that holds the secret, not the secret", "%q is not an environment variable's name", name)
		}
	}
	if sl.TokenEnv != "" && sl.TokenFile != "" {
		add("slack.token_file", "", "give `token_env` or `token_file`, not both")
	}
	if sl.SigningSecretEnv != "" && sl.SigningSecretFile != "" {
		add("slack.signing_secret_file", "", "give `signing_secret_env` or `signing_secret_file`, not both")
	}
	if sl.AlertsChannel != "" && !slackChanRe.MatchString(sl.AlertsChannel) {
		add("slack.alerts_channel", `a channel name such as "#sec-incidents" (quoted) or an id such as C0123ABCD`, "%q is not a Slack channel", sl.AlertsChannel)
	}
	c.checkReport(add, httpURL)
	if rc := c.AWS.ResponseRoles; rc != nil {
		if rc.ARN != "" && !strings.Contains(rc.ARN, "{account}") {
			add("aws.response_roles.arn", "e.g. arn:aws:iam::{account}:role/stanch-responder", "`aws.response_roles.arn` %q must contain {account}", rc.ARN)
		}
		if n := countSet(rc.ExternalID, rc.ExternalIDEnv, rc.ExternalIDFile); n > 1 {
			add("aws.response_roles", "", "give only one of external_id, external_id_env, external_id_file")
		}
		for _, account := range sortedKeys(rc.Accounts) {
			if len(account) != 12 || strings.Trim(account, "0123456789") != "" {
				add("aws.response_roles.accounts."+account, "", "%q is not a 12-digit account id", account)
			}
			ar := rc.Accounts[account]
			if n := countSet(ar.ExternalID, ar.ExternalIDEnv, ar.ExternalIDFile); n > 1 {
				add("aws.response_roles.accounts."+account, "", "give only one of external_id, external_id_env, external_id_file")
			}
		}
	}
	return probs.Problems
}

// checkReport checks the report: section.
func (c *fileConfig) checkReport(add func(key, hint, format string, args ...any), httpURL func(key, v, hint string)) {
	rc := c.Report
	httpURL("report.base_url", rc.BaseURL, "stanch serve's public URL, such as https://stanch.example.com")
	if d := rc.LinkLifetime; d < 0 || d > reportlink.MaxLifetime {
		add("report.link_lifetime", "such as 720h (30 days, the default); at most 8760h (a year)", "`report.link_lifetime` %s is not above 0 and at most a year", d)
	}
	for _, s := range []struct{ env, file, key string }{
		{rc.SigningKeyEnv, rc.SigningKeyFile, "report.signing_key"},
		{rc.BearerTokensEnv, rc.BearerTokensFile, "report.bearer_tokens"},
	} {
		if s.env != "" && !envNameRe.MatchString(s.env) {
			// Not quoted: what is there instead of a name may be the secret.
			add(s.key+"_env", "name the variable that holds the secret, not the secret", "`%s_env` is not an environment variable's name (its value is not repeated here)", s.key)
		}
		if s.env != "" && s.file != "" {
			add(s.key+"_file", "", "give `%s_env` or `%s_file`, not both", s.key, s.key)
		}
	}
}

func countSet(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readSecret reads a secret from the environment variable or file a
// configuration names; "" when neither holds one.
func readSecret(env, file string) (string, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	if env != "" {
		return os.Getenv(env), nil
	}
	return "", nil
}

// secret reads a secret the file names the source of: its file (relative
// to the configuration's directory), else the variable env names, else the
// variable fallback; "" when that is unset.
func (c *fileConfig) secret(env, fallback, file string) (string, error) {
	if file != "" {
		return readSecret("", c.relative(file))
	}
	if env == "" {
		env = fallback
	}
	return os.Getenv(env), nil
}

// providerOptions turns the configuration into the AWS actions' options.
func (c *fileConfig) providerOptions() (awsactions.ProviderOptions, error) {
	var opts awsactions.ProviderOptions
	rc := c.AWS.ResponseRoles
	if rc == nil {
		return opts, nil
	}
	where := c.origin("aws.response_roles") + ": aws.response_roles"
	ext, err := rc.resolve(where)
	if err != nil {
		return opts, err
	}
	roles := &awsactions.ResponseRoles{ARN: rc.ARN, ExternalID: ext, SessionName: rc.SessionName, Accounts: map[string]awsactions.ResponseRole{}}
	for account, ar := range rc.Accounts {
		ext, err := ar.resolve(where + ".accounts." + account)
		if err != nil {
			return opts, err
		}
		roles.Accounts[account] = awsactions.ResponseRole{ARN: ar.ARN, ExternalID: ext}
	}
	opts.Roles = roles
	return opts, nil
}

// roleARNs lists the response roles as IAM resources, with * for the
// {account} placeholder.
func (c *fileConfig) roleARNs() []string {
	rc := c.AWS.ResponseRoles
	if rc == nil {
		return nil
	}
	var arns []string
	if rc.ARN != "" {
		arns = append(arns, strings.ReplaceAll(rc.ARN, "{account}", "*"))
	}
	for _, ar := range rc.Accounts {
		if ar.ARN != "" {
			arns = append(arns, ar.ARN)
		}
	}
	sort.Strings(arns)
	return arns
}
