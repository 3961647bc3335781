package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the response role's policy in cloudformation/response-role.yaml from stanch permissions")

// dockerBuild is the build line of the Dockerfile; the tests build stanch
// with the same arguments.
const dockerBuild = `RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/stanch ./cmd/stanch`

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

func removeBuilt() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

// stanchBinary builds stanch once for the package's tests, as the
// Dockerfile does.
func stanchBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "stanch-deploy-build-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "stanch")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", built.path, "./cmd/stanch")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		built.out, built.err = cmd.CombinedOutput()
	})
	require.NoError(t, built.err, "go build ./cmd/stanch:\n%s", built.out)
	return built.path
}

// stanch runs the built binary in the repository root with exactly env
// (nil is an empty environment) and returns its exit code and output.
func stanch(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(stanchBinary(t), args...)
	cmd.Dir = ".."
	cmd.Env = append([]string{}, env...) // never nil: nil would inherit ours
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), out.String(), errOut.String()
	}
	require.NoError(t, err)
	return 0, out.String(), errOut.String()
}

// stanchPermissions is `stanch permissions` for the example playbooks, as
// a JSON value.
func stanchPermissions(t *testing.T) any {
	t.Helper()
	var doc any
	out := stanchPermissionsOutput(t)
	require.NoError(t, json.Unmarshal(out, &doc), string(out))
	return doc
}

// stanchPermissionsOutput runs `stanch permissions` for the example
// playbooks. The environment is empty, so that no STANCH_CONFIG of the
// person running the tests adds response roles to it.
func stanchPermissionsOutput(t *testing.T) []byte {
	t.Helper()
	playbooks, err := filepath.Glob("../examples/playbooks/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, playbooks)
	args := []string{"permissions"}
	for _, p := range playbooks {
		args = append(args, "--playbook", strings.TrimPrefix(p, "../"))
	}
	code, stdout, stderr := stanch(t, nil, args...)
	require.Equal(t, 0, code, stderr)
	return []byte(stdout)
}

const roleTemplate = "cloudformation/response-role.yaml"

// TestResponseRolePolicy is the drift test: the response role's inline
// policy is exactly what `stanch permissions` prints for the example
// playbooks. With -update it rewrites the template's policy instead.
func TestResponseRolePolicy(t *testing.T) {
	want := stanchPermissions(t)
	if *update {
		rewriteRolePolicy(t, stanchPermissionsOutput(t))
	}
	got := dig(t, readTemplate(t, roleTemplate), "Resources", "ResponseRole", "Properties", "Policies", 0, "PolicyDocument")
	require.JSONEq(t, mustJSON(t, want), mustJSON(t, got),
		"%s: the policy is not what stanch permissions prints for examples/playbooks; run go test ./deploy -run TestResponseRolePolicy -update", roleTemplate)
}

// rewriteRolePolicy replaces the lines between the template's BEGIN and
// END markers with the policy, in JSON (which YAML reads as it is).
func rewriteRolePolicy(t *testing.T, policy []byte) {
	t.Helper()
	data, err := os.ReadFile(roleTemplate)
	require.NoError(t, err)
	lines := strings.Split(string(data), "\n")
	begin := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "# BEGIN stanch permissions") })
	end := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "# END stanch permissions") })
	require.True(t, begin >= 0 && end > begin, "%s: no BEGIN/END stanch permissions markers", roleTemplate)
	var doc bytes.Buffer
	require.NoError(t, json.Indent(&doc, bytes.TrimSpace(policy), "            ", "  "))
	block := []string{"          PolicyDocument:", "            " + doc.String()}
	lines = slices.Concat(lines[:begin+1], block, lines[end:])
	require.NoError(t, os.WriteFile(roleTemplate, []byte(strings.Join(lines, "\n")), 0o644))
}

// TestBinaryIsStatic checks that the binary the Dockerfile builds needs
// no dynamic loader and no shared library, so that it runs on a base
// image without libc, and that it runs with an empty environment.
func TestBinaryIsStatic(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	require.Contains(t, string(data), dockerBuild+"\n", "the Dockerfile builds stanch as this test does")

	f, err := elf.Open(stanchBinary(t))
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "the binary asks for a dynamic loader")
		require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "the binary has a dynamic section")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs)

	code, stdout, stderr := stanch(t, nil, "--help")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "Usage:")
	require.Contains(t, stdout, "serve")
}

