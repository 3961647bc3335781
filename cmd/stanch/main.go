// Command stanch responds to leaked credentials by running playbooks.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/internal/redactlog"
)

// Exit codes scripts can rely on.
const (
	exitOK      = 0
	exitFailed  = 1 // a run failed, a playbook is invalid, a command failed
	exitUsage   = 2 // bad flags or arguments
	exitWaiting = 3 // a run waits: for approval, or until a step's delay is over
)

// exitError carries an exit code; its message, if any, was already printed
// or is printed by main.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			sayLines(stderr, "stanch: "+ee.msg)
		}
		return ee.code
	}
	sayLines(stderr, "stanch: "+err.Error())
	// cobra's own refusal of a command it does not know is a usage error too.
	if isUsage(err) || strings.HasPrefix(err.Error(), "unknown command ") {
		sayln(stderr, "Run 'stanch --help' for usage.")
		return exitUsage
	}
	return exitFailed
}

type usageError struct{ error }

// worse returns the exit error scripts must see of two: a failure (1)
// outranks waiting for approval (3), which outranks success (nil).
func worse(a, b *exitError) *exitError {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case b.code < a.code:
		return b
	}
	return a
}

// exitOf returns the exit error of err, if that is what it is.
func exitOf(err error) (*exitError, bool) {
	var ee *exitError
	ok := errors.As(err, &ee)
	return ee, ok
}

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// globals are the flags every command shares.
type globals struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	logLevel       string
	logFormat      logFormat
	configPath     string
	// cfg is the configuration file, loaded before the command runs;
	// origins says where each flag's value came from, and hint what a
	// command printed for people to run next must repeat (--config,
	// --database given on the command line).
	cfg     *fileConfig
	origins map[string]string
	hint    string
}

func (g *globals) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(g.stderr, opts)
	if g.logFormat == logJSON {
		h = slog.NewJSONHandler(g.stderr, opts)
	}
	// Every record is redacted before it is written, whatever logged it
	// (stanch, River, the SDKs).
	return slog.New(redactlog.New(h))
}

// logFormat is --log-format: text (logfmt-like key=value) or json (one
// object a line, for log pipelines).
type logFormat string

const (
	logText logFormat = "text"
	logJSON logFormat = "json"
)

func (f *logFormat) String() string { return string(*f) }
func (f *logFormat) Type() string   { return "text|json" }

func (f *logFormat) Set(s string) error {
	if s != string(logText) && s != string(logJSON) {
		return fmt.Errorf("%q is not a log format: want text or json", s)
	}
	*f = logFormat(s)
	return nil
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "stanch",
		Short: "Contain leaked credentials by running declarative playbooks",
		Long: `stanch responds to leaked credentials. When an AWS access key leaks, it runs a playbook:
contain the key within seconds, find what it was used for, rotate it, tell people, and ask
them before anything destructive.

Exit codes: 0 success, 1 failure (a failed run, an invalid playbook), 2 usage error,
3 a run is waiting (for approval, or until a step's delay is over) and continues later.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Annotations[ownSettings] != "" {
			g.cfg = &fileConfig{}
			return nil
		}
		if err := g.applySettings(cmd); err != nil {
			return err
		}
		g.hint = g.given(cmd)
		return nil
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn or error (logs go to stderr)")
	g.logFormat = logText
	root.PersistentFlags().Var(&g.logFormat, "log-format", "log format: text or json (one object a line)")
	root.PersistentFlags().StringVar(&g.configPath, "config", os.Getenv("STANCH_CONFIG"), "configuration file (response roles for other AWS accounts, …); default $STANCH_CONFIG; see docs/configuration.md")
	root.AddCommand(
		newValidateCmd(g),
		newPlanCmd(g),
		newRunCmd(g),
		newServeCmd(g),
		newIngestCmd(g),
		newApproveCmd(g),
		newRunsCmd(g),
		newReportCmd(g),
		newAlertsCmd(g),
		newActionsCmd(g),
		newPermissionsCmd(g),
		newSandboxCmd(g),
		newDemoCmd(g),
		newVersionCmd(g),
		newConfigCmd(g),
	)
	requireSubcommand(root)
	root.Version = readBuildInfo().String()
	root.SetVersionTemplate("{{.Version}}\n")
	return root
}

// requireSubcommand makes every command below root that only groups
// others (stanch runs, stanch alerts) refuse an unknown subcommand with a
// usage error, as root does, instead of printing its help and exiting 0.
func requireSubcommand(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			c.Args = cobra.ArbitraryArgs
			c.RunE = func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 {
					return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
				}
				return cmd.Help()
			}
		}
		requireSubcommand(c)
	}
}

// exactArgs is cobra.ExactArgs with errors marked as usage errors.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func rangeArgs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(min, max)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MinimumNArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
