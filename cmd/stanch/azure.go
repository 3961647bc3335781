package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/stanchhq/stanch/destinations"
)

// azureConfig is how aws.rotate_key's azure_key_vault destinations reach
// Key Vault (docs/rotation.md).
type azureConfig struct {
	// KeyVaultURL is the vault of a destination that names none.
	KeyVaultURL string `yaml:"keyvault_url"`
	// CAFile is the only CA trusted for Key Vault: the sandbox's or a test
	// double's, never for Azure itself (see azureDeps).
	CAFile string `yaml:"ca_file"`
	// Where a bearer token for https://vault.azure.net is: a variable's
	// name or a file, never the token. Neither set (or empty): azidentity's
	// DefaultAzureCredential.
	TokenEnv  string `yaml:"token_env"`
	TokenFile string `yaml:"token_file"`
}

const envAzureToken = "STANCH_AZURE_TOKEN"

// azureDeps says how azure_key_vault destinations write. The credential is
// the configured token when one is there, else DefaultAzureCredential
// (environment, workload identity, managed identity, Azure CLI); nothing
// is read before a rotation writes.
//
// With azure.ca_file, that CA is the only one trusted and the bearer
// challenge's resource is not checked against the vault's host: the
// sandbox is served at 127.0.0.1, not under vault.azure.net. The check
// keeps a token from going to a host that is not Key Vault; trusting only
// a CA the operator names keeps that promise another way.
func (g *globals) azureDeps() destinations.AzureDeps {
	get := func(key string) string { v, _ := g.setting(key); return v }
	deps := destinations.AzureDeps{VaultURL: get("azure.keyvault_url")}
	var caErr error
	if caFile := get("azure.ca_file"); caFile != "" {
		pool := x509.NewCertPool()
		data, err := os.ReadFile(caFile)
		switch {
		case err != nil:
			caErr = fmt.Errorf("azure.ca_file: %w", err)
		case !pool.AppendCertsFromPEM(data):
			caErr = fmt.Errorf("azure.ca_file %s: no PEM certificate in it", caFile)
		default:
			deps.Transport = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment,
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
			deps.DisableChallengeResourceVerification = true
		}
	}
	env, file := get("azure.token_env"), get("azure.token_file")
	if env == "" {
		env = envAzureToken
	}
	deps.Credential = func() (azcore.TokenCredential, error) {
		if caErr != nil {
			return nil, caErr
		}
		if file != "" {
			return destinations.AzureToken(func() (string, error) {
				tok, err := readSecret("", file)
				if err != nil {
					return "", fmt.Errorf("the Azure token (azure.token_file): %w", err)
				}
				return tok, nil
			}), nil
		}
		if os.Getenv(env) != "" {
			return destinations.AzureToken(func() (string, error) { return os.Getenv(env), nil }), nil
		}
		if deps.DisableChallengeResourceVerification {
			return nil, errors.New("azure.ca_file is set (the sandbox) but no token is: set $" + env + " or azure.token_file")
		}
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("no Azure token is configured (azure.token_env, azure.token_file) and DefaultAzureCredential: %w", err)
		}
		return cred, nil
	}
	return deps
}
