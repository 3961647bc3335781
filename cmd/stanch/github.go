package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	ghactions "github.com/stanchhq/stanch/actions/github"
)

// GitHub (the github.* actions, and in stanch serve the webhook's resolver
// and the backstop) is configured from the environment, like Slack; stanch
// serve's --github-* flags override it. Either a token, or a GitHub App
// installation: its id, the installation id and the App's private key file.
const (
	envGitHubToken          = "STANCH_GITHUB_TOKEN"
	envGitHubAPIURL         = "STANCH_GITHUB_API_URL"
	envGitHubAppID          = "STANCH_GITHUB_APP_ID"
	envGitHubInstallationID = "STANCH_GITHUB_APP_INSTALLATION_ID"
	envGitHubAppKeyFile     = "STANCH_GITHUB_APP_PRIVATE_KEY_FILE"
)

// githubSettings say where GitHub's configuration comes from; the token is
// read from the environment variable tokenEnv names.
type githubSettings struct {
	tokenEnv       string
	apiURL         string
	appID          string
	installationID string
	keyFile        string
	// where names the settings' origin in errors: flags or variables.
	where [3]string
}

func githubFromEnv() githubSettings {
	return githubSettings{
		tokenEnv:       envGitHubToken,
		apiURL:         os.Getenv(envGitHubAPIURL),
		appID:          os.Getenv(envGitHubAppID),
		installationID: os.Getenv(envGitHubInstallationID),
		keyFile:        os.Getenv(envGitHubAppKeyFile),
		where:          [3]string{envGitHubAppID, envGitHubInstallationID, envGitHubAppKeyFile},
	}
}

// options reads the token and the App's private key, and checks that they
// make one clear configuration.
func (s githubSettings) options() (ghactions.Options, error) {
	opts := ghactions.Options{APIURL: s.apiURL}
	if s.tokenEnv != "" {
		opts.Token = os.Getenv(s.tokenEnv)
	}
	var err error
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
		return opts, fmt.Errorf("GitHub: give either a token ($%s) or a GitHub App (%s, %s, %s), not both", s.tokenEnv, s.where[0], s.where[1], s.where[2])
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
