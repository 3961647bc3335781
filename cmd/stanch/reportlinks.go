package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stanchhq/stanch/record"
	"github.com/stanchhq/stanch/report"
	"github.com/stanchhq/stanch/reportlink"
	"github.com/stanchhq/stanch/runner"
)

// Links to a run's report (docs/configuration.md, "Report links"): stanch
// serve answers them at /reports/{run}; the incident message in Slack and
// the GitHub resolution comment carry them. The key and the bearer tokens
// are secrets: the file names their variable or file, never them.
const (
	envReportBaseURL      = "STANCH_REPORT_BASE_URL"
	envReportLinkLifetime = "STANCH_REPORT_LINK_LIFETIME"
	envReportSigningKey   = "STANCH_REPORT_SIGNING_KEY"
	envReportBearerTokens = "STANCH_REPORT_BEARER_TOKENS"
)

// linkMaker makes the link to a run's report; nil when links are not
// configured.
type linkMaker = func(runID string, created time.Time) string

// reportSigner returns the signer of report links: nil when no signing key
// is configured (and no base URL asks for one). A signer without a base URL
// verifies links (stanch serve) but makes none.
func (g *globals) reportSigner() (*reportlink.Signer, error) {
	base, baseFrom := g.setting("report.base_url")
	lifetime, err := g.reportLifetime()
	if err != nil {
		return nil, err
	}
	rc := g.cfg.Report
	key, err := g.cfg.secret(rc.SigningKeyEnv, envReportSigningKey, rc.SigningKeyFile)
	keyFrom := g.reportSecretSource(rc.SigningKeyEnv, envReportSigningKey, rc.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read the report signing key (%s): %w", keyFrom, err)
	}
	if key == "" {
		if base != "" {
			return nil, fmt.Errorf("report.base_url is set (%s) but the report signing key is not (%s): links to reports need one; %s, or unset report.base_url to make no links",
				baseFrom, keyFrom, reportlink.KeyHint)
		}
		return nil, nil
	}
	s, err := reportlink.NewSigner([]byte(key), lifetime, base)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", keyFrom, baseFrom, err)
	}
	return s, nil
}

// reportLifetime is report.link_lifetime: above 0, at most a year.
func (g *globals) reportLifetime() (time.Duration, error) {
	v, from := g.setting("report.link_lifetime")
	if v == "" {
		return reportlink.DefaultLifetime, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: report.link_lifetime %q is not a duration such as 720h", from, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: report.link_lifetime %s must be above 0 (such as 720h, 30 days)", from, d)
	}
	if err := reportlink.CheckLifetime(d); err != nil {
		return 0, fmt.Errorf("%s: %w", from, err)
	}
	return d, nil
}

// reportTokens returns the bearer tokens that may read any report; nil
// when none is configured.
func (g *globals) reportTokens() (*reportlink.Tokens, error) {
	rc := g.cfg.Report
	from := g.reportSecretSource(rc.BearerTokensEnv, envReportBearerTokens, rc.BearerTokensFile)
	list, err := g.cfg.secret(rc.BearerTokensEnv, envReportBearerTokens, rc.BearerTokensFile)
	if err != nil {
		return nil, fmt.Errorf("read the report bearer tokens (%s): %w", from, err)
	}
	t, err := reportlink.NewTokens(reportlink.SplitTokens(list))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return t, nil
}

// reportSecretSource names where a report secret is read, for messages.
func (g *globals) reportSecretSource(env, fallback, file string) string {
	if file != "" {
		return g.cfg.relative(file)
	}
	if env == "" {
		env = fallback
	}
	return "$" + env
}

// recordLinks returns what makes the links the incident message and the
// resolution comment carry: nil when report.base_url or the key is not
// set.
func (g *globals) recordLinks() (linkMaker, error) {
	s, err := g.reportSigner()
	if err != nil || !s.Makes() {
		return nil, err
	}
	return s.Link, nil
}

// reports is the endpoint of reports, GET /reports/{run}: the run's report
// as report.HTML draws it, to a link that verifies or a bearer token. It is
// mounted whether or not links are configured, so that its refusals are
// the same either way.
func (s *server) reports(r *runner.Runner) *reportlink.Handler {
	reg := s.reg
	h := &reportlink.Handler{Signer: s.reportSigner, Tokens: s.reportTokens, Log: s.log,
		Render: func(ctx context.Context, w io.Writer, runID string) error {
			rec, err := record.LoadID(ctx, r.Store(), runID)
			if errors.Is(err, runner.ErrNotFound) {
				return fmt.Errorf("%w: %w", reportlink.ErrNoRun, err)
			} else if err != nil {
				return err
			}
			return report.HTML(w, rec, report.Options{Containment: func(name string) bool { return containment(reg, name) }})
		}}
	h.RateLimit(s.f.rateLimit)
	h.TrustProxies(s.proxies)
	switch {
	case s.reportSigner == nil && s.reportTokens == nil:
		s.log.Info("reports are not served: no report signing key or bearer token is set", "variables", envReportSigningKey+", "+envReportBearerTokens)
	case !s.reportSigner.Makes():
		s.log.Info("report links are not made: report.base_url is not set; links signed elsewhere and bearer tokens are accepted", "variable", envReportBaseURL)
	}
	return h
}
