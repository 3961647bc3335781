package destinations

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	sopsdotenv "github.com/getsops/sops/v3/stores/dotenv"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"google.golang.org/grpc"
)

// sopsStore is the part of a sops format store that editing needs.
type sopsStore interface {
	sops.EncryptedFileLoader
	sops.EncryptedFileEmitter
}

// sopsFormat returns the store for a format name, or for the file's name
// when format is empty, as the sops command picks it.
func sopsFormat(format, path string) (string, sopsStore, error) {
	f := formats.FormatForPathOrString(path, format)
	switch f {
	case formats.Yaml:
		return "yaml", sopsyaml.NewStore(&config.YAMLStoreConfig{}), nil
	case formats.Json:
		return "json", sopsjson.NewStore(&config.JSONStoreConfig{}), nil
	case formats.Dotenv:
		return "dotenv", sopsdotenv.NewStore(&config.DotenvStoreConfig{}), nil
	}
	if format != "" {
		return "", nil, fmt.Errorf("format %q: want yaml, json or dotenv", format)
	}
	return "", nil, fmt.Errorf("%s: cannot tell the format from the name (.yaml, .yml, .json or .env): give format: yaml, json or dotenv", path)
}

// sopsKeyPath splits a key of `keys:` into the path in the file's tree:
// aws.access_key_id is access_key_id under aws; a dotenv key is one name.
func sopsKeyPath(format, key string) []any {
	if format == "dotenv" {
		return []any{key}
	}
	var path []any
	for _, p := range strings.Split(key, ".") {
		path = append(path, p)
	}
	return path
}

// ageKeyService decrypts a SOPS file's data key with the age identities
// stanch is given, never with whatever SOPS_AGE_KEY* the process happens
// to have (sops' own local key service reads those).
type ageKeyService struct{ ids sopsage.ParsedIdentities }

var errNotAge = errors.New("stanch decrypts SOPS files with age keys only")

func (s ageKeyService) Decrypt(_ context.Context, in *keyservice.DecryptRequest, _ ...grpc.CallOption) (*keyservice.DecryptResponse, error) {
	k, ok := in.GetKey().GetKeyType().(*keyservice.Key_AgeKey)
	if !ok {
		return nil, errNotAge
	}
	mk := &sopsage.MasterKey{Recipient: k.AgeKey.GetRecipient(), EncryptedKey: string(in.GetCiphertext())}
	s.ids.ApplyToMasterKey(mk)
	plain, err := mk.Decrypt()
	if err != nil {
		return nil, err
	}
	return &keyservice.DecryptResponse{Plaintext: plain}, nil
}

// Encrypt is never needed: a file is re-encrypted with its own data key,
// so its recipients' encrypted copies of that key stay as they are.
func (ageKeyService) Encrypt(context.Context, *keyservice.EncryptRequest, ...grpc.CallOption) (*keyservice.EncryptResponse, error) {
	return nil, errors.New("stanch does not encrypt SOPS data keys")
}

// ageIdentities reads the age identities from a keys file (the format of
// SOPS_AGE_KEY_FILE: one AGE-SECRET-KEY-… a line, # comments).
func ageIdentities(file string) (sopsage.ParsedIdentities, error) {
	if file == "" {
		return nil, errors.New("no age key file is configured for SOPS files (sops.age_key_file; see docs/rotation.md)")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("the age key file (sops.age_key_file): %w", err)
	}
	var ids sopsage.ParsedIdentities
	if err := ids.Import(string(data)); err != nil {
		// The parser's message may quote the line; say only where.
		return nil, fmt.Errorf("the age key file %s (sops.age_key_file) holds no valid age identity", file)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("the age key file %s (sops.age_key_file) holds no age identity", file)
	}
	return ids, nil
}

// sopsDoc is a decrypted SOPS file, with the data key to encrypt it again.
type sopsDoc struct {
	store   sopsStore
	format  string
	tree    sops.Tree
	dataKey []byte
}

// openSOPS decrypts data as sops does (the decrypt package's
// DataWithFormat), with ids, and checks the file's MAC.
func openSOPS(data []byte, format string, store sopsStore, ids sopsage.ParsedIdentities) (*sopsDoc, error) {
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, fmt.Errorf("not a SOPS-encrypted %s file: %w", format, err)
	}
	key, err := tree.Metadata.GetDataKeyWithKeyServices([]keyservice.KeyServiceClient{ageKeyService{ids: ids}}, nil)
	if err != nil {
		return nil, fmt.Errorf("no configured age identity is among the file's recipients (%s): %w", recipients(tree.Metadata), err)
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("decrypt the file's MAC: %w", err)
	}
	if stored != mac {
		return nil, errors.New("the file's MAC does not match its values: it was changed without sops")
	}
	return &sopsDoc{store: store, format: format, tree: tree, dataKey: key}, nil
}

func recipients(m sops.Metadata) string {
	var out []string
	for _, g := range m.KeyGroups {
		for _, k := range g {
			out = append(out, k.TypeToIdentifier()+" "+k.ToString())
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// value returns the string at key, and whether there is one.
func (d *sopsDoc) value(key string) (string, bool) {
	if len(d.tree.Branches) == 0 {
		return "", false
	}
	path := sopsKeyPath(d.format, key)
	var cur any = d.tree.Branches[0]
	for _, p := range path {
		b, ok := cur.(sops.TreeBranch)
		if !ok {
			return "", false
		}
		found := false
		for _, item := range b {
			if k, ok := item.Key.(string); ok && k == p {
				cur, found = item.Value, true
				break
			}
		}
		if !found {
			return "", false
		}
	}
	s, ok := cur.(string)
	return s, ok
}

// holds reports whether every key has its wanted value.
func (d *sopsDoc) holds(want map[string]string) bool {
	for k, v := range want {
		if got, ok := d.value(k); !ok || got != v {
			return false
		}
	}
	return true
}

// set replaces the named keys, which must be there already: a key the
// file does not have is more likely a mistake in the playbook than a new
// setting its consumers read.
func (d *sopsDoc) set(want map[string]string) error {
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var missing []string
	for _, k := range keys {
		if _, ok := d.value(k); !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the file has no string value at %s: nothing was changed", strings.Join(missing, ", "))
	}
	for _, k := range keys {
		b, _ := d.tree.Branches[0].Set(sopsKeyPath(d.format, k), want[k])
		d.tree.Branches[0] = b
	}
	return nil
}

// seal encrypts the tree again with the file's own data key and rules
// (encrypted_regex, unencrypted_suffix… stay in its metadata, as do its
// recipients), computes its new MAC as `sops edit` does, and emits it in
// the file's format.
func (d *sopsDoc) seal() ([]byte, error) {
	cipher := aes.NewCipher()
	mac, err := d.tree.Encrypt(d.dataKey, cipher)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	d.tree.Metadata.LastModified = time.Now().UTC()
	d.tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, d.dataKey, d.tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("encrypt the MAC: %w", err)
	}
	out, err := d.store.EmitEncryptedFile(d.tree)
	if err != nil {
		return nil, fmt.Errorf("emit the %s file: %w", d.format, err)
	}
	return out, nil
}
