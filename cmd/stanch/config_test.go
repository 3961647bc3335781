package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	awsactions "github.com/stanchhq/stanch/actions/aws"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stanch.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func TestConfigResponseRoles(t *testing.T) {
	t.Setenv("TEST_STANCH_EXTERNAL_ID", "ext-from-env")
	extFile := filepath.Join(t.TempDir(), "ext")
	require.NoError(t, os.WriteFile(extFile, []byte("ext-from-file\n"), 0o600))
	path := writeConfig(t, `
aws:
  response_roles:
    arn: arn:aws:iam::{account}:role/stanch-responder
    external_id_env: TEST_STANCH_EXTERNAL_ID
    accounts:
      "999988887777":
        arn: arn:aws:iam::999988887777:role/incident-response
        external_id_file: `+extFile+`
`)
	cfg, err := loadConfig(path)
	require.NoError(t, err)
	opts, err := cfg.providerOptions()
	require.NoError(t, err)
	require.Equal(t, &awsactions.ResponseRoles{
		ARN:        "arn:aws:iam::{account}:role/stanch-responder",
		ExternalID: "ext-from-env",
		Accounts:   map[string]awsactions.ResponseRole{"999988887777": {ARN: "arn:aws:iam::999988887777:role/incident-response", ExternalID: "ext-from-file"}},
	}, opts.Roles)
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]string{
		"aws:\n  response_role: {}\n":                                                                                   "response_role",
		"aws:\n  response_roles:\n    arn: arn:aws:iam::111122223333:role/x\n":                                          "must contain {account}",
		"aws:\n  response_roles:\n    arn: arn:aws:iam::{account}:role/x\n    external_id_env: TEST_STANCH_UNSET_VAR\n": "TEST_STANCH_UNSET_VAR (external_id_env) is not set",
		"aws:\n  response_roles:\n    arn: arn:aws:iam::{account}:role/x\n    external_id: a\n    external_id_env: B\n": "only one of",
		"aws:\n  response_roles:\n    accounts:\n      \"12\": {arn: x}\n":                                              `"12" is not a 12-digit account id`,
	}
	for body, want := range cases {
		path := writeConfig(t, body)
		cfg, err := loadConfig(path)
		if err == nil {
			_, err = cfg.providerOptions()
		}
		require.ErrorContains(t, err, want, body)
	}
}

// A binding whose flag does not exist would drop its setting without a
// word: every one must name a real flag of the commands it is for.
func TestEveryBindingNamesARealFlag(t *testing.T) {
	root := newRoot(nil, io.Discard, io.Discard)
	envs := map[string]string{}
	for _, b := range bindings {
		if b.env != "" {
			require.NotContains(t, envs, b.env, "two settings read $%s", b.env)
			envs[b.env] = b.flag
		}
		if b.flag == "" {
			continue // a setting no flag carries (globals.setting)
		}
		if len(b.commands) == 0 {
			require.True(t, anyCommandHas(root, b.flag), "no command has --%s", b.flag)
			continue
		}
		for _, name := range b.commands {
			cmd, _, err := root.Find([]string{name})
			require.NoError(t, err)
			require.Equal(t, name, cmd.Name())
			require.NotNil(t, cmd.Flags().Lookup(b.flag), "stanch %s has no --%s", name, b.flag)
		}
	}
}

func anyCommandHas(cmd *cobra.Command, flag string) bool {
	if cmd.Flags().Lookup(flag) != nil || cmd.PersistentFlags().Lookup(flag) != nil {
		return true
	}
	for _, c := range cmd.Commands() {
		if anyCommandHas(c, flag) {
			return true
		}
	}
	return false
}
