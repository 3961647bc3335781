package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"

	awsactions "github.com/stanchhq/stanch/actions/aws"
)

// fileConfig is stanch's configuration file. It names where secrets come
// from (an environment variable or a file), never the secrets themselves.
type fileConfig struct {
	AWS awsConfig `yaml:"aws"`
}

type awsConfig struct {
	ResponseRoles *rolesConfig `yaml:"response_roles"`
}

type rolesConfig struct {
	// ARN is the role in each account, with {account} for the account id.
	ARN              string `yaml:"arn"`
	SessionName      string `yaml:"session_name"`
	ExternalIDSource `yaml:",inline"`
	Accounts         map[string]accountRole `yaml:"accounts"`
}

type accountRole struct {
	ARN              string `yaml:"arn"`
	ExternalIDSource `yaml:",inline"`
}

// ExternalIDSource is where the external id comes from: given as is (it is an
// identifier, not a secret), or read from an environment variable or file.
type ExternalIDSource struct {
	ExternalID     string `yaml:"external_id"`
	ExternalIDEnv  string `yaml:"external_id_env"`
	ExternalIDFile string `yaml:"external_id_file"`
}

func (v ExternalIDSource) resolve(where string) (string, error) {
	set := 0
	for _, s := range []string{v.ExternalID, v.ExternalIDEnv, v.ExternalIDFile} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return "", fmt.Errorf("%s: give only one of external_id, external_id_env, external_id_file", where)
	}
	switch {
	case v.ExternalIDEnv != "":
		val, ok := os.LookupEnv(v.ExternalIDEnv)
		if !ok || val == "" {
			return "", fmt.Errorf("%s: environment variable %s (external_id_env) is not set", where, v.ExternalIDEnv)
		}
		return val, nil
	case v.ExternalIDFile != "":
		data, err := os.ReadFile(v.ExternalIDFile)
		if err != nil {
			return "", fmt.Errorf("%s: external_id_file: %w", where, err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	return v.ExternalID, nil
}

// loadConfig reads the configuration file at path; an empty path is the
// empty configuration (the SDK's own settings, no other accounts).
func loadConfig(path string) (fileConfig, error) {
	var cfg fileConfig
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read configuration: %w", err)
	}
	if err := yaml.NewDecoder(bytes.NewReader(data), yaml.DisallowUnknownField()).Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("configuration %s: %s", path, strings.TrimSpace(yaml.FormatError(err, false, true)))
	}
	return cfg, nil
}

// providerOptions turns the configuration into the AWS actions' options.
func (c fileConfig) providerOptions(path string) (awsactions.ProviderOptions, error) {
	var opts awsactions.ProviderOptions
	rc := c.AWS.ResponseRoles
	if rc == nil {
		return opts, nil
	}
	where := path + ": aws.response_roles"
	if rc.ARN != "" && !strings.Contains(rc.ARN, "{account}") {
		return opts, fmt.Errorf("%s.arn %q must contain {account}, e.g. arn:aws:iam::{account}:role/stanch-responder", where, rc.ARN)
	}
	ext, err := rc.resolve(where)
	if err != nil {
		return opts, err
	}
	roles := &awsactions.ResponseRoles{ARN: rc.ARN, ExternalID: ext, SessionName: rc.SessionName, Accounts: map[string]awsactions.ResponseRole{}}
	for account, ar := range rc.Accounts {
		if len(account) != 12 || strings.Trim(account, "0123456789") != "" {
			return opts, fmt.Errorf("%s.accounts: %q is not a 12-digit account id", where, account)
		}
		ext, err := ar.resolve(where + ".accounts." + account)
		if err != nil {
			return opts, err
		}
		roles.Accounts[account] = awsactions.ResponseRole{ARN: ar.ARN, ExternalID: ext}
	}
	opts.Roles = roles
	return opts, nil
}

// roleARNs lists the response roles as IAM resources, with * for the
// {account} placeholder.
func (c fileConfig) roleARNs() []string {
	rc := c.AWS.ResponseRoles
	if rc == nil {
		return nil
	}
	var arns []string
	if rc.ARN != "" {
		arns = append(arns, strings.ReplaceAll(rc.ARN, "{account}", "*"))
	}
	for _, ar := range rc.Accounts {
		if ar.ARN != "" {
			arns = append(arns, ar.ARN)
		}
	}
	sort.Strings(arns)
	return arns
}
