package main

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/triggers"
)

type serveFlags struct {
	listen, dbURL        string
	playbooks            []string
	tlsCert, tlsKey      string
	ebHeader, ebSecretEv string
	ghSecretEnv          string
	ghTokenEnv, ghAPIURL string
	ghAppID, ghInstallID int64
	ghAppKey             string
	sqsQueues            []string
	snsTopics            []string
	rateLimit            float64
	trustedProxies       []string
	pollRepos, pollOrgs  []string
	pollEvery            time.Duration
	shutdownGrace        time.Duration
	metricsListen        string
}

func newServeCmd(g *globals) *cobra.Command {
	f := serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve --playbooks GLOB [--listen ADDR]",
		Short: "Receive alerts over HTTP and run the matching playbooks",
		Long: `Run the HTTP endpoints that receive alerts and the workers that run playbooks.

Endpoints:
  POST /hooks/aws/eventbridge   GuardDuty findings that name an access key and AWS Health
                                AWS_RISK_* events from an EventBridge API destination; the
                                connection's API-key header (--eventbridge-header) must carry the
                                secret read from the environment variable named by
                                --eventbridge-secret-env. Every event that can be acted on is
                                stored; the others are named with the reason in the answer
                                ({"accepted":[…],"ignored":[…]}, 200) and the log. A body with
                                no EventBridge event in it is answered 400, and so is one where
                                nothing was accepted and an event was refused as malformed (a
                                GuardDuty finding whose key id field holds no one key id).
  POST /hooks/github            GitHub secret_scanning_alert (and _location) webhooks, verified
                                with X-Hub-Signature-256 against the secret in --github-secret-env;
                                repository.full_name and alert.number must be what GitHub makes
                                (else 400).
                                A worker then fetches the alert through the REST API (token from
                                --github-token-env, or a GitHub App: --github-app-id,
                                --github-app-installation-id, --github-app-private-key;
                                --github-api-url for GitHub Enterprise Server) to learn the key id
                                (for a secret without its id, from the key id alert at the same
                                place). The github.* actions use the same credentials.
  POST /hooks/aws/sns           an SNS HTTPS subscription of the topics named by --sns-topic:
                                every message's signature (versions 1 and 2) is checked with
                                a certificate fetched only over HTTPS from an SNS host, and
                                subscriptions are confirmed only for those topics.
  POST /hooks/slack/interactions
                                clicks on the Approve and Deny buttons of approval messages,
                                verified with the app's signing secret (v0 signatures, 5-minute
                                window, each request accepted once, also after a restart:
                                handled signatures are kept in the store).
  GET  /reports/{run}           the run's report (HTML), to a link that verifies (the Slack
                                incident message and the GitHub resolution comment carry it:
                                signed with the key in STANCH_REPORT_SIGNING_KEY, it expires
                                report.link_lifetime after the run was created) or to a request
                                with Authorization: Bearer and one of STANCH_REPORT_BEARER_TOKENS.
                                Anything else is answered 404 as an unknown path is, so that
                                nothing tells whether a run exists. Links are made only with
                                STANCH_REPORT_BASE_URL, stanch serve's public URL.
  GET  /healthz                 200 when the store answers.
  GET  /readyz                  200 once the runner works and while the store answers, else 503
                                with the reason (starting, stopping, store not answering).
  GET  /metrics                 Prometheus metrics (docs/metrics.md); with --metrics-listen, there
                                instead (with /readyz, served from before the runner starts).

Slack (for slack.notify steps and approval messages) is configured by the configuration
file's slack: section or, by default, from the environment: STANCH_SLACK_TOKEN (bot token:
chat:write, channels:history, channels:read, usergroups:read, users:read), STANCH_SLACK_SIGNING_SECRET
(turns on the buttons and the interactions endpoint) and STANCH_SLACK_API_URL (another Web
API base, such as the sandbox's).

Every flag can also be set by a STANCH_* variable or the configuration file (--config, else
$STANCH_CONFIG); a flag given here wins, then the variable, then the file. 'stanch config
show' lists each setting and where its value comes from (docs/configuration.md).

An alert that cannot be acted on (GitHub answers 401, 403 or 404 for it, no key id can be found,
or its last attempt failed) is not retried for weeks: it is kept with the reason ('stanch alerts
list', counted under 'stanch runs list'), logged at ERROR and, with Slack, posted once to the
channel STANCH_SLACK_ALERTS_CHANNEL (or slack.alerts_channel) names, else that of the first
slack.notify step.

With --github-poll-repo/--github-poll-org it also lists open secret-scanning alerts every
--github-poll-interval, as a backstop: GitHub does not retry failed deliveries.
With --sqs-queue-url (repeatable), it also long-polls SQS queues fed by EventBridge rules (or
SNS subscriptions): a message is deleted only after its alerts are stored; a message that can
never be read is logged, counted, kept ('stanch alerts list') and deleted.

An alert is committed to the store before the sender gets its 2xx; the answer never waits on
AWS. Bodies are limited to 1 MiB. Each source address has two budgets of --rate-limit requests
a second per endpoint: one for authenticated requests and one for requests refused before or
at authentication, so forged requests never cost genuine ones theirs. The source address is
the peer's; behind a load balancer or proxy, name it with --trusted-proxy and the address it
appends to X-Forwarded-For is used instead (the header is ignored from any other peer).
Rejections are logged (reason and source address, never the body); past the budget, forged
requests are logged as a count once a second. SIGTERM or Ctrl-C drains in-flight
requests, then lets running steps finish (up to --shutdown-grace); /readyz answers 503
from then on.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fl.StringArrayVar(&f.playbooks, "playbooks", nil, "playbook files or globs (repeatable; required), e.g. 'playbooks/*.yaml'")
	fl.StringVar(&f.dbURL, "database", runner.DefaultDatabaseURL(), "store: file:PATH (embedded SQLite) or postgres://USER@HOST/DB")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate file (with --tls-key)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "private key file for --tls-cert")
	fl.StringVar(&f.ebHeader, "eventbridge-header", "X-Stanch-Token", "header the EventBridge connection sends its API key in")
	fl.StringVar(&f.ebSecretEv, "eventbridge-secret-env", "STANCH_EVENTBRIDGE_SECRET", "environment variable holding the EventBridge API key; the endpoint is off when it is unset")
	fl.StringVar(&f.ghSecretEnv, "github-secret-env", "STANCH_GITHUB_WEBHOOK_SECRET", "environment variable holding the GitHub webhook secret; the endpoint is off when it is unset")
	fl.StringVar(&f.ghTokenEnv, "github-token-env", "STANCH_GITHUB_TOKEN", "environment variable holding a GitHub token that may read secret-scanning alerts")
	fl.StringVar(&f.ghAPIURL, "github-api-url", "", "GitHub Enterprise Server API URL, e.g. https://ghe.example.com/api/v3/ (default $"+envGitHubAPIURL+", else github.com)")
	fl.Int64Var(&f.ghAppID, "github-app-id", 0, "authenticate to GitHub as this GitHub App (default $"+envGitHubAppID+"), instead of with a token; needs the two flags below")
	fl.Int64Var(&f.ghInstallID, "github-app-installation-id", 0, "the App's installation id in the organisation or account (default $"+envGitHubInstallationID+")")
	fl.StringVar(&f.ghAppKey, "github-app-private-key", "", "`FILE` holding the App's private key, as GitHub generated it in PEM form (default $"+envGitHubAppKeyFile+")")
	fl.StringArrayVar(&f.pollRepos, "github-poll-repo", nil, "repository (owner/name) whose open secret-scanning alerts are polled as a backstop for missed webhooks (repeatable)")
	fl.StringArrayVar(&f.pollOrgs, "github-poll-org", nil, "organisation whose open secret-scanning alerts are polled as a backstop (repeatable)")
	fl.DurationVar(&f.pollEvery, "github-poll-interval", 10*time.Minute, "how often the backstop polls")
	fl.Float64Var(&f.rateLimit, "rate-limit", triggers.DefaultRateLimit, "requests per second each source address may make to each endpoint, authenticated and refused ones counted apart (bursts of 4 s worth; 0 = no limit)")
	fl.StringArrayVar(&f.trustedProxies, "trusted-proxy", nil, "`CIDR` (or address) of a load balancer or proxy in front of stanch whose X-Forwarded-For names the source address (repeatable); without it the header is ignored")
	fl.StringArrayVar(&f.snsTopics, "sns-topic", nil, "SNS topic ARN whose HTTPS subscription POSTs to /hooks/aws/sns (repeatable); other topics are refused")
	fl.StringArrayVar(&f.sqsQueues, "sqs-queue-url", nil, "SQS queue to poll for EventBridge events (repeatable)")
	fl.DurationVar(&f.shutdownGrace, "shutdown-grace", 30*time.Second, "how long to wait for in-flight requests and running steps on shutdown")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", "`ADDR` to serve /metrics on instead of --listen (which may face the internet), with /readyz from before the runner starts, e.g. 10.0.0.5:9090")
	return cmd
}

// webhookSecret reads an endpoint's secret: from the variable the flag
// names when the flag was given on the command line, else from the file
// the configuration names, else from the variable. from names the source
// for messages.
func webhookSecret(g *globals, flag, env string, src secretSource) (secret, from string, err error) {
	if g.origins[flag] != "--"+flag && src.SecretFile != "" {
		file := g.cfg.relative(src.SecretFile)
		secret, err := readSecret("", file)
		return secret, file, err
	}
	return os.Getenv(env), "$" + env, nil
}

// proxies reads --trusted-proxy.
func (f serveFlags) proxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range f.trustedProxies {
		p, err := triggers.ParseTrustedProxy(s)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxy: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// github returns the GitHub settings: the flags (which hold the variables'
// and the file's values when not given), else the file's token source.
func (f serveFlags) github(g *globals) githubSettings {
	gh := g.githubSettings()
	if g.origins["github-token-env"] == "--github-token-env" || g.cfg.GitHub.TokenFile == "" {
		gh.tokenEnv, gh.tokenFile = f.ghTokenEnv, ""
	}
	gh.apiURL = f.ghAPIURL
	for i, set := range []struct {
		flag string
		v    string
		to   *string
	}{
		{"github-app-id", strconv.FormatInt(f.ghAppID, 10), &gh.appID},
		{"github-app-installation-id", strconv.FormatInt(f.ghInstallID, 10), &gh.installationID},
		{"github-app-private-key", f.ghAppKey, &gh.keyFile},
	} {
		if origin, ok := g.origins[set.flag]; ok {
			*set.to, gh.where[i] = set.v, origin
		}
	}
	return gh
}
