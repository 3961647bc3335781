package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	statusActive   = "Active"
	statusInactive = "Inactive"
)

// Options tune a sandbox.
type Options struct {
	// Latency is added to every AWS call before it is answered, to rehearse
	// against realistic round trips.
	Latency time.Duration
	Logger  *slog.Logger
}

// Sandbox is an http.Handler that answers AWS API calls from its state.
type Sandbox struct {
	log *slog.Logger

	mu       sync.Mutex
	latency  time.Duration
	faults   map[string]Fault // by service
	accounts map[string]*account
	order    []string        // account ids in seed order
	keys     map[string]*key // every access key and session key by id
	// deleted remembers the account of every deleted key: STS reads the
	// account out of any key id, deleted or not.
	deleted map[string]*account
	calls   []Call
	// arrived counts the AWS requests that reached the sandbox, by action,
	// before their latency: a test can act while one is in flight.
	arrived map[string]int
	github  *githubState
	slack   *slackState
	tokens  *tokenState
	vaultKV *vaultKVState
	azure   *azureState // nil without azure in the seed
}

type account struct {
	id      string
	users   map[string]*user
	roles   map[string]*role
	regions []string
	trail   *trail
	secrets map[string]*secret // by region + "/" + name
	queues  map[string]*sqsQueue
	// customerPolicies are the account's customer managed policies, by ARN.
	customerPolicies map[string]*customerPolicy
}

type user struct {
	name     string
	id       string
	created  time.Time
	keys     []*key
	policies map[string]string
	managed  []string // attached managed policy ARNs
}

type role struct {
	name       string
	id         string
	policies   map[string]string
	managed    []string
	trusted    []string
	externalID string
}

type key struct {
	id       string
	secret   string
	status   string
	created  time.Time
	lastUsed *SeedLastUsed
	account  *account
	user     *user // nil for role sessions
	role     *role // set for role sessions
	// expires is set for temporary credentials minted by STS.
	expires time.Time
	token   string
}

// Call is one request the sandbox received.
type Call struct {
	Time      time.Time `json:"time"`
	Service   string    `json:"service"`
	Action    string    `json:"action"`
	Account   string    `json:"account,omitempty"`
	Region    string    `json:"region,omitempty"`
	CallerKey string    `json:"caller_key,omitempty"`
	// Token is the fingerprint (alert.Fingerprint) of the provider token a
	// call to a token endpoint carried; never the token.
	Token  string            `json:"token,omitempty"`
	Params map[string]string `json:"params,omitempty"`
	Status int               `json:"status"`
	// Effective is true when the call changed state.
	Effective bool `json:"effective"`
}

// New returns a sandbox holding seed's state.
func New(seed Seed, opts Options) (*Sandbox, error) {
	if err := seed.validate(); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sandbox{log: log, latency: opts.Latency, faults: map[string]Fault{}, accounts: map[string]*account{}, keys: map[string]*key{}}
	epoch := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, sa := range seed.Accounts {
		a := &account{id: sa.ID, users: map[string]*user{}, roles: map[string]*role{}}
		s.accounts[a.id] = a
		s.order = append(s.order, a.id)
		for _, su := range sa.Users {
			u := &user{name: su.Name, id: newID("AIDA", 17), created: epoch, policies: map[string]string{}}
			for n, d := range su.Policies {
				u.policies[n] = d
			}
			a.users[u.name] = u
			for _, sk := range su.Keys {
				k := &key{id: sk.ID, secret: sk.Secret, status: sk.Status, created: sk.Created, lastUsed: sk.LastUsed, account: a, user: u}
				if k.status == "" {
					k.status = statusActive
				}
				if k.created.IsZero() {
					k.created = epoch
				}
				u.keys = append(u.keys, k)
				s.keys[k.id] = k
			}
		}
		for _, sr := range sa.Roles {
			r := &role{name: sr.Name, id: newID("AROA", 17), policies: map[string]string{}, trusted: sr.TrustedAccounts, externalID: sr.ExternalID}
			for n, d := range sr.Policies {
				r.policies[n] = d
			}
			a.roles[r.name] = r
		}
		a.seedManaged(sa, epoch)
		for _, ss := range sa.Sessions {
			s.keys[ss.ID] = &key{id: ss.ID, secret: ss.Secret, status: statusActive, created: epoch, account: a, role: a.roles[ss.Role]}
		}
		a.regions = sa.Regions
		if len(a.regions) == 0 {
			a.regions = defaultRegions
		}
		a.secrets = map[string]*secret{}
		a.queues = map[string]*sqsQueue{}
		for _, name := range sa.Queues {
			a.queues[name] = &sqsQueue{name: name}
		}
		for _, ss := range sa.Secrets {
			a.addSecret(ss)
		}
		a.trail = newTrail()
		a.trail.add(a.id, sa.Events...)
		for _, g := range sa.EventGenerators {
			a.trail.add(a.id, g.generate()...)
		}
	}
	s.github = newGitHubState(seed.GitHub)
	s.slack = newSlackState(seed.Slack)
	s.tokens = newTokenState(seed.Tokens, seed.TokenLimits)
	s.vaultKV = newVaultKVState(seed.Vault)
	azure, err := newAzureState(seed.Azure)
	if err != nil {
		return nil, err
	}
	s.azure = azure
	for service, spec := range seed.Faults {
		s.faults[service], _ = spec.Fault() // validated above
	}
	return s, nil
}

