// Package github holds stanch's GitHub actions (github.resolve_alert,
// github.open_issue) and the client they and the GitHub triggers share: the
// official go-github client, authenticated with a token or as a GitHub App
// installation whose short-lived tokens it mints and renews itself.
package github
