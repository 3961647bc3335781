package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/triggers"
)

func newIngestCmd(g *globals) *cobra.Command {
	var format, dbURL, source string
	var globs []string
	cmd := &cobra.Command{
		Use:   "ingest --playbooks GLOB [--format FORMAT] [--source DIR] FILE|-",
		Short: "Turn a scanner's report into alerts and run the matching playbooks",
		Long: `Read findings and hand each to the playbooks it matches, as the webhooks do.

FORMAT is trufflehog (JSON lines from 'trufflehog … --json'), gitleaks (a JSON report from
'gitleaks … --report-format json'), git-secrets (what 'git secrets --scan' or '--scan-history'
prints, 2>&1), eventbridge (a GuardDuty or AWS Health event, or a batch), alert (a stanch
Alert), or auto (the default: recognised from the content). Each finding keeps its commit, file
and line. Every alert is stored before anything runs.

Tokens (GitHub, Slack, GitLab, npm, Vault) are recognised by their prefix and identified by a
fingerprint of their value (docs/alerts.md); the value is kept in this process's memory only, for
the action that revokes it, and never stored. git-secrets prints the matched line, not a rule: a
line that holds no AWS key id and no token of a kind stanch knows is still an alert, reported
only, since nothing on it can be revoked automatically.

A finding that cannot be acted on does not stop the others: ingest acts on every finding it can,
then names each one it could not (file:line and rule or detector, with the reason) on stderr and
exits 1. truffleHog's own log lines, mixed in with 2>&1, are counted and ignored. A gitleaks
report made with --redact hides the key ids: each is read again from the scanned file at the
finding's line (or within 3 lines of it), found as the report names it under --source DIR (the
directory gitleaks scanned), else relative to the current directory.

When no other stanch process works the store, the runs are worked here and followed (exit codes
as for 'stanch run'); when one does (for example 'stanch serve'), they are queued for it, ingest
names it (its pid) and exits 0 at once. The token values go to that process first, over its
socket beside the store (stanch.db.values; docs/tokens.md): ingest says how many it handed, and
when it could not hand them (nothing answers there), it names the tokens that process cannot
revoke, still stores their alerts, and exits 1.

A credential.id (or a finding's key id) must be one AWS access key id; whitespace around it is
trimmed, anything else around it or a second id is refused, naming the field (docs/alerts.md).`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(globs) == 0 {
				return usageError{errors.New("ingest needs --playbooks GLOB (the playbooks findings are matched against)")}
			}
			return ingest(cmd.Context(), g, format, args[0], source, globs, dbURL)
		},
	}
	cmd.Flags().StringVar(&format, "format", "auto", "auto, trufflehog, gitleaks, git-secrets, eventbridge or alert")
	cmd.Flags().StringVar(&source, "source", "", "the `DIR` the scanner scanned, where the files a redacted report names are read")
	cmd.Flags().StringArrayVar(&globs, "playbooks", nil, "playbook files or globs (repeatable; required)")
	cmd.Flags().StringVar(&dbURL, "database", runner.DefaultDatabaseURL(), "store: file:PATH (embedded SQLite) or postgres://USER@HOST/DB")
	return cmd
}

func parseFindings(format string, data []byte, files triggers.SourceFiles) (triggers.Report, error) {
	now := time.Now()
	switch format {
	case "auto":
		return triggers.ParseDocument(data, now, files)
	case "trufflehog":
		return triggers.ParseTruffleHog(data, now)
	case "gitleaks":
		return triggers.ParseGitleaks(data, now, files)
	case "git-secrets":
		return triggers.ParseGitSecrets(data, now)
	case "eventbridge":
		return triggers.ParseEventBridge(data, now)
	case "alert":
		a, err := alert.Parse(data, now)
		return triggers.Report{Alerts: []alert.Alert{a}}, err
	}
	return triggers.Report{}, usageError{fmt.Errorf("--format %q: want auto, trufflehog, gitleaks, git-secrets, eventbridge or alert", format)}
}

