package apicall

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// requestIDHeaders are where providers put the id of a request, in the
// order they are looked for.
var requestIDHeaders = []string{
	"X-GitHub-Request-Id", // GitHub
	"X-Slack-Req-Id",      // Slack
	"X-Request-Id",        // GitLab, and many others
	"X-Ms-Request-Id",     // Azure
	"X-Npm-Request-Id",
	"X-Amzn-Requestid",
}

// Transport returns base (http.DefaultTransport when nil) recording each
// request made with a context that carries a Recorder, as service, and
// sending none that the context's gate (WithGate) refuses.
func Transport(service string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if t, ok := base.(*transport); ok && t.service == service {
		return t // already recording
	}
	return &transport{service: service, base: base}
}

// Client returns a client like c (http.DefaultClient when nil) whose
// requests are recorded as service.
func Client(service string, c *http.Client) *http.Client {
	if c == nil {
		c = http.DefaultClient
	}
	out := *c
	out.Transport = Transport(service, c.Transport)
	return &out
}

type transport struct {
	service string
	base    http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := open(ctx); err != nil {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes the body, sent or not
		}
		return nil, err
	}
	if _, ok := ctx.Value(recorderKey{}).(Recorder); !ok {
		return t.base.RoundTrip(req)
	}
	start := time.Now()
	res, err := t.base.RoundTrip(req)
	c := Call{Service: t.service, Operation: Operation(req), At: start.UTC(), Duration: time.Since(start), Outcome: OK}
	switch {
	case err != nil:
		c.Outcome, c.Error = Failed, transportError(ctx, err)
	case res.StatusCode >= 400:
		c.Outcome, c.Error = Failed, fmt.Sprintf("HTTP %d", res.StatusCode)
	}
	if res != nil {
		for _, h := range requestIDHeaders {
			if v := res.Header.Get(h); v != "" {
				c.RequestID = clean(v)
				break
			}
		}
	}
	record(ctx, c)
	return res, err
}

// transportError says why no answer came without the error's text, which
// names the URL (and so anything in its query).
func transportError(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "cancelled"
	}
	if e, ok := err.(interface{ Timeout() bool }); ok && e.Timeout() {
		return "timeout"
	}
	return "no answer"
}

// opaque are path segments that are not names: long runs of letters and
// digits (token ids, hashes, key fingerprints) are shown as {id}.
var opaque = regexp.MustCompile(`^[A-Za-z0-9_\-.=~%]{24,}$`)

// Operation names an HTTP request without its parameters: the method and
// the path, with the query dropped and opaque segments replaced, so that a
// token in a path (npm's DELETE /-/npm/v1/tokens/token/KEY) never reaches
// the record. Slack's Web API methods are their path's last segment.
func Operation(req *http.Request) string {
	path := req.URL.EscapedPath()
	if i := strings.Index(path, "/api/"); i >= 0 && strings.Contains(path[i+5:], ".") && !strings.Contains(path[i+5:], "/") {
		return path[i+5:] // Slack: /api/auth.revoke
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if opaque.MatchString(s) {
			segs[i] = "{id}"
		}
	}
	return req.Method + " " + strings.Join(segs, "/")
}

// clean keeps a request id printable and short.
func clean(v string) string {
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
	if len(v) > 128 {
		v = v[:128]
	}
	return v
}

// Doer sends a request, as *http.Client and Azure's policy.Transporter do.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Wrap returns d (http.DefaultClient when nil) recording each request as
// service.
func Wrap(service string, d Doer) Doer {
	if d == nil {
		d = http.DefaultClient
	}
	if c, ok := d.(*http.Client); ok {
		return Client(service, c)
	}
	return doerFunc(func(req *http.Request) (*http.Response, error) {
		return (&transport{service: service, base: roundTripFunc(d.Do)}).RoundTrip(req)
	})
}

type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(req *http.Request) (*http.Response, error) { return f(req) }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
