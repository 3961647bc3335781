package slack

// Redacted lets the external tests check what the client sends.
var Redacted = redacted
