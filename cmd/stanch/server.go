package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/stanchhq/stanch/actions"
	ghactions "github.com/stanchhq/stanch/actions/github"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/reportlink"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/triggers"
)

// serve is stanch serve, in phases: check what it was given, start the
// runner, mount the endpoints, listen, poll, and drain on the way out.
func serve(ctx context.Context, g *globals, f serveFlags) error {
	s, err := newServer(g, f)
	if err != nil {
		return err
	}
	build := readBuildInfo()
	s.log.Info("stanch serve starting", "version", build.Version, "commit", build.Commit, "modified", build.Modified, "go", build.GoVersion)
	obs, err := startObservability(f.metricsListen, s.log)
	if err != nil {
		return err
	}
	defer obs.close()
	resolvers, periodic, err := s.githubWork()
	if err != nil {
		return err
	}
	prog := newProgress(g.stderr)
	prog.quiet = true
	r, stop, err := startRunner(ctx, g, f.dbURL, s.reg, obs.observe(prog.observe), f.shutdownGrace, func(c *runner.Config) {
		c.Playbooks, c.Resolvers, c.Pollers = s.books, resolvers, periodic
		s.slack.configure(c)
	})
	if err != nil {
		return err
	}
	defer stop()
	obs.started(r)
	sink := &runner.Dispatcher{Runner: r, Playbooks: s.books, Log: s.log}
	mux, wait := s.endpoints(r, sink, obs)
	defer wait()
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", f.listen, err)
	}
	s.announce(ln.Addr())
	stopPolling, err := s.startPollers(ctx, sink, obs)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopPolling()
	return s.run(ctx, mux, ln, obs, stopPolling)
}

// server is what stanch serve runs with once its flags are checked.
type server struct {
	g       *globals
	f       serveFlags
	log     *slog.Logger
	proxies []netip.Prefix
	gh      ghactions.Options
	reg     *actions.Registry
	books   []*playbooks.Playbook
	slack   *slackSetup
	// The endpoints' secrets, and where each was looked for (for
	// messages when it is missing).
	ghSecret, ghSecretFrom string
	ebSecret, ebSecretFrom string
	// reports verify the links to reports and the bearer tokens; either
	// may be nil, and every request is then refused alike.
	reportSigner *reportlink.Signer
	reportTokens *reportlink.Tokens
}

