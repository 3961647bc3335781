package sandbox

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/nacl/box"
)

// GitHub Actions secrets of seeded repositories, their environments and
// organisations: the public key (GET …/secrets/public-key), list, get, put
// (201 created, 204 updated) and delete, under
//   - /repos/{o}/{r}/actions/secrets/…
//   - /repos/{o}/{r}/environments/{env}/secrets/… and
//     /repositories/{id}/environments/{env}/secrets/… (go-github v60's path)
//   - /orgs/{org}/actions/secrets/… (visibility, selected_repository_ids).
//
// Each scope has its own Curve25519 key pair. The sandbox keeps the sealed
// value as received and never opens it; a test opens it with
// ActionsPrivateKey. The call log names the scope, the secret, the key id
// and the sealed value's size, never the value.

// actionsScope is a repository ("owner/name"), an environment
// ("owner/name/env") or an organisation ("org").
type actionsScope struct {
	name      string
	keyID     string
	pub, priv *[32]byte
	secrets   map[string]*actionsSecret // by upper-case name
}

type actionsSecret struct {
	name             string
	sealed           []byte
	keyID            string
	created, updated time.Time
	visibility       string
	selected         []int64
}

// scope returns the named scope, making it and its key pair if need be.
func (g *githubState) scope(name string) *actionsScope {
	if a, ok := g.actions[name]; ok {
		return a
	}
	a := &actionsScope{name: name, secrets: map[string]*actionsSecret{}}
	a.newKey()
	g.actions[name] = a
	return a
}

func (a *actionsScope) newKey() {
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	a.pub, a.priv, a.keyID = pub, priv, randomDigits(18)
}

// seed sets secrets sealed with the scope's key.
func (a *actionsScope) seed(secrets map[string]string, visibility string, at time.Time) {
	for name, value := range secrets {
		sealed, _ := box.SealAnonymous(nil, []byte(value), a.pub, rand.Reader)
		a.secrets[strings.ToUpper(name)] = &actionsSecret{name: strings.ToUpper(name), sealed: sealed, keyID: a.keyID, created: at, updated: at, visibility: visibility}
	}
}

var actionsSecretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// actionsSecretNameProblem says what is wrong with a secret name, or "".
func actionsSecretNameProblem(name string) string {
	switch {
	case !actionsSecretName.MatchString(name):
		return "secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_), and must not start with a number"
	case strings.HasPrefix(strings.ToUpper(name), "GITHUB_"):
		return "secret names must not start with the GITHUB_ prefix"
	}
	return ""
}

func (s *Sandbox) serveEnvSecrets(c *githubCall, repo *gitRepo, env string, tail []string) {
	c.call.params["environment"] = env
	var scope *actionsScope
	if repo != nil {
		c.call.params["repo"] = repo.name
		scope = s.github.actions[repo.name+"/"+env]
	}
	if scope == nil {
		c.call.action = "EnvironmentSecrets"
		c.fail(http.StatusNotFound, "Not Found")
		return
	}
	s.serveActionsSecrets(c, scope, "Env", "secrets", tail)
}

// serveActionsSecrets answers the public key, list, get, put and delete of
// a scope's secrets; kind is Repo, Env or Org, perm the App permission they
// need.
func (s *Sandbox) serveActionsSecrets(c *githubCall, scope *actionsScope, kind, perm string, tail []string) {
	m := c.r.Method
	switch {
	case len(tail) == 1 && tail[0] == "public-key" && m == http.MethodGet:
		c.call.action = "Get" + kind + "PublicKey"
		if c.permitted(perm, "read") {
			c.call.params["key_id"] = scope.keyID
			c.answer(http.StatusOK, false, map[string]string{"key_id": scope.keyID, "key": base64.StdEncoding.EncodeToString(scope.pub[:])})
		}
	case len(tail) == 0 && m == http.MethodGet:
		c.call.action = "List" + kind + "Secrets"
		if !c.permitted(perm, "read") {
			return
		}
		list := []map[string]any{}
		for _, name := range sortedKeys(scope.secrets) {
			list = append(list, scope.secrets[name].view(c.api(), scope, kind))
		}
		q := c.r.URL.Query()
		perPage, _ := strconv.Atoi(q.Get("per_page"))
		page, _ := strconv.Atoi(q.Get("page"))
		c.answer(http.StatusOK, false, map[string]any{"total_count": len(list), "secrets": paginate(list, page, perPage)})
	case len(tail) == 1 && (m == http.MethodGet || m == http.MethodPut || m == http.MethodDelete):
		name := strings.ToUpper(tail[0])
		c.call.params["secret_name"] = name
		c.call.action = map[string]string{http.MethodGet: "Get", http.MethodPut: "CreateOrUpdate", http.MethodDelete: "Delete"}[m] + kind + "Secret"
		level := "write"
		if m == http.MethodGet {
			level = "read"
		}
		if !c.permitted(perm, level) {
			return
		}
		sec := scope.secrets[name]
		switch m {
		case http.MethodGet:
			if sec == nil {
				c.fail(http.StatusNotFound, "Not Found")
				return
			}
			c.answer(http.StatusOK, false, sec.view(c.api(), scope, kind))
		case http.MethodDelete:
			if sec == nil {
				c.fail(http.StatusNotFound, "Not Found")
				return
			}
			delete(scope.secrets, name)
			c.noContent(true)
		default:
			s.putActionsSecret(c, scope, kind, name)
		}
	default:
		c.fail(http.StatusNotFound, "Not Found")
	}
}

