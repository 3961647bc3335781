package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServeBehindATrustedProxy: with --trusted-proxy, each client behind
// the load balancer has budgets of its own, and forged requests never
// spend a genuine sender's.
func TestServeBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	base, _, serveLog := e.startServeWith(t, "testdata/contain.yaml", "eb-secret", "--rate-limit", "1", "--trusted-proxy", "127.0.0.0/8")
	event, err := os.ReadFile(filepath.Join(e.root, "triggers/testdata/guardduty-accesskey.json"))
	require.NoError(t, err)
	send := func(client, secret string) int {
		req, err := http.NewRequest(http.MethodPost, base+"/hooks/aws/eventbridge", bytes.NewReader(event))
		require.NoError(t, err)
		req.Header.Set("X-Stanch-Token", secret)
		req.Header.Set("X-Forwarded-For", client)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	codes := map[int]int{}
	for range 20 {
		codes[send("198.51.100.7", "guess")]++
	}
	require.Positive(t, codes[http.StatusTooManyRequests], "%v", codes)
	require.Equal(t, http.StatusUnauthorized, send("198.51.100.8", "guess"), "another client behind the proxy has its own budget")
	require.Equal(t, http.StatusOK, send("198.51.100.7", "eb-secret"), "the genuine sender is not refused for the forgeries: %s", serveLog.String())
	require.Contains(t, serveLog.String(), "remote=198.51.100.7")
}

func TestServeRefusesABadTrustedProxy(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.stanch(nil, "serve", "--playbooks", "testdata/contain.yaml", "--database", e.db, "--trusted-proxy", "lb.internal")
	require.Equal(t, exitUsage, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stderr, `--trusted-proxy: "lb.internal" is neither a CIDR`)
}