func ingest(ctx context.Context, g *globals, format, path, source string, globs []string, dbURL string) error {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(g.stdin, 64<<20))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return fmt.Errorf("read findings: %w", err)
	}
	files := triggers.SourceFiles{Dirs: []string{"."}}
	if source != "" {
		files.Dirs = []string{source, "."}
	}
	rep, err := parseFindings(format, data, files)
	if err != nil {
		if isUsage(err) {
			return err
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	// Every finding that can be acted on is; the exit code then says that
	// some could not.
	var unacted *exitError
	if n := reportSkipped(g.stderr, path, rep); n > 0 {
		unacted = &exitError{code: exitFailed, msg: fmt.Sprintf("%s: %d finding(s) could not be acted on (named above); the other %d were handed to the playbooks", path, n, len(rep.Alerts))}
	}
	return withUnacted(submitFindings(ctx, g, rep.Alerts, globs, dbURL), unacted)
}

// withUnacted is the exit of ingest: err when submitting failed or a run
// failed, else unacted when some findings could not be acted on, else the
// runs' own outcome.
func withUnacted(err error, unacted *exitError) error {
	if unacted == nil {
		return err
	}
	if err == nil {
		return unacted
	}
	if ee, ok := exitOf(err); ok {
		return worse(ee, unacted)
	}
	return err
}

// submitFindings hands the alerts to the playbooks, then follows the runs
// when this process works them.
func submitFindings(ctx context.Context, g *globals, alerts []alert.Alert, globs []string, dbURL string) error {
	reg, err := g.registry()
	if err != nil {
		return err
	}
	books, err := loadPlaybooks(g, reg, globs)
	if err != nil {
		return err
	}
	prog := newProgress(g.stdout)
	r, holder, stop, err := joinRunner(ctx, g, dbURL, reg, prog.observe)
	if err != nil {
		return err
	}
	defer stop()
	// The process that works the store gets the token values first: its
	// runs must not start without them.
	var unhanded *exitError
	if holder != "" {
		unhanded = handTokens(ctx, g, dbURL, holder, alerts)
	}
	var started []runner.Run
	for _, a := range alerts {
		sub, err := r.Submit(ctx, a, books)
		if err != nil {
			return err
		}
		say(g.stdout, "%s: %s %s", a.DedupKey, a.Credential.Kind, a.Credential.ID)
		if a.Location.Path != "" {
			say(g.stdout, " at %s:%d", a.Location.Path, a.Location.Line)
		}
		if why := reportedOnly(a.Credential); why != "" {
			say(g.stdout, " (reported only: %s)", why)
		}
		say(g.stdout, ": %d run(s) started, %d already existed, %d joined an open run, %d playbook(s) did not apply\n", len(sub.Started), len(sub.Existing), len(sub.Joined), len(sub.NotMatched))
		started = append(started, sub.Started...)
	}
	if holder != "" {
		say(g.stdout, "%d alert(s) stored; another stanch process works this store and runs them: %s\n", len(alerts), holder)
		return nilIfNone(unhanded)
	}
	var worst *exitError
	for _, run := range started {
		err := prog.followToEnd(ctx, g, r, run.ID)
		ee, ok := exitOf(err)
		if err != nil && !ok {
			return err
		}
		worst = worse(worst, ee)
	}
	if worst == nil {
		return nil
	}
	return worst
}

// reportedOnly says why stanch cannot revoke a credential, or "" when it
// can (or may: AWS keys, and tokens of a revocable kind).
func reportedOnly(c alert.Credential) string {
	switch {
	case c.Provider == "aws":
		return ""
	case c.Provider == "":
		return "no credential stanch knows is in it; rotate it by hand"
	}
	k, ok := alert.TokenKindNamed(c.Provider, c.TokenType)
	switch {
	case !ok:
		return fmt.Sprintf("stanch revokes no %s credential of this kind; rotate it by hand", c.Provider)
	case !k.Revocable:
		return k.Note
	}
	return ""
}
