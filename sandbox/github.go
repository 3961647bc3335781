package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The GitHub REST endpoints of secret scanning that stanch reads, in the
// GitHub Enterprise Server layout (/api/v3/…), which go-github uses when
// given a custom URL.

// SeedGitHub is the GitHub side of the sandbox.
type SeedGitHub struct {
	// Token is the one token accepted (Authorization: Bearer or token).
	Token  string            `yaml:"token" json:"token"`
	Alerts []SeedGitHubAlert `yaml:"alerts" json:"alerts"`
}

// SeedGitHubAlert is a secret-scanning alert with its secret literal.
type SeedGitHubAlert struct {
	Repo       string               `yaml:"repo" json:"repo"` // owner/name
	Number     int                  `yaml:"number" json:"number"`
	SecretType string               `yaml:"secret_type" json:"secret_type"`
	Secret     string               `yaml:"secret" json:"secret"`
	State      string               `yaml:"state" json:"state"` // open (default) or resolved
	Locations  []SeedGitHubLocation `yaml:"locations" json:"locations"`
}

// SeedGitHubLocation is where a secret was found in a commit.
type SeedGitHubLocation struct {
	Path   string `yaml:"path" json:"path"`
	Line   int    `yaml:"line" json:"line"`
	Commit string `yaml:"commit" json:"commit"`
}

type githubState struct {
	token  string
	alerts map[string]*SeedGitHubAlert // by "owner/name#number"
}

func newGitHubState(seed *SeedGitHub) *githubState {
	st := &githubState{alerts: map[string]*SeedGitHubAlert{}}
	if seed == nil {
		return st
	}
	st.token = seed.Token
	for i := range seed.Alerts {
		a := seed.Alerts[i]
		if a.State == "" {
			a.State = "open"
		}
		st.alerts[a.Repo+"#"+strconv.Itoa(a.Number)] = &a
	}
	return st
}

func (s *Sandbox) serveGitHub(w http.ResponseWriter, r *http.Request) {
	// /api/v3/repos/{owner}/{repo}/secret-scanning/alerts/{number}[/locations]
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/v3/"), "/"), "/")
	call := &request{service: "github", params: map[string]string{"path": r.URL.Path}}
	s.mu.Lock()
	defer s.mu.Unlock()
	answer := func(status int, v any) {
		call.region = ""
		s.recordLocked(call, status, false)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	if len(parts) == 5 && parts[0] == "repos" && parts[3] == "secret-scanning" && parts[4] == "alerts" && r.Method == http.MethodGet {
		s.listGitHubAlerts(w, r, call, parts[1]+"/"+parts[2], answer)
		return
	}
	if len(parts) < 6 || parts[0] != "repos" || parts[3] != "secret-scanning" || parts[4] != "alerts" || r.Method != http.MethodGet {
		call.action = r.Method + " " + r.URL.Path
		answer(http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	call.action = "GetSecretScanningAlert"
	if len(parts) == 7 && parts[6] == "locations" {
		call.action = "ListSecretScanningAlertLocations"
	}
	auth := r.Header.Get("Authorization")
	if s.github.token == "" || (auth != "Bearer "+s.github.token && auth != "token "+s.github.token) {
		answer(http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
		return
	}
	repo := parts[1] + "/" + parts[2]
	alert, ok := s.github.alerts[repo+"#"+parts[5]]
	if !ok {
		answer(http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	api := "http://" + r.Host + "/api/v3/repos/" + repo + "/secret-scanning/alerts/" + parts[5]
	if call.action == "ListSecretScanningAlertLocations" {
		var locs []map[string]any
		for _, l := range alert.Locations {
			locs = append(locs, map[string]any{"type": "commit", "details": map[string]any{
				"path": l.Path, "start_line": l.Line, "end_line": l.Line, "start_column": 1, "end_column": 41,
				"blob_sha": "b10b" + l.Commit[:min(len(l.Commit), 36)], "commit_sha": l.Commit,
				"blob_url":   "http://" + r.Host + "/api/v3/repos/" + repo + "/git/blobs/b10b",
				"commit_url": "http://" + r.Host + "/api/v3/repos/" + repo + "/git/commits/" + l.Commit,
			}})
		}
		answer(http.StatusOK, locs)
		return
	}
	answer(http.StatusOK, map[string]any{
		"number": alert.Number, "created_at": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339),
		"url": api, "html_url": "https://github.com/" + repo + "/security/secret-scanning/" + parts[5],
		"locations_url": api + "/locations", "state": alert.State, "secret_type": alert.SecretType,
		"secret_type_display_name": fmt.Sprintf("%s (sandbox)", alert.SecretType), "secret": alert.Secret,
		"validity": "active", "publicly_leaked": false, "multi_repo": false,
		"repository": map[string]any{"full_name": repo, "name": parts[2], "owner": map[string]any{"login": parts[1]}},
	})
}

// listGitHubAlerts answers the list of a repository's alerts, filtered by
// ?state=; s.mu is held.
func (s *Sandbox) listGitHubAlerts(w http.ResponseWriter, r *http.Request, call *request, repo string, answer func(int, any)) {
	call.action = "ListSecretScanningAlertsForRepo"
	auth := r.Header.Get("Authorization")
	if s.github.token == "" || (auth != "Bearer "+s.github.token && auth != "token "+s.github.token) {
		answer(http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
		return
	}
	state := r.URL.Query().Get("state")
	list := []map[string]any{}
	for _, a := range s.github.alerts {
		if a.Repo != repo || (state != "" && a.State != state) {
			continue
		}
		list = append(list, map[string]any{"number": a.Number, "state": a.State, "secret_type": a.SecretType,
			"html_url": "https://github.com/" + repo + "/security/secret-scanning/" + strconv.Itoa(a.Number)})
	}
	answer(http.StatusOK, list)
}
