package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stanchhq/stanch/internal/yamldiag"
	"github.com/stanchhq/stanch/playbooks"
)

// ownSettings marks a command that reads no setting from the
// configuration file or STANCH_* variables: config check reads the file on
// its own terms (it reports a broken file instead of refusing to start);
// demo, sandbox and version need nothing from either, so a broken file
// cannot stop them.
const ownSettings = "own-settings"

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check the configuration file and show where each setting comes from",
	}
	cmd.AddCommand(newConfigCheckCmd(g), newConfigShowCmd(g))
	return cmd
}

func newConfigCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a configuration file without reading any secret",
		Long: `Check a configuration file (FILE, else --config, else $STANCH_CONFIG): YAML syntax, keys,
types and values, and the playbooks it names. Every problem is reported at once as
file:line:col with a hint. No secret is read: the file only names the variables and files
that hold them, so this runs in CI without production secrets. Sources of secrets that are
not available where it runs are listed on stderr as notes, not errors.
Prints ok and exits 0 when the file is valid; exits 1 otherwise.`,
		Annotations: map[string]string{ownSettings: "yes"},
		Args:        rangeArgs(0, 1),
		RunE: func(_ *cobra.Command, args []string) error {
			path := g.configPath
			if len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				return usageError{errors.New("config check needs a file: stanch config check FILE (or --config FILE, or $STANCH_CONFIG)")}
			}
			cfg, err := loadConfig(path)
			var probs yamldiag.Problems
			if errors.As(err, &probs) {
				sayLines(g.stdout, probs.Error())
				return &exitError{code: exitFailed, msg: fmt.Sprintf("%s: %d problem(s)", path, len(probs))}
			} else if err != nil {
				return err
			}
			bad, err := checkConfigPlaybooks(g, cfg)
			if err != nil {
				return err
			}
			if bad > 0 {
				return &exitError{code: exitFailed, msg: fmt.Sprintf("%s: %d playbook(s) it names are invalid", path, bad)}
			}
			for _, note := range cfg.unavailableSecrets() {
				say(g.stderr, "note: %s\n", note)
			}
			say(g.stdout, "%s: ok\n", path)
			return nil
		},
	}
}

// checkConfigPlaybooks validates the playbooks the file names, printing
// their problems; it returns how many are invalid.
func checkConfigPlaybooks(g *globals, cfg *fileConfig) (int, error) {
	if len(cfg.Playbooks) == 0 {
		return 0, nil
	}
	reg, err := schemaRegistry()
	if err != nil {
		return 0, err
	}
	bad := 0
	for _, p := range expandPlaybooks(cfg) {
		if _, err := playbooks.Load(p, reg); err != nil {
			bad++
			var perrs playbooks.Errors
			if errors.As(err, &perrs) {
				sayLines(g.stdout, perrs.Error())
			} else {
				say(g.stdout, "%s: %v\n", p, err)
			}
		}
	}
	return bad, nil
}

// unavailableSecrets lists the secret sources the file names (or leaves
// to their default variables) that this environment does not hold: fine
// in CI, worth knowing before a deployment.
func (c *fileConfig) unavailableSecrets() []string {
	var notes []string
	source := func(what, env, fallback, file string) {
		switch {
		case file != "":
			if _, err := os.Stat(c.relative(file)); err != nil {
				notes = append(notes, fmt.Sprintf("%s: file %s is not readable here", what, c.relative(file)))
			}
		default:
			if env == "" {
				env = fallback
			}
			if env != "" && os.Getenv(env) == "" {
				notes = append(notes, fmt.Sprintf("%s: $%s is not set here", what, env))
			}
		}
	}
	source("EventBridge API key (its endpoint stays off without it)", c.Triggers.EventBridge.SecretEnv, "STANCH_EVENTBRIDGE_SECRET", c.Triggers.EventBridge.SecretFile)
	source("GitHub webhook secret (its endpoint stays off without it)", c.Triggers.GitHub.SecretEnv, "STANCH_GITHUB_WEBHOOK_SECRET", c.Triggers.GitHub.SecretFile)
	if app := c.GitHub.App; app != nil {
		source("GitHub App private key", "", "", app.PrivateKeyFile)
	} else {
		source("GitHub token", c.GitHub.TokenEnv, envGitHubToken, c.GitHub.TokenFile)
	}
	source("Slack token", c.Slack.TokenEnv, envSlackToken, c.Slack.TokenFile)
	source("Slack signing secret (approval buttons)", c.Slack.SigningSecretEnv, envSlackSecret, c.Slack.SigningSecretFile)
	if v := c.Vault; v.OperatorTokenEnv != "" || v.OperatorTokenFile != "" {
		// Only vault.revoke_token's method: accessor reads it: named here,
		// it is meant to be there.
		source("Vault operator token (vault.revoke_token method: accessor)", v.OperatorTokenEnv, "", v.OperatorTokenFile)
	}
	if r := c.Report; r.BaseURL != "" || r.SigningKeyEnv != "" || r.SigningKeyFile != "" {
		source("report signing key (links to reports)", r.SigningKeyEnv, envReportSigningKey, r.SigningKeyFile)
	}
	if r := c.Report; r.BearerTokensEnv != "" || r.BearerTokensFile != "" {
		source("report bearer tokens", r.BearerTokensEnv, "", r.BearerTokensFile)
	}
	if rc := c.AWS.ResponseRoles; rc != nil {
		source("aws.response_roles external id", rc.ExternalIDEnv, "", rc.ExternalIDFile)
		for _, account := range sortedKeys(rc.Accounts) {
			ar := rc.Accounts[account]
			source("aws.response_roles.accounts."+account+" external id", ar.ExternalIDEnv, "", ar.ExternalIDFile)
		}
	}
	return notes
}

