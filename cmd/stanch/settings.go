package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stanchhq/stanch/reportlink"
)

// Every setting a flag carries can also come from a STANCH_* variable and
// from the configuration file. The order, first found wins:
//
//  1. the flag, given on the command line;
//  2. its STANCH_* environment variable;
//  3. the configuration file (--config, else $STANCH_CONFIG);
//  4. the flag's default.
//
// applySettings runs before every command and fills each flag that was not
// given from the variable or the file, so that the commands read their
// flags and nothing else; origins remembers where each value came from.

// binding ties a flag of some commands to its variable and its key in the
// file.
type binding struct {
	// flag is the flag that carries the setting; "" for a setting no flag
	// carries (a provider's endpoint, which a deployment sets once), read
	// with globals.setting from the variable, else the file.
	flag string
	// commands are the commands (by name) whose flag it is; empty: every
	// command that has the flag.
	commands []string
	env      string
	// key is the configuration file's key, for origins; file reads it,
	// returning ok false when the file does not set it.
	key  string
	file func(c *fileConfig) (values []string, ok bool)
	// fallbackEnv is a variable of the provider's own (VAULT_ADDR) read
	// after the file, before the default.
	fallbackEnv string
	// def is the default stanch config show prints for a setting no flag
	// carries (a flag's default is the flag's).
	def string
}

func one(s string) ([]string, bool) { return []string{s}, s != "" }

func many(list []string) ([]string, bool) { return list, len(list) > 0 }

