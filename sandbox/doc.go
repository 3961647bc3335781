// Package sandbox is a local stand-in for the AWS APIs stanch calls. It
// speaks the real wire protocols (IAM and STS over the Query protocol, with
// XML answers) so that the unmodified AWS SDKs and CLI work against it, keeps
// state seeded from a file (accounts, users, access keys, policies), and
// logs every call so that tests can count effects. Tests, benchmarks,
// `stanch demo` and people rehearsing playbooks use it.
//
// It also answers the Slack Web API methods stanch uses under /slack/api/
// (slack.OptionAPIURL(url + "/slack/api/")), for a workspace seeded with
// channels, users and user groups, keeping the messages posted; SlackClick
// sends a signed button click to an interactivity endpoint.
//
// Any service can be made slow, throttling or failing (Fault): from Go
// with SetFault, from the seed's faults: section, or at /_sandbox/faults
// while it runs, to rehearse playbooks against a degraded AWS.
package sandbox
