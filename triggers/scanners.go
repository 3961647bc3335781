package triggers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/stanchhq/stanch/alert"
)

// scannedCredential identifies what a scanner found: an AWS key by its id,
// anything else by a fingerprint of the secret (identifies, reveals
// nothing), under the detector's name. Text that holds two different key
// ids is an error: which one leaked is not known.
func scannedCredential(detector, secretText string) (alert.Credential, error) {
	switch id, n := alert.KeyIDIn(secretText); {
	case n == 1:
		return alert.Credential{Provider: "aws", ID: id}, nil
	case n > 1:
		return alert.Credential{}, errMoreThanOneKeyID
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(secretText)))
	return alert.Credential{Provider: strings.ToLower(detector), Kind: alert.CredentialToken, ID: "sha256:" + hex.EncodeToString(sum[:8])}, nil
}

var errMoreThanOneKeyID = errors.New("the finding's secret holds more than one AWS access key id, so which one leaked is not known; give each to stanch run --alert")

// repoName turns a clone URL into owner/name.
func repoName(url string) string {
	url = strings.TrimSuffix(strings.TrimSuffix(url, "/"), ".git")
	parts := strings.Split(url, "/")
	if len(parts) >= 2 {
		return parts[len(parts)-2] + "/" + parts[len(parts)-1]
	}
	return url
}
