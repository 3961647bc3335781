package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// The docs test runs every stanch command that README.md and docs/*.md show
// in their shell code blocks, as a reader would type it (in bash, from the
// repository's root), against the built binary, a sandbox seeded with
// examples/sandbox/seed.yaml and a store of its own per block: a command,
// flag or file the docs name and stanch no longer has fails CI.
//
// The commands of one block run in order, in one environment: a command
// shown after `stanch run` works on the run it started (RUN and STEP are
// filled in from what it printed), and the export lines of
// eval "$(stanch sandbox … --detach)" are in the environment of the
// commands after it.

// docRule says how to run one documented command that does not simply run
// here and exit 0. Rules are keyed by the command as shown (comment left
// out, spaces collapsed); a rule that matches no command fails the test,
// so the table follows the docs.
type docRule struct {
	// exit are the exit codes the command may end with (default 0).
	exit []int
	// help, when set, says why the command cannot run here: it runs with
	// --help added, which still refuses an unknown command or flag.
	help string
	// replace substitutes text in the command: a placeholder file, a path
	// outside the test's directory ($DOCS_TMP is the block's directory).
	replace map[string]string
}

var docRules = map[string]docRule{
	// The example playbook asks before rotating the key: the run waits.
	"stanch run --playbook examples/playbooks/aws-key-leaked.yaml --alert examples/alerts/manual-aws-key.json": {exit: []int{exitWaiting}},
	// Approving the rotation: the run goes on to the next approval.
	"stanch approve RUN STEP --by security-oncall": {exit: []int{exitWaiting}},
	// The cancelled run runs again from the step that waited, which asks
	// again.
	"stanch runs retry RUN": {exit: []int{exitWaiting}},
	"stanch ingest --playbooks 'examples/playbooks/*.yaml' gitleaks-report.json": {
		replace: map[string]string{"gitleaks-report.json": "triggers/testdata/gitleaks.json"},
		// A new run waits for its rotation's approval; the second sweep
		// sleeps until its delay is over.
		exit: []int{exitWaiting},
	},
	"stanch completion bash > /etc/bash_completion.d/stanch": {replace: map[string]string{"/etc/bash_completion.d/stanch": "$DOCS_TMP/stanch.bash"}},
	// A fixed port may be taken (another test, the reader's own sandbox).
	`eval "$(stanch sandbox --seed examples/sandbox/seed.yaml --detach)"`: {replace: map[string]string{"--detach": "--detach --listen 127.0.0.1:0"}},

	"stanch serve --playbooks 'examples/playbooks/*.yaml' --listen :8080":                {help: "serves until stopped"},
	"stanch serve --playbooks '/etc/stanch/playbooks/*.yaml' --sqs-queue-url \"$queue\"": {help: "serves until stopped, from an SQS queue made by CloudFormation"},
	"stanch serve --playbooks 'playbooks/*.yaml' --github-poll-org acme":                 {help: "serves until stopped, polling github.com"},
	"stanch serve --playbooks 'playbooks/*.yaml' --github-app-id 123456 --github-app-installation-id 7890123 --github-app-private-key /run/secrets/stanch-app.pem": {
		help: "serves until stopped, as a GitHub App with a production key",
	},
	// The systemd install copies examples/stanch.yaml there.
	"stanch config check /etc/stanch/stanch.yaml":                      {replace: map[string]string{"/etc/stanch/stanch.yaml": "examples/stanch.yaml"}},
	"sudo -u stanch stanch runs list --config /etc/stanch/stanch.yaml": {help: "reads the production store of a systemd install"},
	"docker exec stanch stanch runs list":                              {help: "runs in the container (no container daemon here)"},
}

// docLangs are the code blocks whose lines are shell commands.
var docLangs = map[string]bool{"sh": true, "bash": true, "console": true, "shell": true}

var (
	// A stanch command, perhaps run as another user or in a container
	// (docWrapper), which the test runs here.
	docCommandLine = regexp.MustCompile(`^(?:sudo -u \S+ |docker exec \S+ )?stanch\s`)
	docWrapper     = regexp.MustCompile(`^(?:sudo -u \S+ |docker exec \S+ )`)
	// A stanch command whose output the shell evaluates.
	docEvalLine = regexp.MustCompile(`^eval "\$\((stanch\s[^)]*)\)"`)
	// A placeholder: a word in capitals that the docs use for a value.
	docPlaceholder = regexp.MustCompile(`\b(RUN|STEP)\b`)
	docApproveHint = regexp.MustCompile(`stanch approve (run_[0-9a-z]{26}) (\S+) --by`)
)

