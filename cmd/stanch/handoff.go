package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/handoff"
	"github.com/stanchhq/stanch/leaked"
)

// handTimeout is how long a command waits for the process that works the
// store to answer on its socket (it may have just taken the store).
const handTimeout = 5 * time.Second

// valuesSocket returns the token hand-off socket of the SQLite store dbURL
// names: PATH.values beside its database file. A PostgreSQL store has
// none: every process that submits to it works runs itself.
func valuesSocket(dbURL string) string {
	path := strings.TrimPrefix(dbURL, "file:")
	path, _, _ = strings.Cut(path, "?")
	return handoff.SocketBeside(path)
}

// listenValues takes token values from the other stanch processes of this
// user on the socket beside the SQLite database at dbPath, for the runs
// this process works; stop closes the socket. Only the process that holds
// the store's lock calls it. A socket that cannot be made is logged (the
// commands that would hand values to it then say that they could not),
// and does not stop the process.
func listenValues(g *globals, dbPath string) (stop func()) {
	log := g.logger()
	s, err := handoff.Listen(handoff.SocketBeside(dbPath), leaked.Process, log)
	if err != nil {
		log.Warn("token hand-off off: stanch ingest and stanch run --detach cannot hand this process token values", "err", err)
		return func() {}
	}
	return func() { _ = s.Close() }
}

// handTokens hands the values this process holds of the alerts' tokens to
// the process that works the store, before the alerts are submitted, so
// that its runs never start without them. It says on stderr what it
// handed; the error names the tokens it could not hand, which that process
// cannot revoke (the alerts are submitted all the same, to be on record).
func handTokens(ctx context.Context, g *globals, dbURL, holder string, alerts []alert.Alert) *exitError {
	var values, fps []string
	for _, a := range alerts {
		c := a.Credential
		if c.Kind != alert.CredentialToken || reportedOnly(c) != "" || slices.Contains(fps, c.ID) {
			continue
		}
		if v, ok := leaked.Process.Lookup(c.ID); ok {
			values, fps = append(values, v), append(fps, c.ID)
		}
	}
	if len(values) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, handTimeout)
	defer cancel()
	path := valuesSocket(dbURL)
	ans, err := handoff.Hand(ctx, path, values)
	if len(ans.Taken) > 0 {
		say(g.stderr, "handed %d token value(s) to the stanch process %d that works this store\n", len(ans.Taken), ans.PID)
	}
	var missing []string
	for _, fp := range fps {
		if !slices.Contains(ans.Taken, fp) {
			missing = append(missing, fp)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	why := "it refused them"
	switch {
	case errors.Is(err, handoff.ErrNoListener):
		why = "nothing answers on " + path + " (it does not take token values: an older stanch, or its socket could not be made; its log says why)"
	case err != nil:
		why = err.Error()
	}
	say(g.stderr, "could not hand %d token value(s) to %s, which works this store: %s.\n", len(missing), holder, why)
	say(g.stderr, "That process cannot revoke these tokens: stanch stores no token value, and only this process held them:\n")
	for _, fp := range missing {
		say(g.stderr, "  %s\n", fp)
	}
	say(g.stderr, "Their alerts are stored all the same. To revoke them: stop that process and run this command again (it then works the runs itself), or revoke each token by hand at its provider (docs/tokens.md) and record it with 'stanch runs close RUN --note \"revoked by hand\"'.\n")
	return &exitError{code: exitFailed, msg: fmt.Sprintf("%d token(s) cannot be revoked by %s: their values could not be handed to it (named above)", len(missing), holder)}
}
