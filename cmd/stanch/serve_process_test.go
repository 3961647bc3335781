package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// serveProcess is a running `stanch serve` whose whole output the test
// keeps, to search it for secrets afterwards.
type serveProcess struct {
	base           string // http://ADDR
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{} // closed when the process has exited
	err            error         // its exit, once done is closed
}

// startServeProcess starts stanch serve on a free port with exactly env (no
// variable of the test's own environment leaks in) and waits for it to say
// where it listens.
func startServeProcess(t *testing.T, bin string, env []string, args ...string) *serveProcess {
	t.Helper()
	p := &serveProcess{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(time.Minute)
	for {
		// The first line: "stanch serve: http://ADDR, playbooks …".
		if line, _, ok := strings.Cut(p.stdout.String(), "\n"); ok {
			_, rest, found := strings.Cut(line, "http://")
			require.True(t, found, "serve's first line names no address: %q", line)
			addr, _, _ := strings.Cut(rest, ",")
			p.base = "http://" + addr
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("stanch serve exited (%v) before listening\nstdout:\n%s\nstderr:\n%s", p.err, p.stdout.String(), p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "stanch serve did not listen within a minute; log:\n%s", p.stderr.String())
	}
}

// stop ends serve as an operator would (SIGTERM) and waits for it, so that
// its output is complete.
func (p *serveProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("stanch serve did not stop within 30s of SIGTERM; log:\n%s", p.stderr.String())
	}
}
