package playbooks

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// PatternParams reads a step's parameters for every run at once: what only
// a run knows is a wildcard, what the playbook fixes stays.
func TestPatternParams(t *testing.T) {
	t.Parallel()
	pb := parse(t, `
name: patterns
vars:
  secret_prefix: iam-user/
steps:
  - id: identify
    action: aws.identify_key
    with: {access_key_id: "${{ alert.credential.id }}"}
  - id: rotate
    action: aws.rotate_key
    with:
      secret_id: ${{ vars.secret_prefix + steps.identify.outputs.user_name }}
      when_two_keys: stop
      region: "${{ alert.location.repo }}"
`)
	got := pb.Steps[1].PatternParams(pb, map[string][]string{"identify": {"account", "user_name"}})
	require.Equal(t, map[string]string{"secret_id": "iam-user/*", "when_two_keys": "stop"}, got,
		"a parameter that is only a run-time value is left out")
	require.Empty(t, pb.Steps[0].PatternParams(pb, nil))
}
