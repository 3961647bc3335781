package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

const (
	leakedKey       = "AKIAIOSFODNN7EXAMPLE"
	leakedSecret    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	otherKey        = "AKIAI44QH8DHBEXAMPLE"
	sessionKey      = "ASIAIOSFODNN7SESSION"
	accountID       = "111122223333"
	otherAccount    = "444455556666"
	otherAcctKey    = "AKIAOTHERACCOUNTKEY1"
	otherAcctSecret = "otherSecretOtherSecretOtherSecretOther12"
)

type fixture struct {
	sb  *Sandbox
	url string
	// client has connections of its own: a parallel test closing its
	// server must not close this test's idle connections under it.
	client *http.Client
}

func setup(t *testing.T) fixture {
	t.Helper()
	seed, err := LoadSeed("testdata/seed.yaml")
	require.NoError(t, err)
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	// A connection per request: a kept-alive one was seen closed under a
	// response being read when tests ran in parallel under -race.
	return fixture{sb: sb, url: srv.URL, client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
}

func (f fixture) config(id, secret string) aws.Config {
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(id, secret, ""),
		BaseEndpoint: aws.String(f.url),
	}
	if f.client != nil {
		cfg.HTTPClient = f.client
	}
	return cfg
}

func (f fixture) iam(id, secret string) *iam.Client {
	return iam.NewFromConfig(f.config(id, secret))
}

func (f fixture) sts(id, secret string) *sts.Client {
	return sts.NewFromConfig(f.config(id, secret))
}

func apiCode(t *testing.T, err error) string {
	t.Helper()
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "want an API error, got %v", err)
	return ae.ErrorCode()
}

func TestSTS(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := f.sts(ResponderKeyID, ResponderSecret)
	for id, want := range map[string]string{leakedKey: accountID, sessionKey: accountID, otherAcctKey: otherAccount} {
		out, err := c.GetAccessKeyInfo(ctx, &sts.GetAccessKeyInfoInput{AccessKeyId: aws.String(id)})
		require.NoError(t, err)
		require.Equal(t, want, aws.ToString(out.Account), id)
	}
	who, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.NoError(t, err)
	require.Equal(t, accountID, aws.ToString(who.Account))
	require.Equal(t, "arn:aws:iam::111122223333:user/stanch-responder", aws.ToString(who.Arn))
	require.True(t, strings.HasPrefix(aws.ToString(who.UserId), "AIDA"))
}

func TestAccessKeyLifecycle(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := f.iam(ResponderKeyID, ResponderSecret)

	last, err := c.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(leakedKey)})
	require.NoError(t, err)
	require.Equal(t, "ci-bot", aws.ToString(last.UserName))
	require.Equal(t, "s3", aws.ToString(last.AccessKeyLastUsed.ServiceName))
	require.Equal(t, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), aws.ToTime(last.AccessKeyLastUsed.LastUsedDate))
	never, err := c.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(otherKey)})
	require.NoError(t, err)
	require.Equal(t, "N/A", aws.ToString(never.AccessKeyLastUsed.ServiceName))
	require.Nil(t, never.AccessKeyLastUsed.LastUsedDate)

	list, err := c.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("ci-bot")})
	require.NoError(t, err)
	require.Len(t, list.AccessKeyMetadata, 2)
	require.Equal(t, leakedKey, aws.ToString(list.AccessKeyMetadata[0].AccessKeyId))
	require.Equal(t, iamtypes.StatusTypeActive, list.AccessKeyMetadata[0].Status)

	// The leaked key works until it is deactivated.
	_, err = f.sts(leakedKey, leakedSecret).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.NoError(t, err)

	for range 2 {
		_, err = c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{AccessKeyId: aws.String(leakedKey), Status: iamtypes.StatusTypeInactive, UserName: aws.String("ci-bot")})
		require.NoError(t, err)
	}
	require.Equal(t, 2, f.sb.Count("UpdateAccessKey"))
	require.Equal(t, 1, f.sb.EffectiveCount("UpdateAccessKey"), "the second call changed nothing")
	status, _ := f.sb.KeyStatus(accountID, leakedKey)
	require.Equal(t, "Inactive", status)
	status, _ = f.sb.KeyStatus(accountID, otherKey)
	require.Equal(t, "Active", status)

	_, err = f.sts(leakedKey, leakedSecret).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.Equal(t, "InvalidClientTokenId", apiCode(t, err), "a deactivated key stops working")

	// The two-keys quota, then delete and create.
	_, err = c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("ci-bot")})
	require.Equal(t, "LimitExceeded", apiCode(t, err))
	var limit *iamtypes.LimitExceededException
	require.ErrorAs(t, err, &limit)
	_, err = c.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{AccessKeyId: aws.String(leakedKey), UserName: aws.String("ci-bot")})
	require.NoError(t, err)
	created, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("ci-bot")})
	require.NoError(t, err)
	newID := aws.ToString(created.AccessKey.AccessKeyId)
	require.Regexp(t, `^AKIA[A-Z0-9]{16}$`, newID)
	require.Len(t, aws.ToString(created.AccessKey.SecretAccessKey), 40)
	_, err = f.sts(newID, aws.ToString(created.AccessKey.SecretAccessKey)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.NoError(t, err)

	for _, c := range f.sb.Calls() {
		for k, v := range c.Params {
			require.NotContains(t, v, leakedSecret, k)
		}
	}
}

