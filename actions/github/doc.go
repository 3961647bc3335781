// Package github holds stanch's GitHub actions and the client they and the
// GitHub triggers share: the official go-github client, authenticated with
// a token or as a GitHub App installation whose short-lived tokens it mints
// and renews itself.
//
// The actions: github.resolve_alert and github.open_issue close the loop on
// a secret-scanning alert; github.revoke_token revokes a leaked GitHub token
// through the unauthenticated credential revocation API, batching the
// tokens of every run of the process into shared requests (token_batch.go)
// within GitHub's hourly budget; github.token_impact reads what a token did
// from the organisation audit log, by its hashed_token. A token's value is
// never stored: it is taken from this process's memory (package leaked) or
// read again from the secret-scanning alert (token_value.go).
package github