func (s *Sandbox) putActionsSecret(c *githubCall, scope *actionsScope, kind, name string) {
	var in struct {
		EncryptedValue *string `json:"encrypted_value"`
		KeyID          *string `json:"key_id"`
		Visibility     string  `json:"visibility"`
		Selected       []int64 `json:"selected_repository_ids"`
	}
	if !c.decode(&in) {
		return
	}
	if msg := actionsSecretNameProblem(name); msg != "" {
		c.invalid("Secret", "name", msg)
		return
	}
	if in.EncryptedValue == nil || in.KeyID == nil {
		c.invalid("Secret", "encrypted_value", "encrypted_value and key_id are both required")
		return
	}
	sealed, err := base64.StdEncoding.DecodeString(*in.EncryptedValue)
	c.call.params["key_id"], c.call.params["size"] = *in.KeyID, strconv.Itoa(len(sealed))
	if err != nil || len(sealed) < box.AnonymousOverhead {
		c.invalid("Secret", "encrypted_value", "encrypted_value must be a value sealed with the public key (crypto_box_seal), in standard base64")
		return
	}
	if *in.KeyID != scope.keyID {
		c.invalid("Secret", "key_id", "key_id does not match the current public key: get the public key again")
		return
	}
	if kind == "Org" {
		c.call.params["visibility"] = in.Visibility
		switch in.Visibility {
		case "all", "private":
			in.Selected = nil
		case "selected":
			for _, id := range in.Selected {
				if !slices.ContainsFunc(sortedKeys(s.github.git), func(n string) bool { return s.github.git[n].id == id }) {
					c.invalid("Secret", "selected_repository_ids", fmt.Sprintf("repository %d does not exist", id))
					return
				}
			}
			c.call.params["selected_repository_ids"] = strings.Trim(fmt.Sprint(in.Selected), "[]")
		default:
			c.invalid("Secret", "visibility", "visibility must be all, private or selected")
			return
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	sec, exists := scope.secrets[name]
	if !exists {
		sec = &actionsSecret{name: name, created: now}
		scope.secrets[name] = sec
	}
	sec.sealed, sec.keyID, sec.updated = sealed, scope.keyID, now
	if kind == "Org" {
		sec.visibility, sec.selected = in.Visibility, slices.Clone(in.Selected)
	}
	if exists {
		c.noContent(true)
		return
	}
	c.answer(http.StatusCreated, true, map[string]any{})
}

func (sec *actionsSecret) view(api string, scope *actionsScope, kind string) map[string]any {
	v := map[string]any{"name": sec.name, "created_at": sec.created.Format(time.RFC3339), "updated_at": sec.updated.Format(time.RFC3339)}
	if kind == "Org" {
		v["visibility"] = sec.visibility
		if sec.visibility == "selected" {
			v["selected_repositories_url"] = api + "/orgs/" + scope.name + "/actions/secrets/" + sec.name + "/repositories"
		}
	}
	return v
}

// ActionsSecretView is an Actions secret as the sandbox holds it: the
// sealed value as received (open it with ActionsPrivateKey), never the
// plaintext.
type ActionsSecretView struct {
	Name string
	// Sealed is the decoded encrypted_value: the output of crypto_box_seal.
	Sealed                []byte
	KeyID                 string
	Created, Updated      time.Time
	Visibility            string // organisation secrets
	SelectedRepositoryIDs []int64
}

// ActionsSecret returns a secret of a scope: "owner/name" for a repository,
// "owner/name/env" for an environment, "org" for an organisation.
func (s *Sandbox) ActionsSecret(scope, name string) (ActionsSecretView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.github.actions[scope]
	if !ok {
		return ActionsSecretView{}, false
	}
	sec, ok := a.secrets[strings.ToUpper(name)]
	if !ok {
		return ActionsSecretView{}, false
	}
	return ActionsSecretView{Name: sec.name, Sealed: slices.Clone(sec.sealed), KeyID: sec.keyID, Created: sec.created, Updated: sec.updated,
		Visibility: sec.visibility, SelectedRepositoryIDs: slices.Clone(sec.selected)}, true
}

// ActionsSecretNames returns the names of a scope's secrets, sorted.
func (s *Sandbox) ActionsSecretNames(scope string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.github.actions[scope]; ok {
		return sortedKeys(a.secrets)
	}
	return nil
}

// ActionsKey is a scope's current key pair.
type ActionsKey struct {
	ID      string
	Public  *[32]byte
	Private *[32]byte
}

// Open opens a sealed value (box.OpenAnonymous).
func (k ActionsKey) Open(sealed []byte) ([]byte, error) {
	out, ok := box.OpenAnonymous(nil, sealed, k.Public, k.Private)
	if !ok {
		return nil, errors.New("sandbox: the value was not sealed with this key")
	}
	return out, nil
}

// ActionsPrivateKey returns a scope's current key pair (see ActionsSecret
// for scope names).
func (s *Sandbox) ActionsPrivateKey(scope string) (ActionsKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.github.actions[scope]
	if !ok {
		return ActionsKey{}, false
	}
	pub, priv := *a.pub, *a.priv
	return ActionsKey{ID: a.keyID, Public: &pub, Private: &priv}, true
}

// RotateActionsKey gives a scope a new key pair, as GitHub does from time
// to time: a put with the old key_id is then refused (422), and secrets
// already set stay sealed with the old key.
func (s *Sandbox) RotateActionsKey(scope string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.github.actions[scope]
	if !ok {
		return fmt.Errorf("sandbox: no Actions scope %q", scope)
	}
	a.newKey()
	return nil
}