type docCommand struct {
	where string // file:line
	text  string // as shown, continuation lines joined
}

type docBlock struct {
	where string
	cmds  []docCommand
}

func TestDocumentedCommandsRun(t *testing.T) {
	t.Parallel()
	bin := stanchBinary(t)
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	var blocks []docBlock
	for _, f := range files {
		blocks = append(blocks, docBlocks(t, root, f)...)
	}
	require.NotEmpty(t, blocks)
	journal := journalEventsDocumented(t, filepath.Join(root, "docs", "runs.md"))

	var mu sync.Mutex
	matched := map[string]bool{}
	t.Run("blocks", func(t *testing.T) {
		for _, b := range blocks {
			t.Run(b.where, func(t *testing.T) {
				t.Parallel()
				runDocBlock(t, bin, root, b, journal, func(key string) {
					mu.Lock()
					defer mu.Unlock()
					matched[key] = true
				})
			})
		}
	})
	for key := range docRules {
		require.True(t, matched[key], "docRules has %q, which no doc shows any more: remove or update it", key)
	}
}

// docBlocks returns the shell code blocks of a Markdown file that show
// stanch commands.
func docBlocks(t *testing.T, root, path string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	rel, err := filepath.Rel(root, path)
	require.NoError(t, err)
	var blocks []docBlock
	var cur *docBlock
	var pending string // a command continued on the next line
	pendingAt := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if fence, ok := strings.CutPrefix(line, "```"); ok {
			if cur != nil {
				if len(cur.cmds) > 0 {
					blocks = append(blocks, *cur)
				}
				cur = nil
			} else if docLangs[strings.TrimSpace(fence)] {
				cur = &docBlock{where: rel + ":" + strconv.Itoa(n)}
			} else {
				cur = &docBlock{} // a block that holds no commands
			}
			continue
		}
		if cur == nil || cur.where == "" {
			continue
		}
		if pending != "" {
			line = pending + " " + line
		} else {
			pendingAt = n
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending = strings.TrimSpace(cont)
			continue
		}
		pending = ""
		line = strings.TrimPrefix(line, "$ ")
		if docCommandLine.MatchString(line) || docEvalLine.MatchString(line) {
			cur.cmds = append(cur.cmds, docCommand{where: rel + ":" + strconv.Itoa(pendingAt), text: line})
		}
	}
	require.NoError(t, sc.Err())
	return blocks
}