func TestIAMErrors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := f.iam(ResponderKeyID, ResponderSecret)

	_, err := c.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("nobody")})
	var nse *iamtypes.NoSuchEntityException
	require.ErrorAs(t, err, &nse)

	// A key of another user is not found under this one.
	_, err = c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{AccessKeyId: aws.String(leakedKey), Status: iamtypes.StatusTypeInactive, UserName: aws.String("stanch-responder")})
	require.ErrorAs(t, err, &nse)
	require.Zero(t, f.sb.EffectiveCount("UpdateAccessKey"))

	// Another account's keys are invisible.
	_, err = c.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(otherAcctKey)})
	require.Equal(t, "AccessDenied", apiCode(t, err))
	other := f.iam(otherAcctKey, otherAcctSecret)
	_, err = other.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("ci-bot")})
	require.ErrorAs(t, err, &nse)

	_, err = f.iam("AKIAUNKNOWNUNKNOWN00", "x").ListAccessKeys(ctx, &iam.ListAccessKeysInput{})
	require.Equal(t, "InvalidClientTokenId", apiCode(t, err))

	_, err = c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{AccessKeyId: aws.String(leakedKey), Status: "Disabled", UserName: aws.String("ci-bot")})
	require.Equal(t, "ValidationError", apiCode(t, err))
}

func TestInlinePolicies(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := f.iam(ResponderKeyID, ResponderSecret)
	doc := `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-28T12:00:00Z"}}}}`
	for range 2 {
		_, err := c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("ci-bot"), PolicyName: aws.String("AWSRevokeOlderSessions"), PolicyDocument: aws.String(doc)})
		require.NoError(t, err)
	}
	require.Equal(t, 1, f.sb.EffectiveCount("PutUserPolicy"))
	got, err := c.GetUserPolicy(ctx, &iam.GetUserPolicyInput{UserName: aws.String("ci-bot"), PolicyName: aws.String("AWSRevokeOlderSessions")})
	require.NoError(t, err)
	require.Contains(t, aws.ToString(got.PolicyDocument), "%22Effect%22%3A%22Deny%22", "IAM returns policy documents URL-encoded")
	names, err := c.ListUserPolicies(ctx, &iam.ListUserPoliciesInput{UserName: aws.String("ci-bot")})
	require.NoError(t, err)
	require.Equal(t, []string{"AWSRevokeOlderSessions"}, names.PolicyNames)

	_, err = c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("app-server"), PolicyName: aws.String("AWSRevokeOlderSessions"), PolicyDocument: aws.String(doc)})
	require.NoError(t, err)
	_, err = c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("ci-bot"), PolicyName: aws.String("bad"), PolicyDocument: aws.String("{not json")})
	require.Equal(t, "MalformedPolicyDocument", apiCode(t, err))
	_, err = c.DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: aws.String("ci-bot"), PolicyName: aws.String("AWSRevokeOlderSessions")})
	require.NoError(t, err)
	_, err = c.GetUserPolicy(ctx, &iam.GetUserPolicyInput{UserName: aws.String("ci-bot"), PolicyName: aws.String("AWSRevokeOlderSessions")})
	var nse *iamtypes.NoSuchEntityException
	require.ErrorAs(t, err, &nse)
}

