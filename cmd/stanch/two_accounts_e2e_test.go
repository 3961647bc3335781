package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/record"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
)

// Issue 10: a key leaked in account B, reached through a response role, while
// stanch's own account A has a user of the same name with a secret of the
// same name. Every step of the example playbook that touches a principal must
// act in B: nothing may change in A, and the leaked key must really be gone
// from B when the run says it succeeded.

const (
	stanchAccount          = "111122223333"
	leakAccount            = "444455556666"
	responseRoleExternalID = "ext-7d3e1b9c"
	ciBotUser              = "ci-bot"
	ciBotSecretName        = "iam-user/ci-bot"
	oncallApprover         = "security-oncall"
)

// twoAccounts is one variant of the scenario: where AWS answers, and how the
// test reads each account and stanch's calls from outside stanch.
type twoAccounts struct {
	awsURL    string   // AWS_ENDPOINT_URL for stanch
	githubURL string   // a sandbox serving the GitHub API under /api/v3/
	awsEnv    []string // stanch's own credentials, of account A
	a, b      string   // the two accounts
	keyA      string   // ci-bot's key in A, which must stay as it is
	leaked    string   // ci-bot's key in B, the one that leaked
	// secretA and versionA are A's secret's AWSCURRENT before the run.
	secretA, versionA string
	// secrets are secret values that must never be printed.
	secrets []string
	// approvals are the steps the run asks approval for, in order.
	approvals []string
	// keys returns ci-bot's keys in an account with their statuses.
	keys func(t *testing.T, account string) map[string]string
	// secret returns the AWSCURRENT value and version of ci-bot's secret.
	secret func(t *testing.T, account string) (value, version string)
	// calls returns every AWS call stanch made, in order.
	calls func() []awsCall
	// more checks what only this variant can see.
	more func(t *testing.T)
}

// awsCall is one AWS API call stanch made.
type awsCall struct {
	At      time.Time
	Service string
	Action  string
	Account string // the account the call acted in
	Key     string // the access key id that signed it
	// RequestID is the id the backend answered with, where the test
	// sees the answer (moto, through the recording proxy).
	RequestID string
	Params    map[string]string
	Status    int
	// Changed is true when the call changed state; where the backend
	// cannot tell (moto), a successful call of a state-changing action.
	Changed bool
}

func (c awsCall) String() string {
	var params []string
	for _, k := range slices.Sorted(maps.Keys(c.Params)) {
		params = append(params, k+"="+c.Params[k])
	}
	return fmt.Sprintf("%s %s:%s(%s) by %s -> %d", c.Account, c.Service, c.Action, strings.Join(params, ", "), c.Key, c.Status)
}

// changesState says whether an AWS action may change state: everything but
// the reads (Get…, List…, Describe…, Lookup…) and AssumeRole, whose session
// changes nothing in the account.
func changesState(action string) bool {
	for _, read := range []string{"Get", "BatchGet", "List", "Describe", "Lookup"} {
		if strings.HasPrefix(action, read) {
			return false
		}
	}
	return action != "AssumeRole"
}

func TestLeakedKeyInAnotherAccountIsHandledThere(t *testing.T) {
	t.Parallel()
	for name, variant := range map[string]func(*testing.T) twoAccounts{
		"sandbox": sandboxTwoAccounts,
		"moto":    motoTwoAccounts,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			respondInOtherAccount(t, variant(t))
		})
	}
}