// SetLatency changes the latency added to every AWS call.
func (s *Sandbox) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// ServeHTTP dispatches a request to the service it is for.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	// Before the AWS protocols: curl -d sends a form-encoded POST.
	case r.URL.Path == faultsPath || strings.HasPrefix(r.URL.Path, faultsPath+"/"):
		s.serveFaults(w, r)
	case r.URL.Path == "/_sandbox/calls" && r.Method == http.MethodGet:
		writeJSON(w, s.Calls())
	case r.URL.Path == "/_sandbox/state" && r.Method == http.MethodGet:
		writeJSON(w, s.State())
	case strings.HasPrefix(r.URL.Path, "/api/v3/"):
		// Each provider names its answers as it does: GitHub's five hex
		// fields, Slack's and GitLab's opaque ids.
		b := newRequestID()
		w.Header().Set("X-GitHub-Request-Id", strings.ToUpper(b[0:4]+":"+b[9:13]+":"+b[14:18]+":"+b[19:23]+":"+b[24:32]))
		s.serveGitHub(w, r)
	case strings.HasPrefix(r.URL.Path, slackPrefix):
		w.Header().Set("X-Slack-Req-Id", strings.ReplaceAll(newRequestID(), "-", ""))
		s.serveSlack(w, r)
	case strings.HasPrefix(r.URL.Path, vaultPrefix):
		s.serveVault(w, r)
	case strings.HasPrefix(r.URL.Path, gitlabPrefix):
		w.Header().Set("X-Request-Id", strings.ToUpper(strings.ReplaceAll(newRequestID(), "-", "")[:26]))
		s.serveGitLab(w, r)
	case strings.HasPrefix(r.URL.Path, npmPrefix):
		s.serveNPM(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"):
		s.serveQuery(w, r)
	case r.Method == http.MethodPost && r.Header.Get("X-Amz-Target") != "":
		s.serveJSON(w, r)
	default:
		http.Error(w, "the sandbox answers AWS Query-protocol POSTs (IAM, STS), GET /_sandbox/calls, GET /_sandbox/state and /_sandbox/faults", http.StatusNotFound)
	}
}

// wait applies the configured latency (the sandbox-wide one, or extra for
// the service), honouring the request's context.
func (s *Sandbox) wait(ctx context.Context, extra time.Duration) error {
	s.mu.Lock()
	d := s.latency + extra
	s.mu.Unlock()
	return sleepCtx(ctx, d)
}

// Calls returns a copy of the call log.
func (s *Sandbox) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Arrived returns how many AWS requests for action have reached the
// sandbox, answered or not: with a latency set, one counted here and not
// in Count is in flight.
func (s *Sandbox) Arrived(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.arrived[action]
}

// Count returns how many calls of action were received.
func (s *Sandbox) Count(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Action == action {
			n++
		}
	}
	return n
}

// EffectiveCount returns how many calls of action changed state.
func (s *Sandbox) EffectiveCount(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Action == action && c.Effective {
			n++
		}
	}
	return n
}

// KeyStatus returns the status of a key of account.
func (s *Sandbox) KeyStatus(accountID, keyID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[keyID]
	if !ok || k.account.id != accountID {
		return "", false
	}
	return k.status, true
}