func TestLatencyAndIntrospection(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.sb.SetLatency(50 * time.Millisecond)
	start := time.Now()
	_, err := f.sts(ResponderKeyID, ResponderSecret).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)

	res, err := http.Get(f.url + "/_sandbox/calls")
	require.NoError(t, err)
	defer res.Body.Close()
	var calls []Call
	require.NoError(t, json.NewDecoder(res.Body).Decode(&calls))
	require.Len(t, calls, 1)
	require.Equal(t, "GetCallerIdentity", calls[0].Action)
	require.Equal(t, ResponderKeyID, calls[0].CallerKey)

	state, err := http.Get(f.url + "/_sandbox/state")
	require.NoError(t, err)
	defer state.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(state.Body)
	require.Contains(t, body.String(), leakedKey)
	require.NotContains(t, body.String(), leakedSecret, "state never shows secrets")
}

func TestSeedIsStrict(t *testing.T) {
	t.Parallel()
	_, err := ParseSeed("bad.yaml", []byte("accounts:\n  - id: \"111122223333\"\n    usres: []\n"))
	require.ErrorContains(t, err, "bad.yaml")
	require.ErrorContains(t, err, "usres")
	require.ErrorContains(t, err, "[3:5]")

	_, err = ParseSeed("bad.yaml", []byte("accounts:\n  - id: \"1234\"\n    users: [{name: a, keys: [{id: "+ResponderKeyID+", secret: s}]}]\n"))
	require.ErrorContains(t, err, `account id "1234" is not 12 digits`)

	_, err = ParseSeed("ok.json", []byte(`{"accounts":[{"id":"111122223333","users":[{"name":"a","keys":[{"id":"`+ResponderKeyID+`","secret":"s"}]}]}]}`))
	require.NoError(t, err)
}

func TestServePrintsEnvironment(t *testing.T) {
	t.Parallel()
	seed, err := LoadSeed("testdata/seed.yaml")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, seed, "127.0.0.1:0", &out, func(url string) { ready <- url }) }()
	url := <-ready
	c := sts.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(ResponderKeyID, ResponderSecret, ""), BaseEndpoint: aws.String(url)})
	_, err = c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	require.NoError(t, err)
	cancel()
	require.NoError(t, <-done)
	require.Contains(t, out.String(), "export AWS_ENDPOINT_URL="+url+"\n")
	require.Contains(t, out.String(), "export AWS_ACCESS_KEY_ID="+ResponderKeyID+"\n")
}

// TestAWSCLIParsesResponses has botocore, an independent implementation of
// the same protocols, parse the sandbox's answers.
func TestAWSCLIParsesResponses(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI (aws) is not on PATH; the machine image provides it")
	}
	f := setup(t)
	awsCLI := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command("aws", append(args, "--endpoint-url", f.url, "--output", "json")...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+ResponderKeyID, "AWS_SECRET_ACCESS_KEY="+ResponderSecret, "AWS_REGION=us-east-1",
			"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "aws %v: %s", args, out)
		if len(bytes.TrimSpace(out)) == 0 {
			return nil
		}
		var v map[string]any
		require.NoError(t, json.Unmarshal(out, &v), string(out))
		return v
	}
	info := awsCLI("sts", "get-access-key-info", "--access-key-id", leakedKey)
	require.Equal(t, accountID, info["Account"])
	who := awsCLI("sts", "get-caller-identity")
	require.Equal(t, "arn:aws:iam::111122223333:user/stanch-responder", who["Arn"])
	last := awsCLI("iam", "get-access-key-last-used", "--access-key-id", leakedKey)
	require.Equal(t, "ci-bot", last["UserName"])
	require.Equal(t, "s3", last["AccessKeyLastUsed"].(map[string]any)["ServiceName"])
	awsCLI("iam", "update-access-key", "--user-name", "ci-bot", "--access-key-id", leakedKey, "--status", "Inactive")
	keys := awsCLI("iam", "list-access-keys", "--user-name", "ci-bot")["AccessKeyMetadata"].([]any)
	require.Len(t, keys, 2)
	statuses := map[string]any{}
	for _, k := range keys {
		m := k.(map[string]any)
		statuses[m["AccessKeyId"].(string)] = m["Status"]
	}
	require.Equal(t, map[string]any{leakedKey: "Inactive", otherKey: "Active"}, statuses)
	awsCLI("iam", "put-user-policy", "--user-name", "ci-bot", "--policy-name", "deny", "--policy-document", `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}`)
	pol := awsCLI("iam", "get-user-policy", "--user-name", "ci-bot", "--policy-name", "deny")
	require.Equal(t, "Deny", pol["PolicyDocument"].(map[string]any)["Statement"].(map[string]any)["Effect"], "botocore decodes the URL-encoded document")
	user := awsCLI("iam", "get-user", "--user-name", "ci-bot")
	require.Equal(t, "arn:aws:iam::111122223333:user/ci-bot", user["User"].(map[string]any)["Arn"])
}

