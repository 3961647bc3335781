package reportlink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type served struct {
	status  int
	body    string
	headers http.Header
}

func get(t *testing.T, h http.Handler, target, bearer string) served {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return served{rec.Code, rec.Body.String(), rec.Header()}
}

// The handler answers a link that verifies and a matching token with the
// report; every refusal is one 404, byte for byte, before the store is
// asked; the log never holds a signature or a token.
func TestHandlerRefusesAlike(t *testing.T) {
	t.Parallel()
	s := signer(t, testKey, time.Hour)
	token := strings.Repeat("t", 40)
	tokens, err := NewTokens([]string{token})
	require.NoError(t, err)
	var renders atomic.Int32
	var logs bytes.Buffer
	h := &Handler{Signer: s, Tokens: tokens, Log: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return created.Add(time.Minute) },
		Render: func(_ context.Context, w io.Writer, runID string) error {
			renders.Add(1)
			if runID != "run_01ABC" {
				return fmt.Errorf("run %s: %w", runID, ErrNoRun)
			}
			_, err := io.WriteString(w, "<!doctype html><title>run_01ABC</title>")
			return err
		}}
	mux := http.NewServeMux()
	mux.Handle("GET /reports/{run}", h)

	// As a browser asks for it: without the link's "." segment.
	link := strings.Replace(strings.TrimPrefix(s.Link("run_01ABC", created), "https://stanch.example.com"), "/./", "/", 1)
	ok := get(t, mux, link, "")
	require.Equal(t, http.StatusOK, ok.status)
	require.Contains(t, ok.body, "<title>run_01ABC</title>")
	require.Equal(t, "text/html; charset=utf-8", ok.headers.Get("Content-Type"))
	for k, v := range securityHeaders {
		require.Equal(t, v, ok.headers.Get(k), k)
	}
	require.Equal(t, http.StatusOK, get(t, mux, "/reports/run_01ABC", token).status, "a token alone")
	require.Equal(t, http.StatusOK, get(t, mux, link, "wrong-token").status, "a link that verifies is enough")

	unknown := get(t, mux, strings.Replace(strings.TrimPrefix(s.Link("run_01NOPE", created), "https://stanch.example.com"), "/./", "/", 1), "")
	require.Equal(t, http.StatusNotFound, unknown.status)
	require.Equal(t, notFound, unknown.body)
	require.Equal(t, int32(4), renders.Load())

	_, exp, sig := parts(t, s.Link("run_01ABC", created))
	expired := strings.Replace(strings.TrimPrefix(s.SignedLink("run_01ABC", created), "https://stanch.example.com"), "/./", "/", 1)
	off := &Handler{Render: h.Render}
	for name, c := range map[string]struct {
		h              http.Handler
		target, bearer string
	}{
		"changed run id":       {mux, strings.Replace(link, "run_01ABC", "run_01ABD", 1), ""},
		"changed expiry":       {mux, strings.Replace(link, "expires="+exp, fmt.Sprintf("expires=%d", created.Add(2*time.Hour).Unix()), 1), ""},
		"changed signature":    {mux, strings.Replace(link, sig, strings.Repeat("ab", 32), 1), ""},
		"expired":              {mux, expired, ""},
		"no credentials":       {mux, "/reports/run_01ABC", ""},
		"wrong token":          {mux, "/reports/run_01ABC", "wrong-token"},
		"token of another":     {mux, "/reports/run_01ABC", token + "x"},
		"signature only":       {mux, "/reports/run_01ABC?mac=" + sig, ""},
		"signature as sig":     {mux, strings.Replace(link, "mac=", "sig=", 1), ""},
		"unknown path":         {mux, "/reports/run_01ABC/x" + link[len("/reports/run_01ABC"):], ""},
		"reports not set up":   {off, link, token},
		"unknown run by token": {mux, "/reports/run_01NOPE", token},
	} {
		got := get(t, c.h, c.target, c.bearer)
		require.Equal(t, unknown.status, got.status, name)
		require.Equal(t, unknown.body, got.body, name)
	}
	require.Equal(t, int32(5), renders.Load(), "the store is asked only for what authenticated")
	require.NotContains(t, logs.String(), sig)
	require.NotContains(t, logs.String(), token)
	require.Contains(t, logs.String(), "reason=\"report link refused: expired\"")
}

// Refusals past the source's budget are answered 429 and do not spend the
// budget of requests that authenticate.
func TestHandlerRateLimits(t *testing.T) {
	t.Parallel()
	s := signer(t, testKey, time.Hour)
	h := &Handler{Signer: s, Now: func() time.Time { return created }, Render: func(_ context.Context, w io.Writer, _ string) error {
		_, err := io.WriteString(w, "ok")
		return err
	}}
	h.RateLimit(1)
	link := strings.Replace(strings.TrimPrefix(s.Link("run_01ABC", created), "https://stanch.example.com"), "/./", "/", 1)
	codes := map[int]int{}
	for range 10 {
		codes[get(t, h, "/reports/run_01ABC", "").status]++
	}
	require.Equal(t, map[int]int{http.StatusNotFound: 4, http.StatusTooManyRequests: 6}, codes)
	require.Equal(t, http.StatusOK, get(t, h, link, "").status, "guesses do not cost a reader")
}

// A client that keeps the link's "." segment is sent to the clean path,
// query and all.
func TestLinkWithDotSegmentRedirects(t *testing.T) {
	t.Parallel()
	s := signer(t, testKey, time.Hour)
	mux := http.NewServeMux()
	mux.Handle("GET /reports/{run}", &Handler{Signer: s})
	link := strings.TrimPrefix(s.Link("run_01ABC", created), "https://stanch.example.com")
	got := get(t, mux, link, "")
	require.Equal(t, http.StatusTemporaryRedirect, got.status)
	require.Equal(t, strings.Replace(link, "/./", "/", 1), got.headers.Get("Location"))
}
