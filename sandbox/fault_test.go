package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/require"
)

// setupWithFaults serves testdata/seed.yaml with a faults: section added.
func setupWithFaults(t *testing.T, faults string) fixture {
	t.Helper()
	base, err := os.ReadFile("testdata/seed.yaml")
	require.NoError(t, err)
	seed, err := ParseSeed("seed.yaml", append(base, []byte("\n"+faults)...))
	require.NoError(t, err)
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return fixture{sb: sb, url: srv.URL, client: srv.Client()}
}

// quickRetries is the SDK's standard retryer, as stanch uses it, with
// three attempts and no wait between them.
func quickRetries() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 3
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
	})
}

// callsOf returns the statuses of the calls of one action, in order.
func callsOf(sb *Sandbox, service, action string) []int {
	var statuses []int
	for _, c := range sb.Calls() {
		if c.Service == service && c.Action == action {
			statuses = append(statuses, c.Status)
		}
	}
	return statuses
}

func TestSeedFaultsTakeEffect(t *testing.T) {
	t.Parallel()
	f := setupWithFaults(t, `
faults:
  sts: {throttle_rate: 1}
  iam: {error_rate: 1}
  cloudtrail: {latency: 10m}
`)
	ctx := context.Background()
	cfg := f.config(ResponderKeyID, ResponderSecret)
	cfg.Retryer = quickRetries

	// Throttled on every attempt: the SDK retries, then gives up with the
	// throttling error; the call log has one 400 per attempt.
	_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.Equal(t, "Throttling", apiCode(t, err))
	require.Equal(t, []int{400, 400, 400}, callsOf(f.sb, "sts", "GetCallerIdentity"))

	_, err = iam.NewFromConfig(cfg).ListAccessKeys(ctx, &iam.ListAccessKeysInput{})
	require.Equal(t, "ServiceUnavailable", apiCode(t, err))
	require.Equal(t, []int{503, 503, 503}, callsOf(f.sb, "iam", "ListAccessKeys"))

	// The latency holds the answer back: a client that stops waiting sees
	// its own deadline, and the call log records that it went away (499).
	// Nothing here measures time: ten minutes is never reached.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	ct := cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) { o.RetryMaxAttempts = 1 })
	_, err = ct.LookupEvents(short, &cloudtrail.LookupEventsInput{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Eventually(t, func() bool { return len(callsOf(f.sb, "cloudtrail", "LookupEvents")) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, []int{499}, callsOf(f.sb, "cloudtrail", "LookupEvents"))

	// Services without a fault answer as usual.
	_, err = ec2.NewFromConfig(cfg).DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	require.NoError(t, err)
	require.Equal(t, []int{200}, callsOf(f.sb, "ec2", "DescribeRegions"))
	require.Equal(t, map[string]Fault{
		"azurekeyvault": {}, "cloudtrail": {Latency: 10 * time.Minute}, "ec2": {}, "github": {}, "gitlab": {}, "iam": {ErrorRate: 1}, "npm": {},
		"secretsmanager": {}, "slack": {}, "sqs": {}, "sts": {ThrottleRate: 1}, "vault": {},
	}, f.sb.Faults())
}

// do sends one request to the sandbox and returns the status and body.
func (f fixture) do(t *testing.T, method, path, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := f.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

func TestFaultsEndpointSetsAndClears(t *testing.T) {
	t.Parallel()
	f := setupWithFaults(t, "faults:\n  sqs: {latency: 200ms, throttle_rate: 0.25}\n")
	ctx := context.Background()
	cfg := f.config(ResponderKeyID, ResponderSecret)
	cfg.Retryer = quickRetries

	// GET shows every service, the seed's fault included.
	status, body := f.do(t, http.MethodGet, "/_sandbox/faults", "", "")
	require.Equal(t, http.StatusOK, status)
	var all map[string]FaultSpec
	require.NoError(t, json.Unmarshal([]byte(body), &all))
	require.Len(t, all, len(FaultServices))
	require.Equal(t, FaultSpec{Latency: "200ms", ThrottleRate: 0.25}, all["sqs"])
	require.Equal(t, FaultSpec{Latency: "0s"}, all["iam"])

	// PUT, as curl -X PUT -d sends it (a form content type, a JSON body).
	status, body = f.do(t, http.MethodPut, "/_sandbox/faults/iam", "application/x-www-form-urlencoded", `{"throttle_rate": 1}`)
	require.Equal(t, http.StatusOK, status, body)
	require.JSONEq(t, `{"latency": "0s", "error_rate": 0, "throttle_rate": 1}`, body)
	_, err := iam.NewFromConfig(cfg).ListAccessKeys(ctx, &iam.ListAccessKeysInput{})
	require.Equal(t, "Throttling", apiCode(t, err))
	require.Equal(t, []int{400, 400, 400}, callsOf(f.sb, "iam", "ListAccessKeys"))

	// POST replaces the fault as a whole: throttle_rate left out is zero.
	status, body = f.do(t, http.MethodPost, "/_sandbox/faults/iam", "application/json", `{"error_rate": 1}`)
	require.Equal(t, http.StatusOK, status, body)
	_, err = iam.NewFromConfig(cfg).ListAccessKeys(ctx, &iam.ListAccessKeysInput{})
	require.Equal(t, "ServiceUnavailable", apiCode(t, err))
	status, body = f.do(t, http.MethodGet, "/_sandbox/faults/iam", "", "")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"latency": "0s", "error_rate": 1, "throttle_rate": 0}`, body)

	// DELETE one service clears it; the call goes through.
	status, _ = f.do(t, http.MethodDelete, "/_sandbox/faults/iam", "", "")
	require.Equal(t, http.StatusOK, status)
	_, err = iam.NewFromConfig(cfg).ListAccessKeys(ctx, &iam.ListAccessKeysInput{})
	require.NoError(t, err)
	require.Equal(t, []int{400, 400, 400, 503, 503, 503, 200}, callsOf(f.sb, "iam", "ListAccessKeys"))
	require.Equal(t, Fault{Latency: 200 * time.Millisecond, ThrottleRate: 0.25}, f.sb.Faults()["sqs"], "other services keep theirs")

	// DELETE on the collection clears every service.
	status, body = f.do(t, http.MethodDelete, "/_sandbox/faults", "", "")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, json.Unmarshal([]byte(body), &all))
	for name, spec := range all {
		require.Equal(t, FaultSpec{Latency: "0s"}, spec, name)
	}
	for name, fault := range f.sb.Faults() {
		require.Zero(t, fault, name)
	}
}

func TestFaultsEndpointRefusesBadValues(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"unknown service", http.MethodPut, "/_sandbox/faults/iamm", `{"error_rate": 1}`, 404,
			`service "iamm" is not a service the sandbox serves (azurekeyvault, cloudtrail, ec2, github, gitlab, iam, npm, secretsmanager, slack, sqs, sts, vault)`},
		{"rate above 1", http.MethodPut, "/_sandbox/faults/iam", `{"error_rate": 1.5}`, 400,
			"fault for iam: error_rate: 1.5 is not between 0 and 1 (the share of calls answered 503 ServiceUnavailable)"},
		{"negative rate", http.MethodPut, "/_sandbox/faults/iam", `{"throttle_rate": -0.1}`, 400,
			"fault for iam: throttle_rate: -0.1 is not between 0 and 1 (the share of calls answered 400 Throttling)"},
		{"rates above 1 together", http.MethodPut, "/_sandbox/faults/sts", `{"error_rate": 0.6, "throttle_rate": 0.5}`, 400,
			"fault for sts: throttle_rate: error_rate 0.6 and throttle_rate 0.5 add up to more than 1 (all calls)"},
		{"latency without a unit", http.MethodPut, "/_sandbox/faults/iam", `{"latency": "200"}`, 400,
			`fault for iam: latency: "200" is not a duration such as 200ms or 2s`},
		{"negative latency", http.MethodPut, "/_sandbox/faults/iam", `{"latency": "-1s"}`, 400,
			"fault for iam: latency: -1s is negative"},
		{"latency too long", http.MethodPut, "/_sandbox/faults/iam", `{"latency": "1h"}`, 400,
			"fault for iam: latency: 1h is longer than 10m0s (to rehearse an outage, set error_rate: 1)"},
		{"unknown field", http.MethodPut, "/_sandbox/faults/iam", `{"errors_rate": 1}`, 400,
			`fault for iam: the body is not a fault: json: unknown field "errors_rate" (fields: latency, error_rate, throttle_rate)`},
		{"rate as a string", http.MethodPut, "/_sandbox/faults/iam", `{"error_rate": "0.1"}`, 400,
			"fault for iam: the body is not a fault: json: cannot unmarshal string into Go struct field FaultSpec.error_rate of type float64 (fields: latency, error_rate, throttle_rate)"},
		{"not JSON", http.MethodPut, "/_sandbox/faults/iam", `error_rate=1`, 400,
			"fault for iam: the body is not a fault: invalid character 'e' looking for beginning of value (fields: latency, error_rate, throttle_rate)"},
		{"empty body", http.MethodPut, "/_sandbox/faults/iam", ``, 400,
			`fault for iam: the body is empty; send a JSON object such as {"latency":"200ms","error_rate":0.1,"throttle_rate":0.2} (DELETE clears)`},
		{"two objects", http.MethodPut, "/_sandbox/faults/iam", `{"error_rate": 1} {}`, 400,
			"fault for iam: the body holds more than one JSON value"},
		{"PUT on the collection", http.MethodPut, "/_sandbox/faults", `{"error_rate": 1}`, 405,
			"PUT /_sandbox/faults: use GET or DELETE here, and PUT /_sandbox/faults/SERVICE to set one service's fault"},
		{"PATCH", http.MethodPatch, "/_sandbox/faults/iam", `{"error_rate": 1}`, 405,
			"PATCH /_sandbox/faults/iam: use GET, PUT (or POST) or DELETE"},
	} {
		status, body := f.do(t, tc.method, tc.path, "application/json", tc.body)
		require.Equal(t, tc.status, status, tc.name)
		var refusal struct{ Error string }
		require.NoError(t, json.Unmarshal([]byte(body), &refusal), tc.name)
		require.Equal(t, tc.want, refusal.Error, tc.name)
	}
	for name, fault := range f.sb.Faults() {
		require.Zero(t, fault, "a refused request changes nothing (%s)", name)
	}
}

func TestSeedFaultsRefused(t *testing.T) {
	t.Parallel()
	base, err := os.ReadFile("testdata/seed.yaml")
	require.NoError(t, err)
	// The faults: line follows the seed's last line and an empty one.
	faultsLine := strings.Count(string(base), "\n") + 2
	at := func(line, col int) string { return "[" + strconv.Itoa(faultsLine+line) + ":" + strconv.Itoa(col) + "]" }
	for _, tc := range []struct{ faults, want string }{
		{"faults:\n  iamm: {error_rate: 1}\n", at(1, 9) + ` faults: "iamm" is not a service the sandbox serves (azurekeyvault, cloudtrail, ec2, github, gitlab, iam, npm, secretsmanager, slack, sqs, sts, vault)`},
		{"faults:\n  iam:\n    error_rate: 1.5\n", at(2, 17) + " faults: iam: error_rate: 1.5 is not between 0 and 1 (the share of calls answered 503 ServiceUnavailable)"},
		{"faults:\n  iam: {throttle_rate: .nan}\n", at(1, 24) + " faults: iam: throttle_rate: NaN is not between 0 and 1 (the share of calls answered 400 Throttling)"},
		{"faults:\n  cloudtrail: {latency: 200}\n", at(1, 25) + ` faults: cloudtrail: latency: "200" is not a duration such as 200ms or 2s`},
		{"faults:\n  sts: {error_rate: 0.5, throttle_rate: 0.75}\n", at(1, 41) + " faults: sts: throttle_rate: error_rate 0.5 and throttle_rate 0.75 add up to more than 1 (all calls)"},
		{"faults:\n  iam: {latency: 1s, error_rat: 1}\n", at(1, 22) + ` unknown field "error_rat"`},
	} {
		_, err := ParseSeed("seed.yaml", append(append([]byte{}, base...), []byte("\n"+tc.faults)...))
		require.Error(t, err, tc.faults)
		require.Equal(t, "seed seed.yaml: "+tc.want, err.Error(), tc.faults)
	}
	// JSON is YAML too: the error points at the value in a JSON seed as well.
	_, err = ParseSeed("seed.json", []byte(`{"accounts": [{"id": "111122223333", "users": [{"name": "r", "keys": [{"id": "`+ResponderKeyID+`", "secret": "s"}]}]}],
		"faults": {"iam": {"error_rate": 2}}}`))
	require.EqualError(t, err, "seed seed.json: [2:36] faults: iam: error_rate: 2 is not between 0 and 1 (the share of calls answered 503 ServiceUnavailable)")
}

// TestServePrintsFaults checks what stanch sandbox prints about faults,
// then runs the curl command it suggests, as a person would.
func TestServePrintsFaults(t *testing.T) {
	t.Parallel()
	base, err := os.ReadFile("testdata/seed.yaml")
	require.NoError(t, err)
	seed, err := ParseSeed("seed.yaml", append(base, []byte("\nfaults:\n  iam: {throttle_rate: 1}\n")...))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, seed, "127.0.0.1:0", &out, func(url string) { ready <- url }) }()
	url := <-ready
	require.Contains(t, out.String(), "# sandbox fault from the seed: iam latency 0s, error_rate 0, throttle_rate 1\n")
	require.Contains(t, out.String(), "# faults at "+url+"/_sandbox/faults; e.g. curl -X PUT "+url+`/_sandbox/faults/iam -d '{"latency":"200ms","throttle_rate":0.2}', curl -X DELETE `+url+"/_sandbox/faults\n")

	curl, err := exec.LookPath("curl")
	if err == nil {
		res, err := exec.Command(curl, "-sS", "--fail-with-body", "-X", "PUT", url+"/_sandbox/faults/iam", "-d", `{"latency":"200ms","throttle_rate":0.2}`).CombinedOutput()
		require.NoError(t, err, "%s", res)
		require.JSONEq(t, `{"latency": "200ms", "error_rate": 0, "throttle_rate": 0.2}`, string(res))
		res, err = exec.Command(curl, "-sS", "--fail-with-body", url+"/_sandbox/faults").CombinedOutput()
		require.NoError(t, err, "%s", res)
		var all map[string]FaultSpec
		require.NoError(t, json.Unmarshal(res, &all))
		require.Equal(t, FaultSpec{Latency: "200ms", ThrottleRate: 0.2}, all["iam"])
	} else {
		t.Log("curl is not installed: the suggested command is not run")
	}
	cancel()
	require.NoError(t, <-done)
}
