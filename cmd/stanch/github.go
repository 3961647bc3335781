package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	ghactions "github.com/stanchhq/stanch/actions/github"
)

// GitHub (the github.* actions, and in stanch serve the webhook's resolver
// and the backstop) is configured by the configuration file's github: and
// STANCH_* variables, which override it; stanch serve's --github-* flags
// override both. Either a token, or a GitHub App installation: its id, the
// installation id and the App's private key file.
const (
	envGitHubToken          = "STANCH_GITHUB_TOKEN"
	envGitHubAPIURL         = "STANCH_GITHUB_API_URL"
	envGitHubAppID          = "STANCH_GITHUB_APP_ID"
	envGitHubInstallationID = "STANCH_GITHUB_APP_INSTALLATION_ID"
	envGitHubAppKeyFile     = "STANCH_GITHUB_APP_PRIVATE_KEY_FILE"
)

// githubSettings say where GitHub's configuration comes from; the token is
// read from tokenFile, else from the environment variable tokenEnv names.
type githubSettings struct {
	tokenEnv       string
	tokenFile      string
	apiURL         string
	appID          string
	installationID string
	keyFile        string
	// where names each App setting's origin in errors: a flag, a variable
	// or the file's key.
	where [3]string
	// recordLink makes the link to a run's incident record that
	// github.resolve_alert adds to its comment; nil adds none.
	recordLink linkMaker
}

// githubSettings reads GitHub's settings from the configuration file and
// the environment, the environment first.
func (g *globals) githubSettings() githubSettings {
	c := g.cfg.GitHub
	s := githubSettings{tokenEnv: envGitHubToken, apiURL: c.APIURL,
		where: [3]string{"$" + envGitHubAppID, "$" + envGitHubInstallationID, "$" + envGitHubAppKeyFile}}
	if c.TokenEnv != "" {
		s.tokenEnv = c.TokenEnv
	}
	if c.TokenFile != "" {
		s.tokenEnv, s.tokenFile = "", g.cfg.relative(c.TokenFile)
	}
	if app := c.App; app != nil {
		s.appID = strconv.FormatInt(app.ID, 10)
		s.installationID = strconv.FormatInt(app.InstallationID, 10)
		s.keyFile = g.cfg.relative(app.PrivateKeyFile)
		s.where = [3]string{g.cfg.origin("github.app.id"), g.cfg.origin("github.app.installation_id"), g.cfg.origin("github.app.private_key_file")}
	}
	for i, set := range []struct {
		env string
		to  *string
	}{{envGitHubAppID, &s.appID}, {envGitHubInstallationID, &s.installationID}, {envGitHubAppKeyFile, &s.keyFile}} {
		if v := os.Getenv(set.env); v != "" {
			*set.to, s.where[i] = v, "$"+set.env
		}
	}
	if v := os.Getenv(envGitHubAPIURL); v != "" {
		s.apiURL = v
	}
	return s
}

// options reads the token and the App's private key, and checks that they
// make one clear configuration.
func (s githubSettings) options() (ghactions.Options, error) {
	opts := ghactions.Options{APIURL: s.apiURL, RecordLink: s.recordLink}
	var err error
	if opts.Token, err = readSecret(s.tokenEnv, s.tokenFile); err != nil {
		return opts, fmt.Errorf("read the GitHub token: %w", err)
	}
	if opts.AppID, err = githubNumber(s.where[0], s.appID); err != nil {
		return opts, err
	}
	if opts.InstallationID, err = githubNumber(s.where[1], s.installationID); err != nil {
		return opts, err
	}
	if s.keyFile != "" {
		if opts.PrivateKeyPEM, err = os.ReadFile(s.keyFile); err != nil {
			return opts, fmt.Errorf("%s: %w", s.where[2], err)
		}
	}
	if opts.Token != "" && (opts.AppID != 0 || opts.InstallationID != 0 || s.keyFile != "") {
		return opts, fmt.Errorf("GitHub: give either a token (%s) or a GitHub App (%s, %s, %s), not both", s.tokenSource(), s.where[0], s.where[1], s.where[2])
	}
	if opts.Configured() {
		if _, err := ghactions.NewClient(opts); err != nil {
			if s.keyFile != "" {
				err = fmt.Errorf("%w (key file %s)", err, s.keyFile)
			}
			return opts, err
		}
	}
	return opts, nil
}

// tokenSource names where the token is read.
func (s githubSettings) tokenSource() string {
	if s.tokenFile != "" {
		return s.tokenFile
	}
	return "$" + s.tokenEnv
}

func githubNumber(where, v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: %q is not a GitHub id (a whole number above 0)", where, v)
	}
	return n, nil
}
