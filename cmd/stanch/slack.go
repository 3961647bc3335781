package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"time"

	slackact "github.com/stanchhq/stanch/actions/slack"
	"github.com/stanchhq/stanch/notify"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/triggers"
)

// Slack is configured from the environment, like the other secrets:
// STANCH_SLACK_TOKEN (a bot token), STANCH_SLACK_SIGNING_SECRET (the app's
// signing secret, which turns on approval buttons) and STANCH_SLACK_API_URL
// (another Web API, such as the sandbox's).
const (
	envSlackToken   = "STANCH_SLACK_TOKEN"
	envSlackSecret  = "STANCH_SLACK_SIGNING_SECRET"
	envSlackAPIURL  = "STANCH_SLACK_API_URL"
	slackHooksRoute = "/hooks/slack/interactions"
)

func slackFromEnv() *slackact.Client {
	return slackact.NewClient(slackact.Options{Token: os.Getenv(envSlackToken), APIURL: os.Getenv(envSlackAPIURL)})
}

// approvalTokens derives the key of approval buttons from the signing
// secret, so that one secret configures both ends of a click. Without a
// signing secret approval messages carry no buttons.
func approvalTokens(signingSecret string) *slackact.Tokens {
	if signingSecret == "" {
		return nil
	}
	m := hmac.New(sha256.New, []byte(signingSecret))
	m.Write([]byte("stanch approval buttons v1"))
	t, _ := slackact.NewTokens(m.Sum(nil))
	return t
}

// slackSetup is Slack in stanch serve and stanch demo: the notifier the
// runner syncs messages through and the endpoint clicks come back to.
type slackSetup struct {
	client   *slackact.Client
	tokens   *slackact.Tokens
	secret   string
	notifier *notify.Slack
	log      *slog.Logger
}

func newSlackSetup(client *slackact.Client, signingSecret string, log *slog.Logger) *slackSetup {
	s := &slackSetup{client: client, secret: signingSecret, tokens: approvalTokens(signingSecret), log: log}
	s.notifier = notify.NewSlack(client, s.tokens, log)
	return s
}

// configure is a runner option installing the notifier, and the poster of
// alerts that started no run when there is a channel for them. It runs
// after the playbooks are set.
func (s *slackSetup) configure(c *runner.Config) {
	c.Notifier = s.notifier
	if !s.client.Configured() {
		return
	}
	channel := unactedChannel(c.Playbooks)
	if channel == "" {
		// Only stanch serve loads playbooks for alerts to come; the
		// commands that run one playbook have no alerts of this kind.
		if s.log != nil && len(c.Playbooks) > 0 {
			s.log.Warn("alerts that start no run are not posted to Slack: no playbook has a slack.notify step with a fixed channel", "variable", envSlackAlertsChannel)
		}
		return
	}
	c.UnactedPoster = &unactedSlack{client: s.client, channel: channel}
}

// warn says what is missing for the playbooks that use Slack.
func (s *slackSetup) warn(log *slog.Logger, books []*playbooks.Playbook) {
	for _, pb := range books {
		if !s.notifier.Wants(pb) {
			continue
		}
		if !s.client.Configured() {
			log.Warn("playbook uses Slack but Slack is not configured: nothing will be posted", "playbook", pb.Name, "variable", envSlackToken)
		} else if s.tokens == nil {
			log.Warn("Slack approval messages will have no buttons: the signing secret is not set", "playbook", pb.Name, "variable", envSlackSecret)
		}
	}
}

// handler returns the interactions endpoint, or nil without a signing
// secret. Signatures of handled clicks are kept in the store, so that a
// captured click is refused after a restart too.
func (s *slackSetup) handler(r *runner.Runner, log *slog.Logger) *triggers.SlackInteractions {
	s.notifier.Attach(r)
	if s.tokens == nil {
		return nil
	}
	h := triggers.NewSlackInteractions(s.secret, s.tokens, notify.Decider(r), s.client, log)
	h.RememberIn(r.Store())
	return h
}

// The store is where clicks are remembered across restarts.
var _ triggers.SeenRequests = (*runner.Store)(nil)

// mount attaches the notifier to r and serves clicks on mux.
func (s *slackSetup) mount(mux *http.ServeMux, r *runner.Runner, log *slog.Logger, rateLimit float64, proxies []netip.Prefix) *triggers.SlackInteractions {
	h := s.handler(r, log)
	if h == nil {
		log.Warn("Slack interactions endpoint off: the signing secret is not set", "variable", envSlackSecret)
		return nil
	}
	h.RateLimit(rateLimit)
	h.TrustProxies(proxies)
	mux.Handle(slackHooksRoute, h)
	return h
}

// settleSlack brings a run's Slack messages up to date before a command
// that worked the run (stanch run, stanch approve) exits: the incident
// message shows where the run stands and waiting approvals are posted.
// stanch serve does this continuously, and receives the clicks.
func settleSlack(ctx context.Context, g *globals, r *runner.Runner, runID string) {
	client := slackFromEnv()
	if !client.Configured() {
		return
	}
	// The same buttons as stanch serve draws, so the two never undo each
	// other's messages; without a signing secret the messages say how to
	// decide with stanch approve.
	n := notify.NewSlack(client, approvalTokens(os.Getenv(envSlackSecret)), g.logger())
	n.Attach(r)
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := n.Sync(ctx, runID); err != nil {
		g.logger().Warn("Slack messages of the run are not up to date", "run", runID, "error", err)
	}
}
