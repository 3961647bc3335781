package triggers

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEventBridgeGuards(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	h := NewEventBridge("X-Stanch-Token", []byte("s3cret"), nil, slog.New(slog.NewTextHandler(&logs, nil)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	res, err := http.Get(srv.URL)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)

	// One source address gets its burst, then 429s. A slow rate, so that
	// however long a loaded machine takes to send them, the bucket cannot
	// refill as fast as requests come.
	h.RateLimit(1)
	codes := map[int]int{}
	for range 260 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader([]byte(`{"body":"not logged"}`)))
		req.Header.Set("X-Stanch-Token", "wrong")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		codes[res.StatusCode]++
	}
	require.Positive(t, codes[http.StatusTooManyRequests], "codes: %v", codes)
	require.Positive(t, codes[http.StatusUnauthorized])
	require.Contains(t, logs.String(), `reason="rate limit exceeded"`)
	require.NotContains(t, logs.String(), "not logged", "bodies are never logged")
}
