package redactlog

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
)

// No secret reaches a log line, wherever a call site put it: the message,
// a string, an error, a group, attributes added with With.
func TestHandlerRedactsEveryRecord(t *testing.T) {
	t.Parallel()
	secret := planted.Random
	var buf bytes.Buffer
	log := slog.New(New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log.With("url", "https://ci.example.com/?AWS_SECRET_ACCESS_KEY=x%2F"+secret[2:]).
		WithGroup("req").
		Debug("leaked "+secret, "error", errors.New("bad "+secret), "detail", slog.GroupValue(slog.String("k", secret)),
			"list", []string{secret}, "n", 3, "key", "AKIAIOSFODNN7EXAMPLE")
	out := buf.String()
	planted.RequireNone(t, "the log", out)
	require.Contains(t, out, "[REDACTED]")
	require.Contains(t, out, "req.n=3")
	require.Contains(t, out, "req.key=AKIAIOSFODNN7EXAMPLE", "key ids identify and stay")
}