var bindings = []binding{
	{flag: "database", env: "STANCH_DATABASE", key: "database", file: func(c *fileConfig) ([]string, bool) {
		// A file: store is a path like the others: relative to the file.
		if p, ok := strings.CutPrefix(c.Database, "file:"); ok {
			return one("file:" + c.relative(p))
		}
		return one(c.Database)
	}},
	{flag: "log-level", env: "STANCH_LOG_LEVEL", key: "log.level", file: func(c *fileConfig) ([]string, bool) { return one(c.Log.Level) }},
	{flag: "log-format", env: "STANCH_LOG_FORMAT", key: "log.format", file: func(c *fileConfig) ([]string, bool) { return one(c.Log.Format) }},
	{flag: "playbooks", commands: []string{"serve", "ingest"}, env: "STANCH_PLAYBOOKS", key: "playbooks", file: func(c *fileConfig) ([]string, bool) {
		out := make([]string, len(c.Playbooks))
		for i, p := range c.Playbooks {
			out[i] = c.relative(p)
		}
		return many(out)
	}},
	{flag: "listen", commands: []string{"serve"}, env: "STANCH_LISTEN", key: "serve.listen", file: func(c *fileConfig) ([]string, bool) { return one(c.Serve.Listen) }},
	{flag: "tls-cert", commands: []string{"serve"}, env: "STANCH_TLS_CERT", key: "serve.tls.cert", file: func(c *fileConfig) ([]string, bool) { return one(c.relative(c.Serve.TLS.Cert)) }},
	{flag: "tls-key", commands: []string{"serve"}, env: "STANCH_TLS_KEY", key: "serve.tls.key", file: func(c *fileConfig) ([]string, bool) { return one(c.relative(c.Serve.TLS.Key)) }},
	{flag: "metrics-listen", commands: []string{"serve"}, env: "STANCH_METRICS_LISTEN", key: "serve.metrics_listen", file: func(c *fileConfig) ([]string, bool) { return one(c.Serve.MetricsListen) }},
	{flag: "rate-limit", commands: []string{"serve"}, env: "STANCH_RATE_LIMIT", key: "serve.rate_limit", file: func(c *fileConfig) ([]string, bool) {
		if c.Serve.RateLimit == nil {
			return nil, false
		}
		return []string{strconv.FormatFloat(*c.Serve.RateLimit, 'f', -1, 64)}, true
	}},
	{flag: "trusted-proxy", commands: []string{"serve"}, env: "STANCH_TRUSTED_PROXIES", key: "serve.trusted_proxies", file: func(c *fileConfig) ([]string, bool) { return many(c.Serve.TrustedProxies) }},
	{flag: "shutdown-grace", commands: []string{"serve"}, env: "STANCH_SHUTDOWN_GRACE", key: "serve.shutdown_grace", file: func(c *fileConfig) ([]string, bool) {
		return durationSetting(c.Serve.ShutdownGrace)
	}},
	{flag: "eventbridge-header", commands: []string{"serve"}, env: "STANCH_EVENTBRIDGE_HEADER", key: "triggers.eventbridge.header", file: func(c *fileConfig) ([]string, bool) { return one(c.Triggers.EventBridge.Header) }},
	{flag: "eventbridge-secret-env", commands: []string{"serve"}, key: "triggers.eventbridge.secret_env", file: func(c *fileConfig) ([]string, bool) { return one(c.Triggers.EventBridge.SecretEnv) }},
	{flag: "github-secret-env", commands: []string{"serve"}, key: "triggers.github.secret_env", file: func(c *fileConfig) ([]string, bool) { return one(c.Triggers.GitHub.SecretEnv) }},
	{flag: "sns-topic", commands: []string{"serve"}, env: "STANCH_SNS_TOPICS", key: "triggers.sns.topics", file: func(c *fileConfig) ([]string, bool) { return many(c.Triggers.SNS.Topics) }},
	{flag: "sqs-queue-url", commands: []string{"serve"}, env: "STANCH_SQS_QUEUE_URLS", key: "triggers.sqs.queues", file: func(c *fileConfig) ([]string, bool) { return many(c.Triggers.SQS.Queues) }},
	{flag: "github-api-url", commands: []string{"serve"}, env: envGitHubAPIURL, key: "github.api_url", file: func(c *fileConfig) ([]string, bool) { return one(c.GitHub.APIURL) }},
	{flag: "github-token-env", commands: []string{"serve"}, key: "github.token_env", file: func(c *fileConfig) ([]string, bool) { return one(c.GitHub.TokenEnv) }},
	{flag: "github-app-id", commands: []string{"serve"}, env: envGitHubAppID, key: "github.app.id", file: func(c *fileConfig) ([]string, bool) {
		if c.GitHub.App == nil || c.GitHub.App.ID == 0 {
			return nil, false
		}
		return []string{strconv.FormatInt(c.GitHub.App.ID, 10)}, true
	}},
	{flag: "github-app-installation-id", commands: []string{"serve"}, env: envGitHubInstallationID, key: "github.app.installation_id", file: func(c *fileConfig) ([]string, bool) {
		if c.GitHub.App == nil || c.GitHub.App.InstallationID == 0 {
			return nil, false
		}
		return []string{strconv.FormatInt(c.GitHub.App.InstallationID, 10)}, true
	}},
	{flag: "github-app-private-key", commands: []string{"serve"}, env: envGitHubAppKeyFile, key: "github.app.private_key_file", file: func(c *fileConfig) ([]string, bool) {
		if c.GitHub.App == nil {
			return nil, false
		}
		return one(c.relative(c.GitHub.App.PrivateKeyFile))
	}},
	{flag: "github-poll-repo", commands: []string{"serve"}, env: "STANCH_GITHUB_POLL_REPOS", key: "github.poll.repos", file: func(c *fileConfig) ([]string, bool) { return many(c.GitHub.Poll.Repos) }},
	{flag: "github-poll-org", commands: []string{"serve"}, env: "STANCH_GITHUB_POLL_ORGS", key: "github.poll.orgs", file: func(c *fileConfig) ([]string, bool) { return many(c.GitHub.Poll.Orgs) }},
	{flag: "github-poll-interval", commands: []string{"serve"}, env: "STANCH_GITHUB_POLL_INTERVAL", key: "github.poll.interval", file: func(c *fileConfig) ([]string, bool) {
		return durationSetting(c.GitHub.Poll.Interval)
	}},

	// The token providers' endpoints (docs/tokens.md): every command that
	// runs actions reads them, so no one command's flag carries them.
	// GitHub's revocation endpoint follows github.api_url.
	{env: envSlackAPIURL, key: "slack.api_url", def: "https://slack.com/api/", file: func(c *fileConfig) ([]string, bool) { return one(c.Slack.APIURL) }},
	{env: envVaultAddr, key: "vault.address", fallbackEnv: "VAULT_ADDR", def: "https://127.0.0.1:8200", file: func(c *fileConfig) ([]string, bool) { return one(c.Vault.Address) }},
	{env: envVaultNamespace, key: "vault.namespace", fallbackEnv: "VAULT_NAMESPACE", file: func(c *fileConfig) ([]string, bool) { return one(c.Vault.Namespace) }},
	// Where the operator token is (method: accessor only): the name of a
	// variable or a file, never the token; read when such a step runs.
	{key: "vault.operator_token_env", def: envVaultOperatorToken, file: func(c *fileConfig) ([]string, bool) { return one(c.Vault.OperatorTokenEnv) }},
	{key: "vault.operator_token_file", file: func(c *fileConfig) ([]string, bool) { return one(c.relative(c.Vault.OperatorTokenFile)) }},
	// Azure Key Vault destinations (docs/rotation.md): the token's variable
	// or file, never the token.
	{env: "STANCH_AZURE_KEYVAULT_URL", key: "azure.keyvault_url", file: func(c *fileConfig) ([]string, bool) { return one(c.Azure.KeyVaultURL) }},
	{env: "STANCH_AZURE_CA_FILE", key: "azure.ca_file", file: func(c *fileConfig) ([]string, bool) { return one(c.relative(c.Azure.CAFile)) }},
	{key: "azure.token_env", def: envAzureToken, file: func(c *fileConfig) ([]string, bool) { return one(c.Azure.TokenEnv) }},
	{key: "azure.token_file", file: func(c *fileConfig) ([]string, bool) { return one(c.relative(c.Azure.TokenFile)) }},
	// SOPS destinations (docs/rotation.md): the age keys file, never a key.
	{env: "STANCH_SOPS_AGE_KEY_FILE", key: "sops.age_key_file", fallbackEnv: "SOPS_AGE_KEY_FILE", file: func(c *fileConfig) ([]string, bool) { return one(c.relative(c.SOPS.AgeKeyFile)) }},
	{env: envGitLabURL, key: "gitlab.url", def: "https://gitlab.com/api/v4", file: func(c *fileConfig) ([]string, bool) { return one(c.GitLab.URL) }},
	{env: envNPMRegistry, key: "npm.registry", def: "https://registry.npmjs.org/", file: func(c *fileConfig) ([]string, bool) { return one(c.NPM.Registry) }},
	// Links to reports (docs/configuration.md): every command that draws
	// an incident message or resolves a GitHub alert makes them.
	{env: envReportBaseURL, key: "report.base_url", file: func(c *fileConfig) ([]string, bool) { return one(c.Report.BaseURL) }},
	{env: envReportLinkLifetime, key: "report.link_lifetime", def: reportlink.DefaultLifetime.String(), file: func(c *fileConfig) ([]string, bool) {
		return durationSetting(c.Report.LinkLifetime)
	}},
}