// StateView is the sandbox's state without secrets.
type StateView struct {
	Accounts []AccountView `json:"accounts"`
	// Slack is the Slack workspace's messages, when the seed has one.
	Slack *SlackView `json:"slack,omitempty"`
	// Vault is the KV v2 mounts' paths and versions, never their data.
	Vault []VaultMountView `json:"vault,omitempty"`
	// AzureKeyVault is the Key Vault vaults' secrets, without values.
	AzureKeyVault []AzureVaultView `json:"azure_key_vault,omitempty"`
}

// AccountView is one account's users and roles.
type AccountView struct {
	ID    string     `json:"id"`
	Users []UserView `json:"users"`
	Roles []RoleView `json:"roles,omitempty"`
}

// UserView is a user's keys and inline policy names.
type UserView struct {
	Name     string    `json:"name"`
	Keys     []KeyView `json:"keys"`
	Policies []string  `json:"policies,omitempty"`
}

// RoleView is a role's inline policy names.
type RoleView struct {
	Name     string   `json:"name"`
	Policies []string `json:"policies,omitempty"`
}

// KeyView is a key's id and status.
type KeyView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// State returns the current state, never secrets.
func (s *Sandbox) State() StateView {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v StateView
	for _, id := range s.order {
		a := s.accounts[id]
		av := AccountView{ID: id}
		for _, name := range sortedKeys(a.users) {
			u := a.users[name]
			uv := UserView{Name: u.name, Keys: []KeyView{}, Policies: sortedKeys(u.policies)}
			for _, k := range u.keys {
				uv.Keys = append(uv.Keys, KeyView{ID: k.id, Status: k.status})
			}
			av.Users = append(av.Users, uv)
		}
		for _, name := range sortedKeys(a.roles) {
			av.Roles = append(av.Roles, RoleView{Name: name, Policies: sortedKeys(a.roles[name].policies)})
		}
		v.Accounts = append(v.Accounts, av)
	}
	v.Slack = s.slack.viewLocked()
	v.Vault = s.vaultKV.viewLocked()
	v.AzureKeyVault = s.azureViewLocked()
	return v
}

// Serve runs a sandbox for seed on addr until ctx ends. It writes to out the
// shell lines that point the AWS SDKs and CLI at it, with the responder's
// credentials (the first account's first user's first key).
func Serve(ctx context.Context, seed Seed, addr string, out io.Writer, ready func(url string)) error {
	sb, err := New(seed, Options{})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sandbox listen %s: %w", addr, err)
	}
	return serve(ctx, sb, seed, ln, out, ready)
}

// ServeListener is Serve on a listener already open: one a parent process
// opened and handed down (stanch sandbox --detach). It closes ln.
func ServeListener(ctx context.Context, seed Seed, ln net.Listener, out io.Writer, ready func(url string)) error {
	sb, err := New(seed, Options{})
	if err != nil {
		ln.Close()
		return err
	}
	return serve(ctx, sb, seed, ln, out, ready)
}

func serve(ctx context.Context, sb *Sandbox, seed Seed, ln net.Listener, out io.Writer, ready func(url string)) error {
	url := "http://" + ln.Addr().String()
	responder := seed.Accounts[0].Users[0].Keys[0]
	// AWS_DEFAULT_REGION too: version 1 of the AWS CLI reads only that one.
	fmt.Fprintf(out, "export AWS_ENDPOINT_URL=%s\nexport AWS_REGION=us-east-1\nexport AWS_DEFAULT_REGION=us-east-1\nexport AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\n",
		url, responder.ID, responder.Secret)
	printGitHubEnv(out, seed.GitHub, url)
	if seed.Slack != nil {
		// No signing secret: the sandbox's Slack sends no clicks of its own.
		fmt.Fprintf(out, "export STANCH_SLACK_API_URL=%s/slack/api/\nexport STANCH_SLACK_TOKEN=%s\n", url, seed.Slack.Token)
	}
	fmt.Fprintf(out, "# sandbox: accounts %s; calls at %s/_sandbox/calls, state at %s/_sandbox/state\n", strings.Join(sb.order, ", "), url, url)
	printFaults(out, seed.Faults, url)
	stopAzure, err := sb.startAzureFor(ln, out)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopAzure()
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 10 * time.Second}
	if ready != nil {
		ready(url)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	case err := <-errc:
		return err
	}
}

// writeStatusJSON answers status with v as JSON, or with no body when v is
// nil, as the token providers' APIs (GitLab, npm, Vault) do.
func writeStatusJSON(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// newID returns prefix followed by n random upper-case letters and digits,
// the shape of AWS access key and unique ids.
func newID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return prefix + string(b)
}

func newSecret() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, 40)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