// respondInOtherAccount drives the scenario as a user would: stanch serve
// with the example playbook receives GitHub's webhook, security-oncall
// approves every step the run asks for with stanch approve, and the test
// then looks at both accounts.
func respondInOtherAccount(t *testing.T, w twoAccounts) {
	dir := t.TempDir()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	config := filepath.Join(dir, "stanch.yaml")
	require.NoError(t, os.WriteFile(config, []byte("aws:\n  response_roles:\n    arn: arn:aws:iam::{account}:role/stanch-responder\n    external_id_env: STANCH_EXTERNAL_ID\n"), 0o600))
	e := &e2e{t: t, bin: stanchBinary(t), url: w.awsURL, dir: dir, db: "file:" + filepath.Join(dir, "stanch.db"), root: root}
	env := append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"AWS_ENDPOINT_URL=" + w.awsURL,
		"AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
		"STANCH_CONFIG=" + config,
		"STANCH_EXTERNAL_ID=" + responseRoleExternalID,
		"STANCH_GITHUB_WEBHOOK_SECRET=" + githubSecret,
		"STANCH_GITHUB_TOKEN=" + sandboxGitHubToken,
		"STANCH_GITHUB_API_URL=" + w.githubURL + "/api/v3/",
	}, w.awsEnv...)

	serve := startServeProcess(t, e.bin, env, "--playbooks", e.example("playbooks/aws-key-leaked.yaml"), "--config", config, "--database", e.db, "--log-level", "info")
	created := []byte(`{"action":"created","alert":{"number":7,"secret_type":"aws_access_key_id","secret_type_display_name":"Amazon AWS Access Key ID","html_url":"https://github.com/acme/build-tools/security/secret-scanning/7"},
"repository":{"id":2,"name":"build-tools","full_name":"acme/build-tools","private":true},"organization":{"login":"acme"},"sender":{"login":"octocat"}}`)
	require.Equal(t, http.StatusOK, signedGitHub(t, serve.base+"/hooks/github", "secret_scanning_alert", "d-two-accounts", created, githubSecret))

	runID := waitForRun(t, e, env, serve)
	var asked []string
	outputs := map[string]string{} // what stanch printed, searched for secrets below
	var shown shownRun
	deadline := time.Now().Add(6 * time.Minute)
	for {
		shown = showRun(t, e, env, runID)
		if runner.Terminal(runner.RunStatus(shown.Run.Status)) {
			break
		}
		if step := shown.Run.WaitingStep; runner.RunStatus(shown.Run.Status) == runner.RunWaitingApproval && step != "" && !slices.Contains(asked, step) {
			res := e.stanch(env, "approve", runID, step, "--by", oncallApprover, "--database", e.db)
			require.Equal(t, 0, res.code, "approve %s\nstdout:\n%s\nstderr:\n%s", step, res.stdout, res.stderr)
			require.Contains(t, res.stdout, "approved by "+oncallApprover)
			asked = append(asked, step)
			outputs["stanch approve "+step] = res.stdout + res.stderr
			continue
		}
		require.True(t, time.Now().Before(deadline), "run %s is still %s (waiting on %q) after 6 minutes; approved %v\n%s\nserve log:\n%s",
			runID, shown.Run.Status, shown.Run.WaitingStep, asked, shown.steps(), serve.stderr.String())
		time.Sleep(200 * time.Millisecond)
	}
	serve.stop(t)
	calls := w.calls()
	report := fmt.Sprintf("run %s %s, approved %v\nsteps:\n%s\nAWS calls that change state:\n%s\nafterwards:\n%s%s", runID, shown.Run.Status, asked, shown.steps(), stateChanges(calls),
		w.describe(t, w.a), w.describe(t, w.b))

	// 1. Nothing at all is changed in A.
	var inA []string
	for _, c := range calls {
		if c.Account == w.a && (c.Changed || changesState(c.Action)) {
			inA = append(inA, c.String())
		}
	}
	require.Empty(t, inA, "stanch's own account %s is not the key's: no state-changing call may be made there\n%s", w.a, report)

	// 2. A's ci-bot and its secret are as they were.
	require.Equal(t, map[string]string{w.keyA: "Active"}, w.keys(t, w.a), "ci-bot in %s keeps its one key\n%s", w.a, report)
	valueA, version := w.secret(t, w.a)
	require.Equal(t, w.versionA, version, "%s in %s keeps its AWSCURRENT version\n%s", ciBotSecretName, w.a, report)
	require.Equal(t, w.secretA, valueA, "%s in %s keeps its value\n%s", ciBotSecretName, w.a, report)

	// 3. In B the leaked key is gone, replaced by one new Active key that
	// the secret holds.
	keysB := w.keys(t, w.b)
	require.NotContains(t, keysB, w.leaked, "the leaked key must be deleted from %s\n%s", w.b, report)
	require.Len(t, keysB, 1, "ci-bot in %s has exactly the new key: %v\n%s", w.b, keysB, report)
	value, _ := w.secret(t, w.b)
	var stored struct{ UserName, AccessKeyId, SecretAccessKey string }
	require.NoError(t, json.Unmarshal([]byte(value), &stored))
	require.Equal(t, ciBotUser, stored.UserName)
	require.Equal(t, map[string]string{stored.AccessKeyId: "Active"}, keysB, "%s in %s holds ci-bot's new key as AWSCURRENT\n%s", ciBotSecretName, w.b, report)
	require.NotEqual(t, w.leaked, stored.AccessKeyId)
	require.Len(t, stored.SecretAccessKey, 40)

	// 4. The run succeeded, and what it says of the deletion is what
	// happened in B: one deletion of the leaked key, made there, by the
	// delete step unless the rotation had to make room.
	require.Equal(t, string(runner.RunSucceeded), shown.Run.Status, report)
	require.Equal(t, w.approvals, asked, "the steps that asked for approval\n%s", report)
	var deletions []awsCall
	for _, c := range calls {
		if c.Action == "DeleteAccessKey" && c.Params["AccessKeyId"] == w.leaked && c.Changed {
			deletions = append(deletions, c)
		}
	}
	require.Len(t, deletions, 1, "the leaked key is deleted once\n%s", report)
	require.Equal(t, w.b, deletions[0].Account, report)
	rotate, del := shown.step("rotate"), shown.step("delete")
	require.NotNil(t, rotate, report)
	require.NotNil(t, del, report)
	if deletions[0].At.After(rotate.EndedAt) {
		require.Equal(t, "done", del.Outcome, "the delete step deleted the key: %s\n%s", del.Message, report)
		require.Equal(t, true, del.Outputs["deleted"], report)
		require.NotContains(t, shown.raw, "already deleted", report)
	} else {
		require.Equal(t, "already", del.Outcome, "the rotation deleted the key to make room: %s\n%s", del.Message, report)
	}
	if w.more != nil {
		w.more(t)
	}

	// 5. The run's record has every IAM, STS and Secrets Manager call the
	// backend answered, in the account it acted in, with the request id
	// the backend gave where the test saw it.
	requireCallsRecorded(t, e, env, runID, calls, report)

	// 6. No secret is printed: not the leaked key's, not the new key's.
	secrets := append([]string{stored.SecretAccessKey}, w.secrets...)
	var storedA struct{ SecretAccessKey string }
	if json.Unmarshal([]byte(valueA), &storedA) == nil && storedA.SecretAccessKey != "" {
		secrets = append(secrets, storedA.SecretAccessKey)
	}
	outputs["stanch serve's stdout"] = serve.stdout.String()
	outputs["stanch serve's stderr"] = serve.stderr.String()
	outputs["stanch runs show --json"] = shown.raw
	for i, secret := range secrets {
		for name, out := range outputs {
			// Not require.NotContains, which would print the secret.
			require.False(t, strings.Contains(out, secret), "%s shows secret access key #%d", name, i)
		}
	}
}

