// Package sandbox is a local stand-in for every API stanch calls: AWS (IAM,
// STS, CloudTrail, Secrets Manager, EC2's regions, SQS), Slack's Web API
// and GitHub's REST API for secret scanning and issues. It speaks the real
// wire protocols (IAM and STS over the Query protocol with XML answers,
// the JSON protocols of the others), so that the unmodified AWS SDKs and
// CLI, slack-go and go-github work against it; keeps state seeded from a
// file (accounts, users, access keys, policies, secrets, CloudTrail
// history, a Slack workspace, GitHub alerts); and logs every call so that
// tests count effects. Tests, benchmarks, `stanch demo` and people
// rehearsing playbooks (`stanch sandbox`) use it.
//
// Slack is served under /slack/api/ (slack.OptionAPIURL(url +
// "/slack/api/")), keeping the messages posted; SlackClick sends a signed
// button click to an interactivity endpoint. GitHub is served under
// /api/v3/, as GitHub Enterprise Server is.
//
// Leaked tokens of other providers (the seed's tokens:) are answered by
// each provider's identify and revoke endpoints: GitHub's GET /user,
// POST /credentials/revoke and organisation audit log under /api/v3/,
// Slack's auth.test and auth.revoke under /slack/api/, Vault's token auth
// under /vault/v1/, GitLab's personal_access_tokens/self under
// /gitlab/api/v4/ and the npm registry's token endpoints under /npm/. The
// call log names a token by its fingerprint, never by its value.
//
// Any service can be made slow, throttling or failing (Fault): from Go
// with SetFault, from the seed's faults: section, or at /_sandbox/faults
// while it runs, to rehearse playbooks against a degraded AWS.
package sandbox
