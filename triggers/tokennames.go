package triggers

import "github.com/stanchhq/stanch/alert"

// What each source calls the tokens stanch knows. A value's shape decides
// its provider and type (alert.TokenKinds); these names only place values
// whose shape stanch does not know (an old or a new format), so that such
// an alert still reaches the provider's playbooks, to be reported. The
// tables in docs/alerts.md list the same names.

// gitleaksRules are gitleaks 8.30's rule ids for these tokens
// (cmd/generate/config/rules in gitleaks; checked against the real
// gitleaks, testdata/gitleaks-tokens-*.json).
var gitleaksRules = map[string]namedKind{
	"github-pat":                         {alert.ProviderGitHub, "personal_access_token"},
	"github-fine-grained-pat":            {alert.ProviderGitHub, "fine_grained_personal_access_token"},
	"github-oauth":                       {alert.ProviderGitHub, "oauth_access_token"},
	"github-app-token":                   {alert.ProviderGitHub, ""}, // ghu_ or ghs_: the prefix tells
	"github-refresh-token":               {alert.ProviderGitHub, "refresh_token"},
	"slack-bot-token":                    {alert.ProviderSlack, "bot_token"},
	"slack-legacy-bot-token":             {alert.ProviderSlack, "bot_token"},
	"slack-user-token":                   {alert.ProviderSlack, ""}, // xoxp- or xoxe-
	"slack-app-token":                    {alert.ProviderSlack, "app_level_token"},
	"slack-config-access-token":          {alert.ProviderSlack, "rotating_access_token"},
	"slack-config-refresh-token":         {alert.ProviderSlack, "refresh_token"},
	"slack-legacy-workspace-token":       {alert.ProviderSlack, "workspace_token"},
	"slack-legacy-token":                 {alert.ProviderSlack, "legacy_token"},
	"slack-webhook-url":                  {alert.ProviderSlack, "incoming_webhook_url"},
	"gitlab-pat":                         {alert.ProviderGitLab, "access_token"},
	"gitlab-pat-routable":                {alert.ProviderGitLab, "access_token"},
	"gitlab-deploy-token":                {alert.ProviderGitLab, "deploy_token"},
	"gitlab-runner-authentication-token": {alert.ProviderGitLab, "runner_token"},
	"gitlab-feed-token":                  {alert.ProviderGitLab, "feed_token"},
	"gitlab-ptt":                         {alert.ProviderGitLab, "pipeline_trigger_token"},
	"npm-access-token":                   {alert.ProviderNPM, "access_token"},
	"vault-service-token":                {alert.ProviderVault, "service_token"},
	"vault-batch-token":                  {alert.ProviderVault, "batch_token"},
}

// truffleHogDetectors are truffleHog's detector names (DetectorName, the
// DetectorType enum of its proto/detectors.proto) for these tokens, looked
// up lower-cased.
var truffleHogDetectors = map[string]namedKind{
	"github":             {alert.ProviderGitHub, ""},
	"githubold":          {alert.ProviderGitHub, ""},
	"githubapp":          {alert.ProviderGitHub, ""},
	"slack":              {alert.ProviderSlack, ""},
	"slackwebhook":       {alert.ProviderSlack, "incoming_webhook_url"},
	"gitlab":             {alert.ProviderGitLab, ""},
	"gitlabv2":           {alert.ProviderGitLab, ""},
	"npmtoken":           {alert.ProviderNPM, "access_token"},
	"npmtokenv2":         {alert.ProviderNPM, "access_token"},
	"hashicorpvaultauth": {alert.ProviderVault, ""},
	"vault":              {alert.ProviderVault, ""},
}

// githubSecretTypes are GitHub secret scanning's secret_type values for
// these tokens (docs.github.com, supported secret scanning patterns).
var githubSecretTypes = map[string]namedKind{
	"github_personal_access_token":         {alert.ProviderGitHub, ""}, // ghp_ or github_pat_
	"github_oauth_access_token":            {alert.ProviderGitHub, "oauth_access_token"},
	"github_app_installation_access_token": {alert.ProviderGitHub, "installation_access_token"},
	"github_refresh_token":                 {alert.ProviderGitHub, "refresh_token"},
	"github_ssh_private_key":               {alert.ProviderGitHub, "ssh_private_key"},
	"github_test_token":                    {alert.ProviderGitHub, "test_token"},
	"slack_api_token":                      {alert.ProviderSlack, ""}, // xoxb-, xoxp-, …
	"slack_incoming_webhook_url":           {alert.ProviderSlack, "incoming_webhook_url"},
	"slack_workflow_webhook_url":           {alert.ProviderSlack, "workflow_webhook_url"},
	"slack_workflow_trigger_url":           {alert.ProviderSlack, "workflow_webhook_url"},
	"gitlab_access_token":                  {alert.ProviderGitLab, "access_token"},
	"gitlab_deploy_token":                  {alert.ProviderGitLab, "deploy_token"},
	"gitlab_runner_auth_token":             {alert.ProviderGitLab, "runner_token"},
	"gitlab_feed_token_v2":                 {alert.ProviderGitLab, "feed_token"},
	"gitlab_ci_build_token":                {alert.ProviderGitLab, "ci_build_token"},
	"npm_access_token":                     {alert.ProviderNPM, "access_token"},
	"hashicorp_vault_service_token":        {alert.ProviderVault, "service_token"},
	"hashicorp_vault_batch_token":          {alert.ProviderVault, "batch_token"},
	"hashicorp_vault_root_service_token":   {alert.ProviderVault, "service_token"},
}