// describe says what ci-bot has in an account, without its secrets.
func (w twoAccounts) describe(t *testing.T, account string) string {
	value, version := w.secret(t, account)
	var stored struct{ AccessKeyId string }
	_ = json.Unmarshal([]byte(value), &stored)
	return fmt.Sprintf("  %s: ci-bot's keys %v; %s AWSCURRENT (version %s) holds %s\n", account, w.keys(t, account), ciBotSecretName, version, stored.AccessKeyId)
}

// stateChanges lists the calls that changed state, or may have.
func stateChanges(calls []awsCall) string {
	var b strings.Builder
	for _, c := range calls {
		if c.Changed || changesState(c.Action) {
			b.WriteString("  " + c.String() + "\n")
		}
	}
	return b.String()
}

// sandboxTwoAccounts is the scenario in one sandbox: A's stanch-responder is
// stanch; B trusts it through the role stanch-responder; B's CloudTrail shows
// the leaked key creating a user with a key of its own.
func sandboxTwoAccounts(t *testing.T) twoAccounts {
	const (
		keyA, secretA            = "AKIACIBOTACCOUNTA001", "ciBotAccountASecretCiBotAccountASecret01"
		leaked, leakedSecret     = "AKIACIBOTLEAKEDB0001", "ciBotLeakedSecretCiBotLeakedSecretKeyB01"
		backdoor, backdoorSecret = "AKIABACKDOORB0000001", "backdoorSecretBackdoorSecretBackdoorSec1"
	)
	valueA := fmt.Sprintf(`{"UserName":"ci-bot","AccessKeyId":%q,"SecretAccessKey":%q}`, keyA, secretA)
	valueB := fmt.Sprintf(`{"UserName":"ci-bot","AccessKeyId":%q,"SecretAccessKey":%q}`, leaked, leakedSecret)
	seedYAML := fmt.Sprintf(`
accounts:
  - id: %[1]q
    users:
      - name: stanch-responder
        keys: [{id: %[3]s, secret: %[4]s}]
      - name: ci-bot
        keys: [{id: %[5]s, secret: %[6]s}]
    secrets:
      - name: iam-user/ci-bot
        value: '%[7]s'
  - id: %[2]q
    users:
      - name: ci-bot
        keys: [{id: %[8]s, secret: %[9]s}]
      - name: backdoor
        keys: [{id: %[10]s, secret: %[11]s}]
    roles:
      - name: stanch-responder
        trusted_accounts: [%[1]q]
        external_id: %[12]s
    secrets:
      - name: iam-user/ci-bot
        value: '%[13]s'
    events:
      - {region: us-east-1, ago: 50m, name: GetCallerIdentity, source: sts.amazonaws.com, access_key_id: %[8]s, user: ci-bot, source_ip: 198.51.100.7, read_only: true}
      - region: us-east-1
        ago: 49m
        name: CreateUser
        source: iam.amazonaws.com
        access_key_id: %[8]s
        user: ci-bot
        source_ip: 198.51.100.7
        request_parameters: {userName: backdoor}
        resources: [{type: "AWS::IAM::User", name: backdoor}]
      - region: us-east-1
        ago: 48m
        name: CreateAccessKey
        source: iam.amazonaws.com
        access_key_id: %[8]s
        user: ci-bot
        source_ip: 198.51.100.7
        response_elements: {accessKey: {accessKeyId: %[10]s, userName: backdoor, status: Active}}
github:
  token: %[14]s
  alerts:
    - repo: acme/build-tools
      number: 7
      secret_type: aws_access_key_id
      secret: %[8]s
      locations:
        - {path: .github/workflows/release.yml, line: 31, commit: 9b2e4f6a1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f}
`, stanchAccount, leakAccount, sandbox.ResponderKeyID, sandbox.ResponderSecret, keyA, secretA, valueA, leaked, leakedSecret, backdoor, backdoorSecret, responseRoleExternalID, valueB, sandboxGitHubToken)
	sb := testkit.Sandbox(t, testkit.Seed(t, seedYAML))
	_, versionA, ok := sb.SecretValue(stanchAccount, "us-east-1", ciBotSecretName, "AWSCURRENT")
	require.True(t, ok)
	return twoAccounts{
		awsURL:    sb.URL,
		githubURL: sb.URL,
		awsEnv:    []string{"AWS_ACCESS_KEY_ID=" + sandbox.ResponderKeyID, "AWS_SECRET_ACCESS_KEY=" + sandbox.ResponderSecret},
		a:         stanchAccount,
		b:         leakAccount,
		keyA:      keyA,
		leaked:    leaked,
		secretA:   valueA,
		versionA:  versionA,
		secrets:   []string{secretA, leakedSecret, backdoorSecret, sandbox.ResponderSecret},
		approvals: []string{"rotate", "delete", "contain_derived"},
		keys: func(t *testing.T, account string) map[string]string {
			for _, a := range sb.State().Accounts {
				for _, u := range a.Users {
					if a.ID == account && u.Name == ciBotUser {
						keys := map[string]string{}
						for _, k := range u.Keys {
							keys[k.ID] = k.Status
						}
						return keys
					}
				}
			}
			t.Fatalf("no user %s in account %s", ciBotUser, account)
			return nil
		},
		secret: func(t *testing.T, account string) (string, string) {
			value, version, ok := sb.SecretValue(account, "us-east-1", ciBotSecretName, "AWSCURRENT")
			require.True(t, ok, "%s in %s has no AWSCURRENT", ciBotSecretName, account)
			return value, version
		},
		calls: func() []awsCall {
			var out []awsCall
			for _, c := range sb.Calls() {
				if c.Service == "github" || c.Service == "slack" {
					continue
				}
				out = append(out, awsCall{At: c.Time, Service: c.Service, Action: c.Action, Account: c.Account, Key: c.CallerKey, Params: c.Params, Status: c.Status, Changed: c.Effective})
			}
			return out
		},
		more: func(t *testing.T) {
			// The credential the leaked key created, contained in B too.
			status, ok := sb.KeyStatus(leakAccount, backdoor)
			require.True(t, ok)
			require.Equal(t, "Inactive", status, "contain_derived deactivates the backdoor key in %s", leakAccount)
			alert, ok := sb.GitHubAlert("acme/build-tools", 7)
			require.True(t, ok)
			require.Equal(t, "revoked", alert.Resolution)
		},
	}
}

