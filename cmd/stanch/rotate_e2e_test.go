package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRotateCrashLeavesOneNewKey kills stanch inside the rotation: after
// CreateAccessKey, after PutSecretValue and after the promotion. Each time
// the run is resumed, and ends with exactly one new active key, held by
// AWSCURRENT, and no orphan key. Two accounts: ci-bot with only the leaked
// key (which stays, Inactive), and ci-bot with a second key (the inactive
// leaked key is deleted to make room).
func TestRotateCrashLeavesOneNewKey(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		seed string
		// want are ci-bot's keys besides the new one; leakedDeleted says
		// whether the rotation deleted the leaked key to make room.
		want          map[string]string
		leakedDeleted int
	}{
		"one key":  {seed: "testdata/rotate-seed.yaml", want: map[string]string{leakedKey: "Inactive"}},
		"two keys": {seed: "testdata/seed.yaml", want: map[string]string{otherKey: "Active"}, leakedDeleted: 1},
	}
	for name, c := range cases {
		for _, point := range []string{"rotate:created", "rotate:stored", "rotate:promoted"} {
			t.Run(name+"/"+point, func(t *testing.T) {
				t.Parallel()
				seed, err := os.ReadFile(c.seed)
				require.NoError(t, err)
				e := newE2EWithSeed(t, seed)
				waiting := e.stanch(nil, "run", "--playbook", "testdata/rotate.yaml", "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
				require.Equal(t, 3, waiting.code, waiting.stdout+waiting.stderr)
				i := strings.Index(waiting.stdout, "stanch approve ")
				require.GreaterOrEqual(t, i, 0, waiting.stdout)
				fields := strings.Fields(waiting.stdout[i:])
				runID, step := fields[2], fields[3]
				require.Equal(t, "rotate", step)

				crashed := e.stanch([]string{"STANCH_CRASHPOINT=" + point}, "approve", runID, step, "--by", "security-oncall", "--database", e.db)
				require.True(t, crashed.killed, "want SIGKILL at %s: %s%s", point, crashed.stdout, crashed.stderr)

				resumed := e.stanch(nil, "approve", runID, step, "--by", "security-oncall", "--database", e.db)
				require.Equal(t, 0, resumed.code, "stdout:\n%s\nstderr:\n%s", resumed.stdout, resumed.stderr)
				require.Contains(t, resumed.stdout, "already approved")
				require.Contains(t, resumed.stdout, "succeeded")

				current, version, ok := e.sb.SecretValue(account, "us-east-1", "iam-user/ci-bot", "AWSCURRENT")
				require.True(t, ok)
				var stored struct{ UserName, AccessKeyId, SecretAccessKey string }
				require.NoError(t, json.Unmarshal([]byte(current), &stored))
				require.Equal(t, "ci-bot", stored.UserName)
				require.NotEqual(t, leakedKey, stored.AccessKeyId)
				require.NotEmpty(t, version)
				_, _, pending := e.sb.SecretValue(account, "us-east-1", "iam-user/ci-bot", "AWSPENDING")
				require.False(t, pending, "AWSPENDING is gone after the promotion")

				want := map[string]string{stored.AccessKeyId: "Active"}
				for id, status := range c.want {
					want[id] = status
				}
				require.Equal(t, want, e.userKeys("ci-bot"), "exactly one new Active key and no orphan")

				// Keys made minus keys removed: one survivor. A crash after
				// CreateAccessKey costs one orphan, deleted on resume.
				created, deleted := e.sb.EffectiveCount("CreateAccessKey"), e.sb.EffectiveCount("DeleteAccessKey")
				require.Equal(t, 1, created-(deleted-c.leakedDeleted), "created %d, deleted %d", created, deleted)
				if point == "rotate:created" {
					require.Equal(t, 2, created)
				} else {
					require.Equal(t, 1, created, "a crash after the key was stored makes no second key")
				}
				require.Equal(t, 1, e.sb.EffectiveCount("PutSecretValue"))

				// The new secret half is only in Secrets Manager: not in the
				// call log, stanch's output, or its database.
				require.Len(t, stored.SecretAccessKey, 40)
				for _, call := range e.sb.Calls() {
					for k, v := range call.Params {
						require.NotContains(t, v, stored.SecretAccessKey, "%s %s", call.Action, k)
					}
				}
				for _, r := range []result{waiting, crashed, resumed} {
					require.NotContains(t, r.stdout+r.stderr, stored.SecretAccessKey)
				}
				files, err := filepath.Glob(filepath.Join(e.dir, "stanch.db*"))
				require.NoError(t, err)
				require.NotEmpty(t, files)
				for _, f := range files {
					if info, err := os.Lstat(f); err == nil && !info.Mode().IsRegular() {
						continue // the token hand-off socket a killed process left
					}
					data, err := os.ReadFile(f)
					require.NoError(t, err)
					require.NotContains(t, string(data), stored.SecretAccessKey, f)
				}
			})
		}
	}
}

// userKeys returns a user's keys and their statuses in the sandbox.
func (e *e2e) userKeys(user string) map[string]string {
	e.t.Helper()
	for _, a := range e.sb.State().Accounts {
		for _, u := range a.Users {
			if u.Name == user {
				keys := map[string]string{}
				for _, k := range u.Keys {
					keys[k.ID] = k.Status
				}
				return keys
			}
		}
	}
	e.t.Fatalf("no user %s in the sandbox", user)
	return nil
}
