package main

import (
	"os"
	"path/filepath"
	"testing"

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
	opts, err := cfg.providerOptions(path)
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
			_, err = cfg.providerOptions(path)
		}
		require.ErrorContains(t, err, want, body)
	}
}