// shownRun is `stanch runs show RUN --json`.
type shownRun struct {
	Run struct {
		Status      string `json:"status"`
		WaitingStep string `json:"waiting_step"`
		FailedStep  string `json:"failed_step"`
		Error       string `json:"error"`
	} `json:"run"`
	Steps []map[string]any `json:"steps"`
	raw   string
}

// shownStep is the part of a step record the test reads.
type shownStep struct {
	ID, Status, Outcome, Message, Error string
	Outputs                             map[string]any
	EndedAt                             time.Time
}

// step returns a step of the run, nil when the run has no such step.
func (r shownRun) step(id string) *shownStep {
	for _, m := range r.Steps {
		if s := parseStep(m); s.ID == id {
			return &s
		}
	}
	return nil
}

// parseStep reads a step record, matching its field names loosely (StepID
// or step_id).
func parseStep(m map[string]any) shownStep {
	get := func(name string) any {
		for k, v := range m {
			if strings.EqualFold(strings.ReplaceAll(k, "_", ""), name) {
				return v
			}
		}
		return nil
	}
	str := func(name string) string { s, _ := get(name).(string); return s }
	s := shownStep{ID: str("stepid"), Status: str("status"), Outcome: str("outcome"), Message: str("message"), Error: str("error")}
	s.Outputs, _ = get("outputs").(map[string]any)
	s.EndedAt, _ = time.Parse(time.RFC3339Nano, str("endedat"))
	return s
}

