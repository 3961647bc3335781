package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/sandbox"
)

func newSandboxCmd(g *globals) *cobra.Command {
	var seedPath, listen string
	var detach, detachedChild bool
	cmd := &cobra.Command{
		Use:         "sandbox --seed FILE [--listen ADDR] [--detach]",
		Annotations: map[string]string{ownSettings: "yes"},
		Short:       "Run local AWS and GitHub endpoints with seeded accounts, keys, history and alerts",
		Long: `Run the sandbox: local HTTP endpoints that speak the real wire protocols of IAM, STS,
CloudTrail, Secrets Manager, SQS and EC2 (DescribeRegions), and GitHub's secret-scanning REST
API under /api/v3/, with accounts, users, access keys, CloudTrail history, secrets, queues and
alerts loaded from a seed file (see examples/sandbox/seed.yaml).
It prints the export lines that point the AWS SDKs and CLI (and so stanch) at it. Either run it
in a terminal of its own and paste those lines into another (Ctrl-C stops it), or detach it:

  eval "$(stanch sandbox --seed examples/sandbox/seed.yaml --detach)"
  stanch run --playbook examples/playbooks/aws-key-leaked.yaml --alert examples/alerts/manual-aws-key.json
  kill "$STANCH_SANDBOX_PID"                                    # stop it

--detach prints the same lines, and STANCH_SANDBOX_PID, once the sandbox is ready, then returns
while the sandbox goes on serving in the background (its output goes nowhere: read it at the
endpoints below). A port already taken is reported at once.

Calls are logged; GET /_sandbox/calls and /_sandbox/state on the same address show the call
log and the state (never secrets).

To rehearse a playbook against a slow, throttling or failing AWS (or GitHub, Slack, GitLab, npm or
Vault), give a service a fault: in the seed file,

  faults:
    iam: {latency: 200ms, error_rate: 0.1, throttle_rate: 0.2}

or while it runs, at /_sandbox/faults:

  curl http://127.0.0.1:4566/_sandbox/faults                  # every service's fault
  curl -X PUT http://127.0.0.1:4566/_sandbox/faults/cloudtrail -d '{"throttle_rate": 0.5}'
  curl -X DELETE http://127.0.0.1:4566/_sandbox/faults/cloudtrail   # or /_sandbox/faults: all

latency is added to every call; error_rate is the share of calls answered 503
ServiceUnavailable, throttle_rate the share answered 400 Throttling (429 for the token providers),
which the SDKs retry. Services: ` + strings.Join(sandbox.FaultServices, ", ") + `.
A PUT replaces the service's fault; a bad value is refused with the reason and changes nothing.
The call log shows each answer's status.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if seedPath == "" {
				return usageError{fmt.Errorf("sandbox needs --seed FILE (for example examples/sandbox/seed.yaml)")}
			}
			seed, err := sandbox.LoadSeed(seedPath)
			if err != nil {
				return err
			}
			switch {
			case detachedChild:
				return serveDetached(cmd.Context(), seed)
			case detach:
				return detachSandbox(g, seedPath, listen)
			}
			return sandbox.Serve(cmd.Context(), seed, listen, g.stdout, nil)
		},
	}
	cmd.Flags().StringVar(&seedPath, "seed", "", "seed file: accounts, users, keys (required)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:4566", "address to listen on (host:port; port 0 picks a free one)")
	cmd.Flags().BoolVar(&detach, "detach", false, "print the export lines (and STANCH_SANDBOX_PID) once ready, and keep serving in the background")
	cmd.Flags().BoolVar(&detachedChild, detachedChildFlag, false, "")
	_ = cmd.Flags().MarkHidden(detachedChildFlag)
	return cmd
}

// --detach starts the sandbox again as a child of its own session that
// inherits the listening socket and a pipe, prints what the child writes
// on the pipe once it serves, and returns. The child keeps none of the
// caller's output open: eval "$(stanch sandbox … --detach)" returns as
// soon as the parent does, which a sandbox put in the background with &
// inside $( ) never lets happen (it holds the substitution's pipe).

// detachedChildFlag marks the child; fd 3 is its listener, fd 4 the pipe.
const detachedChildFlag = "detached-child"

func detachSandbox(g *globals, seedPath, listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("sandbox listen %s: %w", listen, err)
	}
	defer ln.Close()
	lnFile, err := ln.(*net.TCPListener).File()
	if err != nil {
		return fmt.Errorf("sandbox listen %s: %w", listen, err)
	}
	defer lnFile.Close()
	lines, pipe, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer lines.Close()
	self, err := os.Executable()
	if err != nil {
		pipe.Close()
		return fmt.Errorf("sandbox: find this program to run it detached: %w", err)
	}
	seedAbs, err := filepath.Abs(seedPath)
	if err != nil {
		pipe.Close()
		return err
	}
	child := exec.Command(self, "sandbox", "--seed", seedAbs, "--"+detachedChildFlag)
	child.ExtraFiles = []*os.File{lnFile, pipe}
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no terminal's Ctrl-C or hangup reaches it
	err = child.Start()
	pipe.Close() // the child's copy is the only one left: EOF when it is ready or gone
	if err != nil {
		return fmt.Errorf("sandbox: start it detached: %w", err)
	}
	out, err := io.ReadAll(lines)
	if err != nil || !strings.Contains(string(out), "export AWS_ENDPOINT_URL=") {
		state := child.Wait()
		return fmt.Errorf("the detached sandbox stopped before it was ready (%v); run the same command without --detach to see why", state)
	}
	pid := child.Process.Pid
	_ = child.Process.Release()
	// The lines are the sandbox's own, one per line.
	sayLines(g.stdout, strings.TrimRight(string(out), "\n"))
	say(g.stdout, "export STANCH_SANDBOX_PID=%d\n# sandbox: serving in the background as pid %d; stop it with: kill %d\n", pid, pid, pid)
	return nil
}

// serveDetached is the detached child: it serves on the listener its
// parent opened and tells the parent it is ready by writing the export
// lines on the pipe and closing it.
func serveDetached(ctx context.Context, seed sandbox.Seed) error {
	lnFile, pipe := os.NewFile(3, "listener"), os.NewFile(4, "ready")
	ln, err := net.FileListener(lnFile)
	lnFile.Close()
	if err != nil {
		pipe.Close()
		return fmt.Errorf("sandbox: the listener handed down: %w", err)
	}
	return sandbox.ServeListener(ctx, seed, ln, pipe, func(string) { pipe.Close() })
}
