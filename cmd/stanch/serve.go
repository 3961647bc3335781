package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	ghactions "github.com/stanchhq/stanch/actions/github"
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
  GET  /healthz                 200 when the store answers.
  GET  /readyz                  200 once the runner works and while the store answers, else 503
                                with the reason (starting, stopping, store not answering).
  GET  /metrics                 Prometheus metrics (docs/metrics.md); with --metrics-listen, there
                                instead (with /readyz, served from before the runner starts).

Slack (for slack.notify steps and approval messages) is configured by the configuration
file's slack: section or, by default, from the environment: STANCH_SLACK_TOKEN (bot token:
chat:write, channels:history, channels:read, usergroups:read), STANCH_SLACK_SIGNING_SECRET
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

func serve(ctx context.Context, g *globals, f serveFlags) error {
	if len(f.playbooks) == 0 {
		return usageError{errors.New("serve needs --playbooks GLOB (the playbooks alerts are matched against)")}
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	proxies, err := f.proxies()
	if err != nil {
		return usageError{err}
	}
	for _, repo := range f.pollRepos {
		if err := triggers.CheckRepo("--github-poll-repo "+strconv.Quote(repo), repo); err != nil {
			return usageError{err}
		}
	}
	for _, org := range f.pollOrgs {
		if err := triggers.CheckOwner("--github-poll-org "+strconv.Quote(org), org); err != nil {
			return usageError{err}
		}
	}
	gh := f.github(g)
	ghOpts, err := gh.options()
	if err != nil {
		return usageError{err}
	}
	slackClient, err := g.slackClient()
	if err != nil {
		return err
	}
	signingSecret, err := g.slackSigningSecret()
	if err != nil {
		return err
	}
	reg, err := g.registryWith(gh, slackClient)
	if err != nil {
		return err
	}
	books, err := loadPlaybooks(g, reg, f.playbooks)
	if err != nil {
		return err
	}
	log := g.logger()
	build := readBuildInfo()
	log.Info("stanch serve starting", "version", build.Version, "commit", build.Commit, "modified", build.Modified, "go", build.GoVersion)
	obs, err := startObservability(f.metricsListen, log)
	if err != nil {
		return err
	}
	defer obs.close()
	mux := http.NewServeMux()
	prog := newProgress(g.stderr)
	prog.quiet = true
	resolvers := map[string]runner.Resolver{}
	periodic := map[string]runner.Poller{}
	ghSecret, ghSecretFrom, err := webhookSecret(g, "github-secret-env", f.ghSecretEnv, g.cfg.Triggers.GitHub)
	if err != nil {
		return err
	}
	ebSecret, ebSecretFrom, err := webhookSecret(g, "eventbridge-secret-env", f.ebSecretEv, g.cfg.Triggers.EventBridge.secretSource)
	if err != nil {
		return err
	}
	if ghSecret != "" {
		// The same client as the github.* actions': with a GitHub App, every
		// request carries an installation token, renewed before it expires.
		client, err := ghactions.NewClient(ghOpts)
		if err != nil {
			return usageError{err}
		}
		resolvers[triggers.ResolverGitHubAlert] = (&triggers.GitHubResolver{Client: client}).Resolve
		if len(f.pollRepos)+len(f.pollOrgs) > 0 {
			periodic["github-backstop"] = runner.Poller{Every: f.pollEvery, Poll: func(ctx context.Context, r *runner.Runner) error {
				return (&triggers.GitHubBackstop{Client: client, Repos: f.pollRepos, Orgs: f.pollOrgs, Sink: r}).Poll(ctx)
			}}
		}
	} else if len(f.pollRepos)+len(f.pollOrgs) > 0 {
		return usageError{fmt.Errorf("--github-poll-repo and --github-poll-org need the GitHub endpoint: its secret (%s) is not set", ghSecretFrom)}
	}
	slack := newSlackSetup(slackClient, signingSecret, log)
	slack.alertsChannel = g.slackAlertsChannel()
	slack.warn(log, books)
	r, stop, err := startRunner(ctx, g, f.dbURL, reg, obs.observe(prog.observe), f.shutdownGrace, func(c *runner.Config) {
		c.Playbooks, c.Resolvers, c.Pollers = books, resolvers, periodic
		slack.configure(c)
	})
	if err != nil {
		return err
	}
	defer stop()
	obs.started(r)
	if h := slack.mount(mux, r, log, f.rateLimit, proxies); h != nil {
		h.CountIn(obs.metrics)
		defer h.Wait()
	}
	sink := &runner.Dispatcher{Runner: r, Playbooks: books, Log: log}
	if ghSecret != "" {
		h := triggers.NewGitHub([]byte(ghSecret), sink, log)
		h.RateLimit(f.rateLimit)
		h.TrustProxies(proxies)
		h.CountIn(obs.metrics)
		mux.Handle("/hooks/github", h)
	} else {
		log.Warn("GitHub endpoint off: its secret is not set", "source", ghSecretFrom)
	}

	if ebSecret != "" {
		h := triggers.NewEventBridgeLimited(f.ebHeader, []byte(ebSecret), sink, log, f.rateLimit)
		h.TrustProxies(proxies)
		h.CountIn(obs.metrics)
		mux.Handle("/hooks/aws/eventbridge", h)
	} else {
		log.Warn("EventBridge endpoint off: its secret is not set", "source", ebSecretFrom)
	}
	if len(f.snsTopics) > 0 {
		h := triggers.NewSNS(f.snsTopics, sink, log)
		h.RateLimit(f.rateLimit)
		h.TrustProxies(proxies)
		h.CountIn(obs.metrics)
		mux.Handle("/hooks/aws/sns", h)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, req *http.Request) {
		if _, err := r.Store().ListRuns(req.Context(), runner.ListFilter{Limit: 1}); err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	obs.mount(mux)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", f.listen, err)
	}
	scheme := "http"
	if f.tlsCert != "" {
		scheme = "https"
	}
	names := make([]string, len(books))
	for i, pb := range books {
		names[i] = pb.Name
	}
	say(g.stdout, "stanch serve: %s://%s, playbooks %s, store %s\n", scheme, ln.Addr(), strings.Join(names, ", "), f.dbURL)

	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	var pollers sync.WaitGroup
	if len(f.sqsQueues) > 0 {
		awsCfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("AWS configuration for SQS: %w", err)
		}
		client := sqs.NewFromConfig(awsCfg)
		for _, url := range f.sqsQueues {
			p := &triggers.SQSPoller{Client: client, QueueURL: url, Sink: sink, Log: log, Meter: obs.metrics}
			pollers.Go(func() {
				p.Run(pollCtx)
				st := p.Stats()
				log.Info("SQS poller stopped", "queue", url, "received", st.Received, "accepted", st.Accepted, "poison", st.Poison)
			})
		}
	}
	errc := make(chan error, 1)
	go func() {
		if f.tlsCert != "" {
			errc <- srv.ServeTLS(ln, f.tlsCert, f.tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	obs.stopping()
	sayln(g.stdout, "stanch serve: shutting down; draining requests")
	stopPolling()
	pollers.Wait()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
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
