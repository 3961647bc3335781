package triggers

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/stanchhq/stanch/alert"
)

// scannedCredential identifies what a scanner found: an AWS key by its id,
// anything else by a fingerprint of the secret (identifies, reveals
// nothing), under the detector's name.
func scannedCredential(detector, secretText string) alert.Credential {
	if id := alert.AWSKeyID.FindString(secretText); id != "" {
		return alert.Credential{Provider: "aws", ID: id}
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(secretText)))
	return alert.Credential{Provider: strings.ToLower(detector), Kind: alert.CredentialToken, ID: "sha256:" + hex.EncodeToString(sum[:8])}
}

// repoName turns a clone URL into owner/name.
func repoName(url string) string {
	url = strings.TrimSuffix(strings.TrimSuffix(url, "/"), ".git")
	parts := strings.Split(url, "/")
	if len(parts) >= 2 {
		return parts[len(parts)-2] + "/" + parts[len(parts)-1]
	}
	return url
}
