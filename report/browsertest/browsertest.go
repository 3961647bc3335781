// Package browsertest opens a report in a real browser for tests: Debian's
// headless chromium, driven through the DevTools protocol (chromedp). It
// records what a person would not see but must not happen (console
// errors, exceptions, requests), lets the test ask the DOM what was drawn,
// and writes a full-page screenshot for people to look at.
package browsertest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium returns the path of the chromium binary. Without one the test
// fails in CI (CI is set), where .ci/run installs it, and is skipped
// elsewhere, saying how to install it.
func Chromium(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	msg := "chromium is not on PATH: install it (apt-get install -y chromium, as .ci/run does) to run the report's browser test"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Page is a report opened in the browser.
type Page struct {
	ctx context.Context
	// URL is the file:// URL the page was opened at.
	URL string

	mu       sync.Mutex
	console  []string
	requests []string
}

// Open opens the HTML file in headless chromium, at a desktop width, and
// waits until the element ready (a CSS selector) is visible. The browser
// stops when the test ends.
func Open(t testing.TB, file, ready string) *Page {
	t.Helper()
	chromium := Chromium(t)
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // CI runs as root, where chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	p := &Page{ctx: ctx, URL: (&url.URL{Scheme: "file", Path: abs}).String()}
	// Listen starts the browser; fn sees each event before the command
	// that follows it returns, so everything the page did while loading
	// is recorded once Navigate is back.
	if err := chromedp.Listen(ctx, p.record); err != nil {
		t.Fatalf("start chromium (%s): %v", chromium, err)
	}
	step, cancelStep := context.WithTimeout(ctx, time.Minute)
	defer cancelStep()
	if err := chromedp.Do(step,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(p.URL),
		chromedp.WaitVisible(chromedp.CSS(ready)),
	); err != nil {
		t.Fatalf("open %s in chromium and wait for %s: %v", p.URL, ready, err)
	}
	return p
}

func (p *Page) record(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		// Any console output at all: the page has no script, so even a log
		// line would be something injected.
		p.console = append(p.console, fmt.Sprintf("console.%s %s", ev.Type, argsText(ev.Args)))
	case *runtime.EventExceptionThrown:
		p.console = append(p.console, "exception: "+(&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
			p.console = append(p.console, fmt.Sprintf("log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		p.requests = append(p.requests, ev.Request.URL)
	}
}

func argsText(args []*runtime.RemoteObject) string {
	var s string
	for _, a := range args {
		if len(a.Value) > 0 {
			s += " " + string(a.Value)
		} else {
			s += " " + a.Description
		}
	}
	return s
}

// Console is what the page wrote to the console, threw, or the browser
// logged as a warning or an error.
func (p *Page) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

// Requests are the URLs of every request the page made, itself included.
func (p *Page) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

// Eval evaluates a JavaScript expression in the page (the test's, not the
// page's: the report has none) and returns its value.
func Eval[T any](t testing.TB, p *Page, expression string) T {
	t.Helper()
	step, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(step, chromedp.Evaluate[T](expression))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expression, err)
	}
	return v
}

// Screenshot writes a full-page PNG of the page to name in the artifacts
// directory and returns its path.
func (p *Page) Screenshot(t testing.TB, root, name string) string {
	t.Helper()
	step, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(step, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := ArtifactsDir(t, root)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ArtifactsDir is where tests leave files for people to look at: the
// directory STANCH_ARTIFACTS names, else artifacts/ at the repository's
// root (root, relative to the test's package).
func ArtifactsDir(t testing.TB, root string) string {
	t.Helper()
	dir := os.Getenv("STANCH_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(root, "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory %s: %v", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