// steps is one line per step, for failure messages.
func (r shownRun) steps() string {
	var b strings.Builder
	for _, m := range r.Steps {
		s := parseStep(m)
		detail := s.Message
		if s.Error != "" {
			detail = s.Error
		}
		if len(detail) > 300 {
			detail = detail[:300] + "…"
		}
		fmt.Fprintf(&b, "  %-22s %-18s %-8s %s\n", s.ID, s.Status, s.Outcome, detail)
	}
	if r.Run.Error != "" {
		fmt.Fprintf(&b, "  run error (step %s): %s\n", r.Run.FailedStep, r.Run.Error)
	}
	return b.String()
}

func showRun(t *testing.T, e *e2e, env []string, runID string) shownRun {
	t.Helper()
	res := e.stanch(env, "runs", "show", runID, "--json", "--database", e.db)
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	var r shownRun
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &r), res.stdout)
	r.raw = res.stdout + res.stderr
	return r
}

// waitForRun waits for the webhook's alert to start its one run.
func waitForRun(t *testing.T, e *e2e, env []string, serve *serveProcess) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		res := e.stanch(env, "runs", "list", "--json", "--database", e.db)
		require.Equal(t, 0, res.code, res.stderr)
		var runs []struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &runs), res.stdout)
		if len(runs) > 0 {
			require.Len(t, runs, 1, res.stdout)
			return runs[0].ID
		}
		require.True(t, time.Now().Before(deadline), "no run a minute after the webhook; serve log:\n%s", serve.stderr.String())
		time.Sleep(100 * time.Millisecond)
	}
}

