// Package sopstest makes SOPS-encrypted files for tests, with the sops
// library and age keys, and opens them with sops' own decrypt package, as
// a consumer of the file would.
package sopstest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/decrypt"
	"github.com/getsops/sops/v3/version"
	"github.com/stretchr/testify/require"
)

// Key is an age identity in a keys file (SOPS_AGE_KEY_FILE's format).
type Key struct {
	File, Recipient string
}

// NewKey makes an age identity in a keys file under dir.
func NewKey(t testing.TB, dir string) Key {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	f, err := os.CreateTemp(dir, "age-*.txt")
	require.NoError(t, err)
	_, err = f.WriteString("# created: by a test\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return Key{File: f.Name(), Recipient: id.Recipient().String()}
}

var (
	shared     Key
	sharedOnce sync.Once
)

// Shared is the age identity Decrypt opens files with: sops' decrypt
// package finds it through SOPS_AGE_KEY_FILE, which the process has set
// for it once (t.Setenv would forbid parallel tests).
func Shared(t testing.TB) Key {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sopstest-")
		require.NoError(t, err)
		shared = NewKey(t, dir)
		require.NoError(t, os.Setenv(sopsage.SopsAgeKeyFileEnv, shared.File))
	})
	require.NotEmpty(t, shared.File)
	return shared
}

// Rules are a file's creation rules, kept in its metadata.
type Rules struct {
	EncryptedRegex, UnencryptedSuffix string
}

// Encrypt encrypts plain (yaml, json or dotenv) for recipients, as `sops
// encrypt` does.
func Encrypt(t testing.TB, plain []byte, format string, rules Rules, recipients ...string) []byte {
	t.Helper()
	store := common.StoreForFormat(formats.FormatFromString(format), config.NewStoresConfig())
	branches, err := store.LoadPlainFile(plain)
	require.NoError(t, err)
	var group sops.KeyGroup
	for _, r := range recipients {
		k, err := sopsage.MasterKeyFromRecipient(r)
		require.NoError(t, err)
		group = append(group, k)
	}
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{KeyGroups: []sops.KeyGroup{group},
		EncryptedRegex: rules.EncryptedRegex, UnencryptedSuffix: rules.UnencryptedSuffix, Version: version.Version}}
	key, errs := tree.GenerateDataKey()
	require.Empty(t, errs)
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(key, cipher)
	require.NoError(t, err)
	tree.Metadata.LastModified = time.Now().UTC()
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, key, tree.Metadata.LastModified.Format(time.RFC3339))
	require.NoError(t, err)
	out, err := store.EmitEncryptedFile(tree)
	require.NoError(t, err)
	return out
}

// Decrypt opens data with sops' decrypt package and the Shared identity,
// checking the file's MAC, and returns the cleartext.
func Decrypt(t testing.TB, data []byte, format string) []byte {
	t.Helper()
	Shared(t)
	plain, err := decrypt.Data(data, format)
	require.NoError(t, err)
	return plain
}

// WriteFile writes data to name under dir and returns its path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}
