package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRotationCrashLeavesOneNewKey kills stanch inside the rotation: after
// CreateAccessKey, after PutSecretValue and after the promotion. Each time
// the run is resumed, and ends with exactly one new active key, held by
// AWSCURRENT, and no orphan key.
func TestRotationCrashLeavesOneNewKey(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"rotate:created", "rotate:stored", "rotate:promoted"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			e := newE2E(t)
			waiting := e.stanch(nil, "run", "--playbook", "testdata/rotate.yaml", "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
			require.Equal(t, 3, waiting.code, waiting.stdout+waiting.stderr)
			fields := strings.Fields(waiting.stdout[strings.Index(waiting.stdout, "stanch approve "):])
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
			var stored struct{ AccessKeyId string }
			require.NoError(t, json.Unmarshal([]byte(current), &stored))
			state := e.sb.State()
			var keys map[string]string
			for _, a := range state.Accounts {
				for _, u := range a.Users {
					if u.Name == "ci-bot" {
						keys = map[string]string{}
						for _, k := range u.Keys {
							keys[k.ID] = k.Status
						}
					}
				}
			}
			require.Equal(t, map[string]string{otherKey: "Active", stored.AccessKeyId: "Active"}, keys,
				"the leaked key is gone (inactive, deleted to make room), one new key, no orphan")
			require.NotEqual(t, leakedKey, stored.AccessKeyId)
			require.NotEmpty(t, version)
			for _, c := range e.sb.Calls() {
				for _, v := range c.Params {
					require.NotContains(t, v, "SecretAccessKey\":\"", "no secret in the call log")
				}
			}
		})
	}
}