func TestFaultsPerService(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	f.sb.SetFault("sts", Fault{ErrorRate: 1})
	c := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.url), Credentials: credentials.NewStaticCredentialsProvider(ResponderKeyID, ResponderSecret, ""), RetryMaxAttempts: 1})
	_, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.Equal(t, "ServiceUnavailable", apiCode(t, err))
	_, err = f.iam(ResponderKeyID, ResponderSecret).ListAccessKeys(ctx, &iam.ListAccessKeysInput{})
	require.NoError(t, err, "other services are unaffected")

	f.sb.SetFault("sts", Fault{ThrottleRate: 1})
	_, err = c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.Equal(t, "Throttling", apiCode(t, err))
	f.sb.SetFault("sts", Fault{})
	_, err = c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.NoError(t, err)

	calls := f.sb.Calls()
	require.Equal(t, "us-east-1", calls[0].Region, "the region comes from the signature")
	require.Equal(t, 503, calls[0].Status)
}

func TestUnknownJSONTarget(t *testing.T) {
	t.Parallel()
	f := setup(t)
	req, err := http.NewRequest(http.MethodPost, f.url, strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", "Nope_2020.DoThing")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	var body map[string]string
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	require.Equal(t, "UnknownOperationException", body["__type"])
}

func TestAssumeRoleAcrossAccounts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := f.sts(ResponderKeyID, ResponderSecret)
	roleARN := "arn:aws:iam::444455556666:role/stanch-responder"

	_, err := c.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("stanch")})
	require.Equal(t, "AccessDenied", apiCode(t, err), "the external id is required")

	out, err := c.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("stanch"), ExternalId: aws.String("ext-4f1c9d2a")})
	require.NoError(t, err)
	creds := out.Credentials
	require.Regexp(t, `^ASIA[A-Z0-9]{16}$`, aws.ToString(creds.AccessKeyId))
	require.True(t, aws.ToTime(creds.Expiration).After(time.Now()))

	assumed := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(f.url),
		Credentials: credentials.NewStaticCredentialsProvider(aws.ToString(creds.AccessKeyId), aws.ToString(creds.SecretAccessKey), aws.ToString(creds.SessionToken))}
	who, err := sts.NewFromConfig(assumed).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.NoError(t, err)
	require.Equal(t, "444455556666", aws.ToString(who.Account))
	require.Equal(t, "arn:aws:sts::444455556666:assumed-role/stanch-responder/stanch-sandbox", aws.ToString(who.Arn))
	last, err := iam.NewFromConfig(assumed).GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String("AKIADEPLOYBOTKEY0001")})
	require.NoError(t, err, "the role acts in its own account")
	require.Equal(t, "deploy-bot", aws.ToString(last.UserName))

	// Without its session token, the session key is refused.
	bare := assumed
	bare.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(creds.AccessKeyId), aws.ToString(creds.SecretAccessKey), "")
	_, err = sts.NewFromConfig(bare).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.Equal(t, "InvalidClientTokenId", apiCode(t, err))

	other := f.sts(otherAcctKey, otherAcctSecret)
	_, err = other.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111122223333:role/app-server"), RoleSessionName: aws.String("x")})
	require.Equal(t, "AccessDenied", apiCode(t, err), "untrusted accounts are refused")
}

func TestGetSessionTokenOutlivesNothingButIsUsable(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	out, err := f.sts(leakedKey, leakedSecret).GetSessionToken(ctx, &sts.GetSessionTokenInput{DurationSeconds: aws.Int32(3600)})
	require.NoError(t, err)
	c := out.Credentials
	session := sts.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(f.url),
		Credentials: credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))})
	who, err := session.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.NoError(t, err)
	require.Equal(t, "arn:aws:iam::111122223333:user/ci-bot", aws.ToString(who.Arn))
	_, err = session.GetSessionToken(ctx, &sts.GetSessionTokenInput{})
	require.Equal(t, "AccessDenied", apiCode(t, err))
}
