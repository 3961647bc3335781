package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/stanchhq/stanch/notify"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/slack"
	"github.com/stanchhq/stanch/triggers"
)

// Slack is configured by the configuration file's slack: or, by default,
// from the environment: STANCH_SLACK_TOKEN (a bot token),
// STANCH_SLACK_SIGNING_SECRET (the app's signing secret, which turns on
// approval buttons) and STANCH_SLACK_API_URL (another Web API, such as the
// sandbox's; it overrides slack.api_url).
const (
	envSlackToken   = "STANCH_SLACK_TOKEN"
	envSlackSecret  = "STANCH_SLACK_SIGNING_SECRET"
	envSlackAPIURL  = "STANCH_SLACK_API_URL"
	slackHooksRoute = "/hooks/slack/interactions"
)

// slackClient is the Slack Web API client the settings describe; without
// a token it is not configured and posts nothing.
func (g *globals) slackClient() (*slack.Client, error) {
	c := g.cfg.Slack
	token, err := g.cfg.secret(c.TokenEnv, envSlackToken, c.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("read the Slack token: %w", err)
	}
	apiURL := c.APIURL
	if v := os.Getenv(envSlackAPIURL); v != "" {
		apiURL = v
	}
	return slack.NewClient(slack.Options{Token: token, APIURL: apiURL}), nil
}

// slackSigningSecret is the Slack app's signing secret, "" when none is
// configured.
func (g *globals) slackSigningSecret() (string, error) {
	c := g.cfg.Slack
	secret, err := g.cfg.secret(c.SigningSecretEnv, envSlackSecret, c.SigningSecretFile)
	if err != nil {
		return "", fmt.Errorf("read the Slack signing secret: %w", err)
	}
	return secret, nil
}

// approvalTokens derives the key of approval buttons from the signing
// secret, so that one secret configures both ends of a click. Without a
// signing secret approval messages carry no buttons.
func approvalTokens(signingSecret string) *slack.Tokens {
	if signingSecret == "" {
		return nil
	}
	m := hmac.New(sha256.New, []byte(signingSecret))
	m.Write([]byte("stanch approval buttons v1"))
	t, _ := slack.NewTokens(m.Sum(nil))
	return t
}

// slackSetup is Slack in stanch serve and stanch demo: the notifier the
// runner syncs messages through and the endpoint clicks come back to.
type slackSetup struct {
	client   *slack.Client
	tokens   *slack.Tokens
	secret   string
	notifier *notify.Slack
	log      *slog.Logger
	// alertsChannel is where alerts that start no run are posted; ""
	// leaves it to the playbooks' slack.notify steps.
	alertsChannel string
}

func newSlackSetup(client *slack.Client, signingSecret string, log *slog.Logger) *slackSetup {
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
	channel := unactedChannel(s.alertsChannel, c.Playbooks)
	if channel == "" {
		// Only stanch serve loads playbooks for alerts to come; the
		// commands that run one playbook have no alerts of this kind.
		if s.log != nil && len(c.Playbooks) > 0 {
			s.log.Warn("alerts that start no run are not posted to Slack: no playbook has a slack.notify step with a fixed channel", "variable", envSlackAlertsChannel)
		}
		return
	}
	c.UnactedPoster = notify.NewUnacted(s.client, channel, s.log)
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
	if s.tokens == nil {
		return nil
	}
	h := triggers.NewSlackInteractions(s.secret, s.tokens, runDecider{r}, s.client, log)
	h.RememberIn(r.Store())
	return h
}

// The store is where clicks are remembered across restarts.
var _ triggers.SeenRequests = (*runner.Store)(nil)

// mount serves the clicks on r's approval messages on mux.
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
	client, err := g.slackClient()
	if err != nil {
		g.logger().Warn("Slack messages of the run are not updated", "run", runID, "error", err)
		return
	}
	if !client.Configured() {
		return
	}
	secret, err := g.slackSigningSecret()
	if err != nil {
		g.logger().Warn("Slack messages of the run are not updated", "run", runID, "error", err)
		return
	}
	// The same buttons as stanch serve draws, so the two never undo each
	// other's messages; without a signing secret the messages say how to
	// decide with stanch approve.
	links, err := g.recordLinks()
	if err != nil {
		g.logger().Warn("Slack messages of the run are not updated", "run", runID, "error", err)
		return
	}
	n := notify.NewSlack(client, approvalTokens(secret), g.logger()).WithRecordLink(links)
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := r.SyncMessages(ctx, n, runID); err != nil {
		g.logger().Warn("Slack messages of the run are not up to date", "run", runID, "error", err)
	}
}