// runDocBlock runs a block's commands in order, telling used the key of
// each rule it applies.
func runDocBlock(t *testing.T, bin, root string, b docBlock, journal map[string]bool, used func(key string)) {
	dir := t.TempDir()
	seed, err := sandbox.LoadSeed(filepath.Join(root, "examples", "sandbox", "seed.yaml"))
	require.NoError(t, err)
	sb := testkit.Sandbox(t, seed)
	responder := seed.Accounts[0].Users[0].Keys[0]
	env := map[string]string{
		"PATH":                        filepath.Dir(bin) + ":" + os.Getenv("PATH"),
		"HOME":                        dir, // the default store is in it
		"DOCS_TMP":                    dir,
		"AWS_ENDPOINT_URL":            sb.URL,
		"AWS_REGION":                  "us-east-1",
		"AWS_ACCESS_KEY_ID":           responder.ID,
		"AWS_SECRET_ACCESS_KEY":       responder.Secret,
		"AWS_CONFIG_FILE":             "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
	values := map[string]string{}
	for _, c := range b.cmds {
		key := docKey(c.text)
		rule, ok := docRules[key]
		if ok {
			used(key)
		}
		script := docWrapper.ReplaceAllString(key, "")
		for old, repl := range rule.replace {
			require.Contains(t, script, old, "%s: the rule's replace", c.where)
			script = strings.ReplaceAll(script, old, repl)
		}
		script = docPlaceholder.ReplaceAllStringFunc(script, func(p string) string {
			v := values[p]
			require.NotEmpty(t, v, "%s: %s shows %s, but no command before it in its block printed one", c.where, c.text, p)
			return v
		})
		if rule.help != "" {
			script += " --help"
		}
		inner := docEvalLine.FindStringSubmatch(script)
		if inner != nil {
			script = inner[1]
		}
		res := runDocCommand(t, root, env, script)
		report := c.where + ": " + c.text + "\nran: " + script + "\nstdout:\n" + res.stdout + "\nstderr:\n" + res.stderr
		require.NotContains(t, res.stderr, "unknown flag", report)
		require.NotContains(t, res.stderr, "unknown command", report)
		require.NotEqual(t, exitUsage, res.code, report)
		want := rule.exit
		if len(want) == 0 {
			want = []int{exitOK}
		}
		require.Contains(t, want, res.code, "exit code\n%s", report)
		if rule.help != "" {
			// A group shows its own help for a subcommand it lacks.
			require.Contains(t, res.stdout, "Usage:\n  "+commandPath(script)+" ", "the help of the command shown\n%s", report)
		}
		t.Logf("%s: %s: exit %d", c.where, script, res.code)
		if inner != nil {
			exportInto(t, env, res.stdout)
		}
		if strings.HasPrefix(script, "stanch run ") {
			values["RUN"] = runIDPattern.FindString(res.stdout)
		}
		if m := docApproveHint.FindStringSubmatch(res.stdout); m != nil {
			values["RUN"], values["STEP"] = m[1], m[2]
		}
	}
	requireJournalDocumented(t, root, env, journal)
}

// commandPath is the words of a command line before its first flag.
func commandPath(script string) string {
	var words []string
	for _, w := range strings.Fields(script) {
		if strings.HasPrefix(w, "-") {
			break
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}

// docKey is a command as shown, without its comment, spaces collapsed.
func docKey(text string) string {
	return strings.Join(strings.Fields(stripShellComment(text)), " ")
}

// stripShellComment cuts a # comment that is outside quotes and starts a
// word.
func stripShellComment(s string) string {
	var quote rune
	prev := ' '
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (prev == ' ' || prev == '\t'):
			return strings.TrimSpace(s[:i])
		}
		prev = r
	}
	return strings.TrimSpace(s)
}

func runDocCommand(t *testing.T, root string, env map[string]string, script string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail; "+script)
	cmd.Dir = root
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// A process the command leaves behind (a detached sandbox) must not
	// keep the test waiting for output it never closes.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "%s did not finish within a minute\nstdout:\n%s\nstderr:\n%s", script, stdout.String(), stderr.String())
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		res.code = exitErr.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return res
}

// exportInto sets the variables of the export lines in out, as eval
// would, and stops the sandbox they name when the test ends.
func exportInto(t *testing.T, env map[string]string, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		kv, ok := strings.CutPrefix(line, "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		require.True(t, ok, line)
		env[k] = v
	}
	pid, err := strconv.Atoi(env["STANCH_SANDBOX_PID"])
	if err == nil {
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGTERM) })
	}
}

// journalEventsDocumented returns the journal events the journal section
// of docs/runs.md names.
func journalEventsDocumented(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(data), "## The journal")
	require.True(t, ok, "docs/runs.md has no journal section")
	section, _, _ = strings.Cut(section, "\n## ")
	out := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(section, -1) {
		out[m[1]] = true
	}
	return out
}

// requireJournalDocumented checks that every event in the journals of the
// block's runs is in the docs' list.
func requireJournalDocumented(t *testing.T, root string, env map[string]string, documented map[string]bool) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(env["HOME"], ".local", "state", "stanch", "stanch.db")); err != nil {
		return // the block ran nothing
	}
	list := runDocCommand(t, root, env, "stanch runs list --json --limit 0")
	require.Equal(t, exitOK, list.code, list.stderr)
	var runs []struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(list.stdout), &runs), list.stdout)
	for _, r := range runs {
		show := runDocCommand(t, root, env, "stanch runs show "+r.ID+" --json")
		require.Equal(t, exitOK, show.code, show.stderr)
		var shown struct {
			Journal []struct {
				Event string `json:"event"`
			} `json:"journal"`
		}
		require.NoError(t, json.Unmarshal([]byte(show.stdout), &shown), show.stdout)
		for _, e := range shown.Journal {
			if !documented[e.Event] {
				t.Errorf("journal event %s (run %s) is not in docs/runs.md's journal section", e.Event, r.ID)
			}
		}
	}
}
