// Package handoff passes the values of leaked tokens from one stanch
// process to the one that works the store, over a Unix socket beside it.
//
// stanch never stores a token's value (package leaked): a process that reads
// a scanner report holds the values in memory, and a run worked by another
// process (stanch serve holding a SQLite store) could not revoke them. The
// process that works the store listens on a socket (Listen), mode 0600, in
// a directory only its user may write; another process of the same user
// hands it the values (Hand) before it submits the alerts, so that the run
// never starts without them.
//
// Both ends check the other's user id with SO_PEERCRED: the server takes
// values only from its own user, and the client hands them only to a
// process of its own user (a socket planted by another user gets nothing).
// A message is a JSON list of values, at most MaxMessage bytes; each must
// be a token of a kind stanch revokes (alert.TokenKindOf). The answer names
// what was taken by fingerprint and what was refused by position: a value
// is never echoed, logged or written anywhere.
package handoff