// expandPlaybooks lists the files the file's playbooks globs match.
func expandPlaybooks(c *fileConfig) []string {
	values, _ := bindingFor("playbooks").file(c)
	var out []string
	for _, pattern := range values {
		matches, _ := filepath.Glob(pattern)
		out = append(out, matches...)
	}
	return out
}

// settingsAs names the command whose bindings a command reads its flags
// with: config show takes stanch serve's flags and shows what serve would
// run with.
const settingsAs = "settings-as"

func newConfigShowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show [FLAGS]",
		Short: "Show every setting, its value and where it comes from",
		Long: `Show every setting stanch serve (and the other commands) would run with, its value and where
the value comes from: a flag given here (stanch serve's flags are accepted), a STANCH_*
variable, the configuration file (file:line:col) or the default, in that order of precedence.
Values are names of variables and files, never secrets.`,
		Annotations: map[string]string{settingsAs: "serve"},
		Args:        exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.cfg.path != "" {
				say(g.stdout, "configuration file: %s\n\n", g.cfg.path)
			} else {
				say(g.stdout, "configuration file: none (--config FILE or $STANCH_CONFIG)\n\n")
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			say(tw, "SETTING\tFLAG\tVALUE\tFROM\n")
			for _, b := range bindings {
				if b.flag == "" {
					value, from := g.setting(b.key)
					say(tw, "%s\t-\t%s\t%s\n", b.key, orDash(cmp.Or(value, b.def)), from)
					continue
				}
				fl := cmd.Flags().Lookup(b.flag)
				if fl == nil {
					continue
				}
				from, ok := g.origins[b.flag]
				if !ok {
					from = "default"
				}
				say(tw, "%s\t--%s\t%s\t%s\n", b.key, b.flag, orDash(strings.Join(flagValues(fl), ",")), from)
			}
			for _, s := range unflagged(g.cfg) {
				value, from := s.fallback, "default"
				if s.env != "" && os.Getenv(s.env) != "" {
					value, from = os.Getenv(s.env), "$"+s.env
				} else if s.value != "" {
					value, from = s.value, g.cfg.origin(s.key)
				}
				say(tw, "%s\t-\t%s\t%s\n", s.key, orDash(value), from)
			}
			return tw.Flush()
		},
	}
	serveFlags := newServeCmd(g).Flags()
	serveFlags.VisitAll(func(fl *pflag.Flag) {
		if fl.Name != "help" {
			cmd.Flags().AddFlag(fl)
		}
	})
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// unflaggedSetting is a setting no flag carries and the binding table
// does not hold: Slack's, and where secrets are read from.
type unflaggedSetting struct {
	key, env, fallback, value string
}

func unflagged(c *fileConfig) []unflaggedSetting {
	roles := ""
	if rc := c.AWS.ResponseRoles; rc != nil {
		roles = strings.Join(c.roleARNs(), ",")
	}
	return []unflaggedSetting{
		{key: "triggers.eventbridge.secret_file", value: c.Triggers.EventBridge.SecretFile},
		{key: "triggers.github.secret_file", value: c.Triggers.GitHub.SecretFile},
		{key: "github.token_file", value: c.GitHub.TokenFile},
		{key: "slack.token_env", fallback: envSlackToken, value: c.Slack.TokenEnv},
		{key: "slack.token_file", value: c.Slack.TokenFile},
		{key: "slack.signing_secret_env", fallback: envSlackSecret, value: c.Slack.SigningSecretEnv},
		{key: "slack.signing_secret_file", value: c.Slack.SigningSecretFile},
		{key: "slack.alerts_channel", env: envSlackAlertsChannel, value: c.Slack.AlertsChannel},
		{key: "aws.response_roles", value: roles},
		// Where the report link key and bearer tokens are: names, never
		// the secrets.
		{key: "report.signing_key_env", fallback: envReportSigningKey, value: c.Report.SigningKeyEnv},
		{key: "report.signing_key_file", value: c.relative(c.Report.SigningKeyFile)},
		{key: "report.bearer_tokens_env", fallback: envReportBearerTokens, value: c.Report.BearerTokensEnv},
		{key: "report.bearer_tokens_file", value: c.relative(c.Report.BearerTokensFile)},
	}
}

func flagValues(fl *pflag.Flag) []string {
	if sv, ok := fl.Value.(pflag.SliceValue); ok {
		return sv.GetSlice()
	}
	return []string{fl.Value.String()}
}

func bindingFor(flag string) binding {
	for _, b := range bindings {
		if b.flag == flag {
			return b
		}
	}
	panic("no binding for --" + flag)
}