// dockerfile reads the instructions of the Dockerfile: each one with its
// continuation lines joined, comments left out.
func dockerfile(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("Dockerfile")
	require.NoError(t, err)
	defer f.Close()
	var out []string
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if more, ok := strings.CutSuffix(line, "\\"); ok {
			cur += more
			continue
		}
		out = append(out, cur+line)
		cur = ""
	}
	require.NoError(t, sc.Err())
	return out
}

// TestDockerfile checks the image without building it (no container
// engine here): it runs as a non-root user, its entry point is the binary
// it copies, and stanch accepts the command line it runs.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	instructions := dockerfile(t)
	var stages []string
	var user, entrypoint, command string
	for _, in := range instructions {
		verb, rest, _ := strings.Cut(in, " ")
		switch verb {
		case "FROM":
			stages = append(stages, rest)
			user = "" // USER is per stage
		case "USER":
			user = rest
		case "ENTRYPOINT":
			entrypoint = rest
		case "CMD":
			command = rest
		}
	}
	require.Len(t, stages, 2)
	require.Equal(t, "gcr.io/distroless/static-debian12:nonroot", stages[1], "a base without libc or shell")
	require.Equal(t, "65532:65532", user, "the final stage runs as distroless's nonroot user")
	require.Contains(t, instructions, "COPY --from=build /out/stanch /usr/local/bin/stanch")
	var ep, cmd []string
	require.NoError(t, json.Unmarshal([]byte(entrypoint), &ep), "ENTRYPOINT in exec form")
	require.NoError(t, json.Unmarshal([]byte(command), &cmd), "CMD in exec form")
	require.Equal(t, []string{"/usr/local/bin/stanch"}, ep)

	// Every flag of the command exists: --help after them makes stanch
	// parse them, then print the help instead of serving.
	code, _, stderr := stanch(t, nil, append(cmd, "--help")...)
	require.Equal(t, 0, code, "stanch %s: %s", strings.Join(cmd, " "), stderr)
	require.Equal(t, "serve", cmd[0])
}

// unit reads a systemd unit file: key → values, in order, per section.
func unit(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: %q", path, line)
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

// TestSystemdUnit checks the unit: stanch accepts its command line, it
// runs as its own user with its secrets from an environment file, and its
// hardening is on. systemd-analyze verify, where it is installed, checks
// the unit the way systemd will read it.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	const path = "systemd/stanch.service"
	u := unit(t, path)
	one := func(key string) string {
		require.Len(t, u[key], 1, key)
		return u[key][0]
	}
	require.Equal(t, "stanch", one("Service.User"))
	require.Equal(t, "/etc/stanch/stanch.env", one("Service.EnvironmentFile"), "required: a missing file fails the start rather than turning every endpoint off")
	require.Equal(t, "stanch", one("Service.StateDirectory"))
	for key, want := range map[string]string{
		"NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "", "ProtectSystem": "strict",
		"ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
		"ProtectKernelModules": "yes", "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes",
		"MemoryDenyWriteExecute": "yes", "LockPersonality": "yes", "RestrictNamespaces": "yes",
		"SystemCallArchitectures": "native", "UMask": "0077",
	} {
		require.Equal(t, want, one("Service."+key), key)
	}
	require.Equal(t, []string{"@system-service", "~@privileged"}, u["Service.SystemCallFilter"])

	exec0 := strings.Fields(one("Service.ExecStart"))
	require.Equal(t, "/usr/local/bin/stanch", exec0[0])
	code, _, stderr := stanch(t, nil, append(exec0[1:], "--help")...)
	require.Equal(t, 0, code, "%s: %s", one("Service.ExecStart"), stderr)

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit is not verified by systemd")
		return
	}
	// verify wants the binary where ExecStart says: point it at the one
	// built here, in a copy of the unit.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	copied := filepath.Join(t.TempDir(), "stanch.service")
	require.NoError(t, os.WriteFile(copied, bytes.Replace(data, []byte("ExecStart=/usr/local/bin/stanch"), []byte("ExecStart="+stanchBinary(t)), 1), 0o644))
	out, err := exec.Command(analyze, "verify", "--man=no", copied).CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify:\n%s", out)
	for _, complaint := range []string{"Unknown key", "Unknown section", "ignoring", "Failed"} {
		require.NotContains(t, string(out), complaint, "systemd-analyze verify:\n%s", out)
	}
}
