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

Slack (for slack.notify steps and approval messages) is configured from the environment:
STANCH_SLACK_TOKEN (bot token: chat:write, channels:history, channels:read, usergroups:read),
STANCH_SLACK_SIGNING_SECRET (turns on the buttons and the interactions endpoint) and
STANCH_SLACK_API_URL (another Web API base, such as the sandbox's).

An alert that cannot be acted on (GitHub answers 401, 403 or 404 for it, no key id can be found,
or its last attempt failed) is not retried for weeks: it is kept with the reason ('stanch alerts
list', counted under 'stanch runs list'), logged at ERROR and, with Slack, posted once to the
channel STANCH_SLACK_ALERTS_CHANNEL names, else that of the first slack.notify step.

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
requests, then lets running steps finish (up to --shutdown-grace).`,
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
	gh := f.github()
	ghOpts, err := gh.options()
	if err != nil {
		return usageError{err}
	}
	slackClient := slackFromEnv()
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
	mux := http.NewServeMux()
	prog := newProgress(g.stderr)
	prog.quiet = true
	resolvers := map[string]runner.Resolver{}
	periodic := map[string]runner.Poller{}
	ghSecret := os.Getenv(f.ghSecretEnv)
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
		return usageError{fmt.Errorf("--github-poll-repo and --github-poll-org need the GitHub endpoint: set %s", f.ghSecretEnv)}
	}
	slack := newSlackSetup(slackClient, os.Getenv(envSlackSecret), log)
	slack.warn(log, books)
	r, stop, err := startRunner(ctx, g, f.dbURL, reg, prog.observe, f.shutdownGrace, func(c *runner.Config) {
		c.Playbooks, c.Resolvers, c.Pollers = books, resolvers, periodic
		slack.configure(c)
	})
	if err != nil {
		return err
	}
	defer stop()
	if h := slack.mount(mux, r, log, f.rateLimit, proxies); h != nil {
		defer h.Wait()
	}
	sink := &runner.Dispatcher{Runner: r, Playbooks: books, Log: log}
	if ghSecret != "" {
		h := triggers.NewGitHub([]byte(ghSecret), sink, log)
		h.RateLimit(f.rateLimit)
		h.TrustProxies(proxies)
		mux.Handle("/hooks/github", h)
	} else {
		log.Warn("GitHub endpoint off: its secret variable is not set", "variable", f.ghSecretEnv)
	}

	if secret := os.Getenv(f.ebSecretEv); secret != "" {
		h := triggers.NewEventBridgeLimited(f.ebHeader, []byte(secret), sink, log, f.rateLimit)
		h.TrustProxies(proxies)
		mux.Handle("/hooks/aws/eventbridge", h)
	} else {
		log.Warn("EventBridge endpoint off: its secret variable is not set", "variable", f.ebSecretEv)
	}
	if len(f.snsTopics) > 0 {
		h := triggers.NewSNS(f.snsTopics, sink, log)
		h.RateLimit(f.rateLimit)
		h.TrustProxies(proxies)
		mux.Handle("/hooks/aws/sns", h)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, req *http.Request) {
		if _, err := r.Store().ListRuns(req.Context(), runner.ListFilter{Limit: 1}); err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
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
			p := &triggers.SQSPoller{Client: client, QueueURL: url, Sink: sink, Log: log}
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

// github returns the GitHub settings: the flags, else the environment.
func (f serveFlags) github() githubSettings {
	gh := githubFromEnv()
	gh.tokenEnv = f.ghTokenEnv
	if f.ghAPIURL != "" {
		gh.apiURL = f.ghAPIURL
	}
	if f.ghAppID != 0 {
		gh.appID, gh.where[0] = strconv.FormatInt(f.ghAppID, 10), "--github-app-id"
	}
	if f.ghInstallID != 0 {
		gh.installationID, gh.where[1] = strconv.FormatInt(f.ghInstallID, 10), "--github-app-installation-id"
	}
	if f.ghAppKey != "" {
		gh.keyFile, gh.where[2] = f.ghAppKey, "--github-app-private-key"
	}
	return gh
}
