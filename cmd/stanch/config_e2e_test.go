package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The example configuration is what people copy: it must pass config
// check where none of its secrets exists, as in CI.
func TestExampleConfigChecksWithoutSecrets(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.stanch(nil, "config", "check", e.example("stanch.yaml"))
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Equal(t, e.example("stanch.yaml")+": ok\n", res.stdout)
	// What is missing here is said, as notes.
	require.Contains(t, res.stderr, "note: Slack token: $STANCH_SLACK_TOKEN is not set here")

	// validate, too, reads no secret: the file names a GitHub App key
	// file that does not exist here.
	res = e.stanch(nil, "validate", "--config", e.example("stanch.yaml"), e.example("playbooks/aws-key-leaked.yaml"))
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
}

// One run of config check shows every mistake, each at its line and
// column, and no secret a mistake holds.
func TestConfigCheckReportsEveryMistakeAtOnce(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	data, err := os.ReadFile(e.example("stanch.yaml"))
	require.NoError(t, err)
	text := string(data)
	mistakes := []struct{ from, to, want string }{
		{"  listen: 127.0.0.1:8080", "  listn: 127.0.0.1:8080", "unknown key `listn` in `serve`"},
		{"  rate_limit: 50 ", "  rate_limit: fast ", "`serve.rate_limit` must be a number, not a string"},
		{"database: file:/var/lib/stanch/stanch.db", "database: postgres://stanch:hunter2-planted@db.internal/stanch", "the database URL holds a password"},
	}
	for _, m := range mistakes {
		require.Contains(t, text, m.from, "the example changed: plant the mistake elsewhere")
		text = strings.Replace(text, m.from, m.to, 1)
	}
	// The playbooks glob is relative to the file: the playbooks go beside it.
	dir := t.TempDir()
	require.NoError(t, os.Symlink(e.example("playbooks"), filepath.Join(dir, "playbooks")))
	path := filepath.Join(dir, "stanch.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))

	res := e.stanch(nil, "config", "check", path)
	require.Equal(t, 1, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	lines := strings.Split(text, "\n")
	for _, m := range mistakes {
		line := 0
		for i, l := range lines {
			if strings.HasPrefix(l, m.to) {
				line = i + 1
			}
		}
		col := len(m.to) - len(strings.TrimLeft(m.to, " ")) + 1
		if m.want == "the database URL holds a password" || strings.Contains(m.want, "must be") {
			// Problems with a value point at the value.
			col = strings.Index(m.to, ": ") + 3
		}
		require.Contains(t, res.stdout, fmt.Sprintf("%s:%d:%d: %s", path, line, col, m.want), "stdout:\n%s", res.stdout)
	}
	require.Contains(t, res.stdout, "did you mean `listen`?")
	require.Contains(t, res.stderr, "3 problem(s)")
	require.NotContains(t, res.stdout+res.stderr, "hunter2", "a secret in the file must not be repeated")

	// The same file refuses to start any command, with the same report.
	res = e.stanch(nil, "runs", "list", "--config", path)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "unknown key `listn` in `serve`")
	require.Contains(t, res.stderr, "stanch config check --config "+path)
}

// A flag wins over its STANCH_* variable, which wins over the file, which
// wins over the default: docs/configuration.md says so, config show and
// the commands do it.
func TestSettingsPrecedence(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stanch.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("database: file:from-file.db\nserve:\n  listen: 127.0.0.1:7001\n  rate_limit: 7\n"), 0o600))
	show := func(env []string, args ...string) map[string][2]string {
		res := e.stanch(env, append([]string{"config", "show", "--config", cfg}, args...)...)
		require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
		rows := map[string][2]string{}
		for _, l := range strings.Split(res.stdout, "\n") {
			f := strings.Fields(l)
			if len(f) == 4 {
				rows[f[0]] = [2]string{f[2], f[3]}
			}
		}
		return rows
	}
	rows := show(nil)
	require.Equal(t, [2]string{"file:" + filepath.Join(dir, "from-file.db"), cfg + ":1:11"}, rows["database"], "a file: path is relative to the configuration file")
	require.Equal(t, [2]string{"127.0.0.1:7001", cfg + ":3:11"}, rows["serve.listen"])
	require.Equal(t, [2]string{"30s", "default"}, rows["serve.shutdown_grace"])

	rows = show([]string{"STANCH_LISTEN=127.0.0.1:7002", "STANCH_DATABASE=file:/tmp/from-env.db"})
	require.Equal(t, [2]string{"127.0.0.1:7002", "$STANCH_LISTEN"}, rows["serve.listen"])
	require.Equal(t, [2]string{"file:/tmp/from-env.db", "$STANCH_DATABASE"}, rows["database"])
	require.Equal(t, [2]string{"7", cfg + ":4:15"}, rows["serve.rate_limit"])

	rows = show([]string{"STANCH_LISTEN=127.0.0.1:7002"}, "--listen", "127.0.0.1:7003")
	require.Equal(t, [2]string{"127.0.0.1:7003", "--listen"}, rows["serve.listen"])

	// The commands follow the same order: the store a run is written to
	// is the flag's, else the variable's, else the file's.
	stores := map[string]string{"flag": filepath.Join(dir, "flag.db"), "env": filepath.Join(dir, "env.db")}
	res := e.stanch([]string{"STANCH_DATABASE=file:" + stores["env"]}, "run", "--config", cfg, "--database", "file:"+stores["flag"],
		"--playbook", "testdata/contain.yaml", "--alert", e.example("alerts/manual-aws-key.json"))
	require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
	require.FileExists(t, stores["flag"])
	require.NoFileExists(t, stores["env"])
	require.NoFileExists(t, filepath.Join(dir, "from-file.db"))

	res = e.stanch([]string{"STANCH_DATABASE=file:" + stores["env"]}, "run", "--config", cfg,
		"--playbook", "testdata/contain.yaml", "--alert", e.example("alerts/manual-aws-key.json"))
	require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
	require.FileExists(t, stores["env"])
	require.NoFileExists(t, filepath.Join(dir, "from-file.db"))

	res = e.stanch(nil, "run", "--config", cfg, "--playbook", "testdata/contain.yaml", "--alert", e.example("alerts/manual-aws-key.json"))
	require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
	require.FileExists(t, filepath.Join(dir, "from-file.db"))
}