// The variables of the token providers' settings.
const (
	envVaultAddr          = "STANCH_VAULT_ADDR"
	envVaultNamespace     = "STANCH_VAULT_NAMESPACE"
	envVaultOperatorToken = "STANCH_VAULT_OPERATOR_TOKEN"
	envGitLabURL          = "STANCH_GITLAB_URL"
	envNPMRegistry        = "STANCH_NPM_REGISTRY"
)

// setting returns the value of a setting no flag carries (its file key is
// key), and where it came from: the STANCH_* variable, else the file, else
// the provider's own variable, else "" and "default" (the action's own
// default applies).
func (g *globals) setting(key string) (value, from string) {
	b := bindingForKey(key)
	if b.flag != "" {
		panic("setting: --" + b.flag + " carries " + key + ": read the flag")
	}
	if b.env != "" && os.Getenv(b.env) != "" {
		return os.Getenv(b.env), "$" + b.env
	}
	if g.cfg != nil {
		if values, ok := b.file(g.cfg); ok && len(values) == 1 && values[0] != "" {
			return values[0], g.cfg.origin(b.key)
		}
	}
	if b.fallbackEnv != "" && os.Getenv(b.fallbackEnv) != "" {
		return os.Getenv(b.fallbackEnv), "$" + b.fallbackEnv
	}
	return "", "default"
}

