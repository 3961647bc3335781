package destinations

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	sopsage "github.com/getsops/sops/v3/age"
	gh "github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/actions"
)

// SOPSSpec is a SOPS-encrypted file (age recipients) whose named keys get
// the new credential: in a local checkout (File), or in a GitHub
// repository (Repository, Path) as a commit on a branch with a pull
// request.
type SOPSSpec struct {
	// File is the file in a local checkout, written in place (atomically).
	File string `json:"file,omitempty"`
	// Repository (owner/name) and Path name the file in GitHub; Base is the
	// branch to change (default: the repository's default branch) and
	// Branch the one stanch commits to (default stanch/{run}/{step}).
	Repository string `json:"repository,omitempty"`
	Path       string `json:"path,omitempty"`
	Base       string `json:"base,omitempty"`
	Branch     string `json:"branch,omitempty"`
	// Format is yaml, json or dotenv; default from the file's name.
	Format string `json:"format,omitempty"`
	// Keys maps a key of the file (aws.access_key_id: access_key_id under
	// aws; a dotenv file's AWS_ACCESS_KEY_ID) to the credential's field.
	// Every other value of the file is kept.
	Keys map[string]string `json:"keys"`
}

func (s SOPSSpec) check() error {
	var problems []string
	local, remote := s.File != "", s.Repository != "" || s.Path != ""
	switch {
	case local && remote:
		problems = append(problems, "give either file (a local checkout) or repository and path (a pull request), not both")
	case !local && !remote:
		problems = append(problems, "file (a local checkout) or repository and path (a pull request) is required")
	case remote:
		if owner, name, ok := strings.Cut(s.Repository, "/"); !ok || owner == "" || name == "" || strings.Contains(name, "/") {
			problems = append(problems, fmt.Sprintf("repository %q: want owner/name", s.Repository))
		}
		if s.Path == "" || strings.HasPrefix(s.Path, "/") {
			problems = append(problems, fmt.Sprintf("path %q: want the file's path in the repository, such as secrets/prod.enc.yaml", s.Path))
		}
	}
	if local && (s.Base != "" || s.Branch != "") {
		problems = append(problems, "base and branch are for a file in a repository (repository, path)")
	}
	name := s.File
	if remote {
		name = s.Path
	}
	if _, _, err := sopsFormat(s.Format, name); err != nil && name != "" {
		problems = append(problems, err.Error())
	}
	if len(s.Keys) == 0 {
		problems = append(problems, "keys is required: the file's keys to the credential's fields, such as {aws.access_key_id: AccessKeyId, aws.secret_access_key: SecretAccessKey}")
	}
	for k := range s.Keys {
		if k == "" || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.Contains(k, "..") {
			problems = append(problems, fmt.Sprintf("keys: %q is not a key path such as aws.access_key_id", k))
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// SOPSDeps say how stanch decrypts SOPS files and reaches GitHub.
type SOPSDeps struct {
	// AgeKeyFile is an age keys file (SOPS_AGE_KEY_FILE's format) holding
	// an identity among the files' recipients; read only when a rotation
	// writes.
	AgeKeyFile string
	// GitHub returns the client for files in a repository (stanch's own
	// GitHub configuration: a token or an App installation).
	GitHub func() (*gh.Client, error)
}

type sopsFile struct {
	spec   SOPSSpec
	deps   SOPSDeps
	format string
}

func newSOPS(s SOPSSpec, deps SOPSDeps) (Destination, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	name := s.File
	if s.File == "" {
		name = s.Path
	}
	format, _, err := sopsFormat(s.Format, name)
	if err != nil {
		return nil, err
	}
	f := &sopsFile{spec: s, deps: deps, format: format}
	if s.File == "" {
		return &sopsPull{sopsFile: f}, nil
	}
	return f, nil
}

// sopsPermissions are what writing to SOPS-encrypted files needs.
var sopsPermissions = []actions.Permission{
	{Provider: "sops", Name: "read of the age key file (sops.age_key_file) holding an identity among the file's recipients", Why: "destinations sops: decrypt the file's data key"},
	{Provider: "sops", Name: "read and write of the file (file:) and create in its folder", Why: "destinations sops with file: read it, write the re-encrypted file beside it and rename it over the old one"},
	{Provider: "github", Name: "contents: write", Why: "destinations sops with repository: read the file, create the branch and commit the re-encrypted file to it"},
	{Provider: "github", Name: "pull_requests: write", Why: "destinations sops with repository: find or open the pull request of the branch"},
}

func (f *sopsFile) Describe() string { return "SOPS file " + f.spec.File }

func (f *sopsFile) Calls() []actions.Call {
	p := map[string]any{"file": f.spec.File, "keys": sortedKeys(f.spec.Keys)}
	return []actions.Call{
		{Service: "sops", Operation: "Decrypt", Params: p},
		{Service: "sops", Operation: "WriteFile (re-encrypted, atomic rename)", Params: p, Mutates: true,
			Effect: fmt.Sprintf("replace %s in %s, re-encrypted for the file's own recipients", strings.Join(sortedKeys(f.spec.Keys), ", "), f.Describe())},
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// open decrypts data, a version of the file, with the configured age
// identities.
func (f *sopsFile) open(data []byte, where string) (*sopsDoc, error) {
	ids, err := ageIdentities(f.deps.AgeKeyFile)
	if err != nil {
		return nil, actions.Permanent(err)
	}
	return f.openWith(data, where, ids)
}

func (f *sopsFile) openWith(data []byte, where string, ids sopsage.ParsedIdentities) (*sopsDoc, error) {
	name := f.spec.File
	if name == "" {
		name = f.spec.Path
	}
	_, store, err := sopsFormat(f.spec.Format, name)
	if err != nil {
		return nil, actions.Permanent(err)
	}
	d, err := openSOPS(data, f.format, store, ids)
	if err != nil {
		return nil, actions.Permanent(fmt.Errorf("%s: %w", where, err))
	}
	return d, nil
}

func (f *sopsFile) Holds(_ context.Context, c Credential, _ Mark) (bool, error) {
	want, err := mapped(c, f.spec.Keys)
	if err != nil {
		return false, actions.Permanent(err)
	}
	data, err := f.read()
	if err != nil {
		return false, err
	}
	d, err := f.open(data, f.Describe())
	if err != nil {
		return false, err
	}
	return d.holds(want), nil
}

func (f *sopsFile) read() ([]byte, error) {
	data, err := os.ReadFile(f.spec.File)
	if err != nil {
		return nil, actions.Permanent(fmt.Errorf("read %s: %w", f.Describe(), err))
	}
	return data, nil
}

func (f *sopsFile) Write(_ context.Context, c Credential, _ Mark) (string, error) {
	want, err := mapped(c, f.spec.Keys)
	if err != nil {
		return "", actions.Permanent(err)
	}
	before, err := f.read()
	if err != nil {
		return "", err
	}
	d, err := f.open(before, f.Describe())
	if err != nil {
		return "", err
	}
	if err := d.set(want); err != nil {
		return "", actions.Permanent(fmt.Errorf("%s: %w", f.Describe(), err))
	}
	out, err := d.seal()
	if err != nil {
		return "", actions.Permanent(fmt.Errorf("%s: %w", f.Describe(), err))
	}
	if err := replaceFile(f.spec.File, before, out); err != nil {
		return "", err
	}
	// Verified: the file on disk decrypts, MAC and all, to the new values.
	after, err := f.read()
	if err != nil {
		return "", err
	}
	back, err := f.open(after, f.Describe()+" as written")
	if err != nil {
		return "", err
	}
	if !back.holds(want) {
		return "", actions.Retryable(fmt.Errorf("%s does not hold the new values when read back: someone wrote it meanwhile", f.Describe()))
	}
	n := back.tree.Metadata.MasterKeyCount()
	plural := "s"
	if n == 1 {
		plural = ""
	}
	return fmt.Sprintf("%s replaced, re-encrypted for the file's %d recipient%s", strings.Join(sortedKeys(f.spec.Keys), ", "), n, plural), nil
}

// replaceFile writes data beside path and renames it over path, so that a
// reader (or a crash) sees the old file or the new one, never half of one.
// It keeps the file's mode, and refuses when the file is no longer the
// one read (before): someone wrote it meanwhile.
func replaceFile(path string, before, data []byte) error {
	info, err := os.Stat(path)
	if err != nil {
		return actions.Permanent(fmt.Errorf("write SOPS file %s: %w", path, err))
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".stanch-*")
	if err != nil {
		return actions.Permanent(fmt.Errorf("write SOPS file %s: %w", path, err))
	}
	defer os.Remove(tmp.Name()) // once renamed, there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return actions.Retryable(fmt.Errorf("write SOPS file %s: %w", path, err))
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return actions.Permanent(fmt.Errorf("write SOPS file %s: %w", path, err))
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return actions.Retryable(fmt.Errorf("write SOPS file %s: %w", path, err))
	}
	if err := tmp.Close(); err != nil {
		return actions.Retryable(fmt.Errorf("write SOPS file %s: %w", path, err))
	}
	now, err := os.ReadFile(path)
	if err != nil {
		return actions.Permanent(fmt.Errorf("write SOPS file %s: %w", path, err))
	}
	if string(now) != string(before) {
		return actions.Retryable(fmt.Errorf("write SOPS file %s: someone changed it meanwhile; nothing was changed", path))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return actions.Permanent(fmt.Errorf("write SOPS file %s: %w", path, err))
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		_ = dir.Sync() // make the rename durable where the system allows
		dir.Close()
	}
	return nil
}
