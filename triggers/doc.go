// Package triggers turns what arrives from outside (a file or stdin given to
// the CLI; webhooks and pollers as they are added) into Alerts. It imports
// the Alert type and nothing of the runner or the actions.
package triggers