// newServer checks the flags and reads the credentials and playbooks:
// everything that can be wrong before anything starts.
func newServer(g *globals, f serveFlags) (*server, error) {
	if len(f.playbooks) == 0 {
		return nil, usageError{errors.New("serve needs --playbooks GLOB (the playbooks alerts are matched against)")}
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	s := &server{g: g, f: f, log: g.logger()}
	var err error
	if s.proxies, err = f.proxies(); err != nil {
		return nil, usageError{err}
	}
	for _, repo := range f.pollRepos {
		if err := triggers.CheckRepo("--github-poll-repo "+strconv.Quote(repo), repo); err != nil {
			return nil, usageError{err}
		}
	}
	for _, org := range f.pollOrgs {
		if err := triggers.CheckOwner("--github-poll-org "+strconv.Quote(org), org); err != nil {
			return nil, usageError{err}
		}
	}
	gh := f.github(g)
	if s.gh, err = gh.options(); err != nil {
		return nil, usageError{err}
	}
	slackClient, err := g.slackClient()
	if err != nil {
		return nil, err
	}
	signingSecret, err := g.slackSigningSecret()
	if err != nil {
		return nil, err
	}
	if s.reg, err = g.registryWith(gh, slackClient); err != nil {
		return nil, err
	}
	if s.books, err = loadPlaybooks(g, s.reg, f.playbooks); err != nil {
		return nil, err
	}
	if s.ghSecret, s.ghSecretFrom, err = webhookSecret(g, "github-secret-env", f.ghSecretEnv, g.cfg.Triggers.GitHub); err != nil {
		return nil, err
	}
	if s.ebSecret, s.ebSecretFrom, err = webhookSecret(g, "eventbridge-secret-env", f.ebSecretEv, g.cfg.Triggers.EventBridge.secretSource); err != nil {
		return nil, err
	}
	if s.ghSecret == "" && len(f.pollRepos)+len(f.pollOrgs) > 0 {
		return nil, usageError{fmt.Errorf("--github-poll-repo and --github-poll-org need the GitHub endpoint: its secret (%s) is not set", s.ghSecretFrom)}
	}
	if s.reportSigner, err = g.reportSigner(); err != nil {
		return nil, err
	}
	if s.reportTokens, err = g.reportTokens(); err != nil {
		return nil, err
	}
	s.slack = newSlackSetup(slackClient, signingSecret, s.log)
	if s.reportSigner.Makes() {
		s.slack.notifier.WithRecordLink(s.reportSigner.Link)
	}
	s.slack.alertsChannel = g.slackAlertsChannel()
	s.slack.warn(s.log, s.books)
	return s, nil
}

// githubWork is what the GitHub endpoint needs of the runner: the resolver
// that fetches an alert's key id, and the backstop poller.
func (s *server) githubWork() (map[string]runner.Resolver, map[string]runner.Poller, error) {
	resolvers := map[string]runner.Resolver{}
	periodic := map[string]runner.Poller{}
	if s.ghSecret == "" {
		return resolvers, periodic, nil
	}
	// The same client as the github.* actions': with a GitHub App, every
	// request carries an installation token, renewed before it expires.
	client, err := ghactions.NewClient(s.gh)
	if err != nil {
		return nil, nil, usageError{err}
	}
	resolvers[triggers.ResolverGitHubAlert] = (&triggers.GitHubResolver{Client: client}).Resolve
	if len(s.f.pollRepos)+len(s.f.pollOrgs) > 0 {
		periodic["github-backstop"] = runner.Poller{Every: s.f.pollEvery, Poll: func(ctx context.Context, r *runner.Runner) error {
			return (&triggers.GitHubBackstop{Client: client, Repos: s.f.pollRepos, Orgs: s.f.pollOrgs, Sink: r}).Poll(ctx)
		}}
	}
	return resolvers, periodic, nil
}

// endpoints mounts every endpoint that is configured, says which are off,
// and returns the handler; wait waits for what Slack clicks left running.
func (s *server) endpoints(r *runner.Runner, sink *runner.Dispatcher, obs *observability) (mux *http.ServeMux, wait func()) {
	mux = http.NewServeMux()
	wait = func() {}
	if h := s.slack.mount(mux, r, s.log, s.f.rateLimit, s.proxies); h != nil {
		h.CountIn(obs.metrics)
		wait = h.Wait
	}
	if s.ghSecret != "" {
		h := triggers.NewGitHub([]byte(s.ghSecret), sink, s.log)
		h.RateLimit(s.f.rateLimit)
		h.TrustProxies(s.proxies)
		h.CountIn(obs.metrics)
		mux.Handle("/hooks/github", h)
	} else {
		s.log.Warn("GitHub endpoint off: its secret is not set", "source", s.ghSecretFrom)
	}
	if s.ebSecret != "" {
		h := triggers.NewEventBridgeLimited(s.f.ebHeader, []byte(s.ebSecret), sink, s.log, s.f.rateLimit)
		h.TrustProxies(s.proxies)
		h.CountIn(obs.metrics)
		mux.Handle("/hooks/aws/eventbridge", h)
	} else {
		s.log.Warn("EventBridge endpoint off: its secret is not set", "source", s.ebSecretFrom)
	}
	if len(s.f.snsTopics) > 0 {
		h := triggers.NewSNS(s.f.snsTopics, sink, s.log)
		h.RateLimit(s.f.rateLimit)
		h.TrustProxies(s.proxies)
		h.CountIn(obs.metrics)
		mux.Handle("/hooks/aws/sns", h)
	}
	mux.Handle("GET "+reportlink.Route+"{run}", s.reports(r))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, req *http.Request) {
		if _, err := r.Store().ListRuns(req.Context(), runner.ListFilter{Limit: 1}); err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	obs.mount(mux)
	return mux, wait
}

// announce prints where stanch serve listens, what it matches and where
// it keeps runs.
func (s *server) announce(addr net.Addr) {
	scheme := "http"
	if s.f.tlsCert != "" {
		scheme = "https"
	}
	names := make([]string, len(s.books))
	for i, pb := range s.books {
		names[i] = pb.Name
	}
	say(s.g.stdout, "stanch serve: %s://%s, playbooks %s, store %s\n", scheme, addr, strings.Join(names, ", "), s.f.dbURL)
}

// startPollers long-polls the SQS queues; stop ends the polls and waits
// for them.
func (s *server) startPollers(ctx context.Context, sink *runner.Dispatcher, obs *observability) (stop func(), err error) {
	pollCtx, cancel := context.WithCancel(ctx)
	var pollers sync.WaitGroup
	stop = func() { cancel(); pollers.Wait() }
	if len(s.f.sqsQueues) == 0 {
		return stop, nil
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("AWS configuration for SQS: %w", err)
	}
	client := sqs.NewFromConfig(awsCfg)
	for _, url := range s.f.sqsQueues {
		p := &triggers.SQSPoller{Client: client, QueueURL: url, Sink: sink, Log: s.log, Meter: obs.metrics}
		pollers.Go(func() {
			p.Run(pollCtx)
			st := p.Stats()
			s.log.Info("SQS poller stopped", "queue", url, "received", st.Received, "accepted", st.Accepted, "poison", st.Poison)
		})
	}
	return stop, nil
}

// run serves until ctx ends (SIGTERM, Ctrl-C), then stops taking alerts:
// readiness goes down, the pollers stop and in-flight requests drain. The
// runner is stopped after, by the caller, so running steps finish.
func (s *server) run(ctx context.Context, mux *http.ServeMux, ln net.Listener, obs *observability, stopPolling func()) error {
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() {
		if s.f.tlsCert != "" {
			errc <- srv.ServeTLS(ln, s.f.tlsCert, s.f.tlsKey)
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
	sayln(s.g.stdout, "stanch serve: shutting down; draining requests")
	stopPolling()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.f.shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