// requireCallsRecorded checks the record of runID (stanch runs export)
// against the AWS calls the backend saw.
func requireCallsRecorded(t *testing.T, e *e2e, env []string, runID string, seen []awsCall, report string) {
	t.Helper()
	res := e.stanch(env, "runs", "export", "--database", e.db)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	var rec record.Run
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(res.stdout)), &rec))
	require.Equal(t, runID, rec.Run.ID)
	compared := map[string]bool{"iam": true, "sts": true, "secretsmanager": true}
	var want, got []string
	ids := map[string]bool{}
	for _, c := range seen {
		if compared[c.Service] {
			want = append(want, c.Service+":"+c.Action)
			// An id that looks like a secret (moto's 52 letters) is
			// redacted like one.
			if c.RequestID != "" && alert.RedactText(c.RequestID) == c.RequestID {
				ids[c.RequestID] = true
			}
		}
	}
	recorded := map[string]bool{}
	identified := false // whether STS has said whose stanch's credentials are
	for _, c := range rec.Calls {
		if !compared[c.Service] {
			continue
		}
		got = append(got, c.Service+":"+c.Operation)
		recorded[c.RequestID] = true
		require.NotEmpty(t, c.RequestID, "%+v", c)
		require.NotEmpty(t, c.StepID, "%+v", c)
		// Only STS calls in stanch's own account made before STS said
		// which account that is are recorded without one.
		if c.Account == "" {
			require.False(t, identified, "%+v", c)
			require.Equal(t, "sts", c.Service, "%+v", c)
		}
		identified = identified || c.Operation == "GetCallerIdentity"
	}
	// The alert is resolved on GitHub: its calls are there too, each with
	// GitHub's request id.
	var github []string
	for _, c := range rec.Calls {
		if c.Service == "github" {
			require.Regexp(t, `^[0-9A-F]{4}(:[0-9A-F]{4}){3}:[0-9A-F]{8}$`, c.RequestID, "%+v", c)
			github = append(github, c.Operation)
		}
	}
	require.Contains(t, github, "PATCH /api/v3/repos/acme/build-tools/secret-scanning/alerts/7", report)
	slices.Sort(want)
	slices.Sort(got)
	require.Equal(t, want, got, "every AWS call the backend answered is in the record, and no other\n%s", report)
	for id := range ids {
		require.True(t, recorded[id], "the record has the backend's request id %s", id)
	}
	for _, c := range rec.Calls {
		for _, s := range seen {
			if c.RequestID != "" && c.RequestID == s.RequestID && c.Account != "" {
				require.Equal(t, s.Account, c.Account, "call %s %s acted in %s", c.Service, c.Operation, s.Account)
			}
		}
	}
}