func bindingForKey(key string) binding {
	for _, b := range bindings {
		if b.key == key {
			return b
		}
	}
	panic("no binding for " + key)
}

func durationSetting(d interface{ String() string }) ([]string, bool) {
	s := d.String()
	return []string{s}, s != "0s"
}

// applySettings loads the configuration file and fills the flags of cmd
// that were not given, from their variables, else from the file.
func (g *globals) applySettings(cmd *cobra.Command) error {
	if g.cfg == nil {
		path := g.configPath
		if path == "" {
			path = os.Getenv("STANCH_CONFIG")
		}
		cfg, err := loadConfig(path)
		if err != nil {
			return configError(path, err)
		}
		g.cfg = cfg
	}
	g.origins = map[string]string{}
	for _, b := range bindings {
		if b.flag == "" {
			continue // read where used (setting)
		}
		name := cmd.Name()
		if as := cmd.Annotations[settingsAs]; as != "" {
			name = as
		}
		if len(b.commands) > 0 && !containsString(b.commands, name) {
			continue
		}
		fl := cmd.Flags().Lookup(b.flag)
		if fl == nil {
			continue
		}
		switch {
		case fl.Changed:
			g.origins[b.flag] = "--" + b.flag
		case b.env != "" && os.Getenv(b.env) != "":
			if err := setFlag(fl, splitList(os.Getenv(b.env), fl)); err != nil {
				return usageError{fmt.Errorf("$%s: %q is not %s (for --%s)", b.env, os.Getenv(b.env), valueKind(fl), b.flag)}
			}
			g.origins[b.flag] = "$" + b.env
		default:
			if values, ok := b.file(g.cfg); ok {
				if err := setFlag(fl, values); err != nil {
					return fmt.Errorf("%s: %s: %w", g.cfg.origin(b.key), b.key, err)
				}
				g.origins[b.flag] = g.cfg.origin(b.key)
			}
		}
	}
	return nil
}

// splitList reads a list from a variable: comma-separated for a flag
// that takes several values.
func splitList(v string, fl *pflag.Flag) []string {
	if _, ok := fl.Value.(pflag.SliceValue); !ok {
		return []string{v}
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// valueKind says what a flag takes, for errors about a variable's value.
func valueKind(fl *pflag.Flag) string {
	switch fl.Value.Type() {
	case "int", "int64":
		return "a whole number"
	case "float64":
		return "a number"
	case "duration":
		return "a duration such as 30s or 10m"
	case "bool":
		return "true or false"
	}
	return "a valid value"
}

func setFlag(fl *pflag.Flag, values []string) error {
	if sv, ok := fl.Value.(pflag.SliceValue); ok {
		return sv.Replace(values)
	}
	if len(values) != 1 {
		return fmt.Errorf("one value, not %d", len(values))
	}
	return fl.Value.Set(values[0])
}

// configError is a configuration file that cannot be used: every problem
// it has, then what to run.
func configError(path string, err error) error {
	return &exitError{code: exitFailed, msg: fmt.Sprintf("%v\n%s: fix the configuration and check it with stanch config check --config %s", err, path, path)}
}

// given says how a command printed for people to run next must repeat
// what this one was given on the command line (--config, --database): a
// value from the environment or the configuration file is there again.
func (g *globals) given(cmd *cobra.Command) string {
	var out string
	if fl := cmd.Flags().Lookup("config"); fl != nil && fl.Changed {
		out += " --config " + shellQuote(fl.Value.String())
	}
	if fl := cmd.Flags().Lookup("database"); fl != nil && fl.Changed {
		out += " --database " + shellQuote(fl.Value.String())
	}
	return out
}
