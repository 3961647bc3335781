package aws

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/apicall"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

const (
	backdoorKey     = "AKIABACKDOORKEY00001"
	attackerSession = "ASIAATTACKERSESSION1"
)

// attackScenario: the leaked key is used in three regions; the attacker
// creates a user with its own access key and mints a session token; both
// derived credentials are used too.
func attackScenario(now time.Time) []sandbox.SeedEvent {
	at := func(m int) time.Time { return now.Add(time.Duration(-m) * time.Minute) }
	leaked := "AKIAIOSFODNN7EXAMPLE"
	return []sandbox.SeedEvent{
		{Region: "us-east-1", Time: at(50), Name: "GetCallerIdentity", Source: "sts.amazonaws.com", AccessKeyID: leaked, User: "ci-bot", SourceIP: "198.51.100.7", UserAgent: "aws-cli/2.15.0", ReadOnly: true},
		{Region: "us-east-1", Time: at(49), Name: "CreateUser", AccessKeyID: leaked, User: "ci-bot", SourceIP: "198.51.100.7", RequestParameters: map[string]any{"userName": "backdoor"},
			Resources: []sandbox.SeedResource{{Type: "AWS::IAM::User", Name: "backdoor"}}},
		{Region: "us-east-1", Time: at(48), Name: "CreateAccessKey", AccessKeyID: leaked, User: "ci-bot", SourceIP: "198.51.100.7",
			ResponseElements: map[string]any{"accessKey": map[string]any{"accessKeyId": backdoorKey, "userName": "backdoor", "status": "Active"}}},
		{Region: "us-east-1", Time: at(47), Name: "GetSessionToken", Source: "sts.amazonaws.com", AccessKeyID: leaked, User: "ci-bot", SourceIP: "198.51.100.7",
			ResponseElements: map[string]any{"credentials": map[string]any{"accessKeyId": attackerSession, "expiration": "Nov 29, 2026 12:00:00 AM"}}},
		{Region: "us-west-2", Time: at(46), Name: "ListBuckets", Source: "s3.amazonaws.com", AccessKeyID: leaked, User: "ci-bot", SourceIP: "198.51.100.7", ReadOnly: true},
		{Region: "eu-west-1", Time: at(45), Name: "RunInstances", Source: "ec2.amazonaws.com", AccessKeyID: leaked, User: "ci-bot", SourceIP: "198.51.100.7", ErrorCode: "Client.UnauthorizedOperation"},
		{Region: "us-east-1", Time: at(40), Name: "StopLogging", Source: "cloudtrail.amazonaws.com", AccessKeyID: backdoorKey, User: "backdoor", SourceIP: "203.0.113.9"},
		{Region: "us-west-2", Time: at(39), Name: "GetSecretValue", Source: "secretsmanager.amazonaws.com", AccessKeyID: attackerSession, User: "ci-bot", SourceIP: "203.0.113.9", ReadOnly: true},
		// Someone else's activity, which must not be counted.
		{Region: "us-east-1", Time: at(30), Name: "ListUsers", AccessKeyID: "AKIAI44QH8DHBEXAMPLE", User: "ci-bot", ReadOnly: true},
	}
}

func impactBackend(t *testing.T) (backend, *sandbox.Sandbox) {
	t.Helper()
	b, sb := sandboxBackend(t)
	now := time.Now().UTC()
	require.NoError(t, sb.AddEvents("111122223333", attackScenario(now)...))
	// Enough history in one region to need several pages.
	var more []sandbox.SeedEvent
	for i := range 120 {
		more = append(more, sandbox.SeedEvent{Region: "us-west-2", Time: now.Add(-time.Duration(2+i) * time.Hour), Name: "DescribeInstances", Source: "ec2.amazonaws.com",
			AccessKeyID: "AKIAIOSFODNN7EXAMPLE", User: "ci-bot", SourceIP: "192.0.2.1", ReadOnly: true})
	}
	require.NoError(t, sb.AddEvents("111122223333", more...))
	return b, sb
}

func TestImpactFollowsDerivedCredentials(t *testing.T) {
	t.Parallel()
	b, _ := impactBackend(t)
	var mu sync.Mutex
	var progress []string
	p, err := b.actions(t)["aws.cloudtrail_impact"].Decode(map[string]any{"access_key_id": b.leaked, "regions": "all"})
	require.NoError(t, err)
	// What the client saw of each attempt, as the run's record keeps it:
	// a connection a loaded machine dropped under an answer is a failed
	// attempt here, though the sandbox logged the answer it sent.
	var calls []apicall.Call
	ctx := apicall.WithRecorder(context.Background(), func(c apicall.Call) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, c)
	})
	res, err := b.actions(t)["aws.cloudtrail_impact"].Do(ctx, actions.Env{Progress: func(s string) {
		mu.Lock()
		progress = append(progress, s)
		mu.Unlock()
	}}, p)
	require.NoError(t, err)
	out := res.Outputs

	// Every seeded event of the three credentials was read: 8 + 120.
	require.Equal(t, 128, out["events"])
	require.Equal(t, map[string]int{"us-east-1": 5, "us-west-2": 122, "eu-west-1": 1}, out["by_region"])
	require.Equal(t, 1, out["denied"])
	require.Equal(t, []string{"eu-west-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2"}, out["regions"])
	require.Empty(t, out["regions_failed"])

	derived := out["derived_credentials"].([]map[string]any)
	require.Len(t, derived, 2)
	byID := map[string]map[string]any{}
	for _, d := range derived {
		byID[d["access_key_id"].(string)] = d
	}
	require.Equal(t, "access_key", byID[backdoorKey]["kind"])
	require.Equal(t, "backdoor", byID[backdoorKey]["user_name"])
	require.Equal(t, "session", byID[attackerSession]["kind"])

	counts := out["finding_counts"].(map[string]int)
	require.Equal(t, 1, counts["defence_evasion"])
	require.Equal(t, 3, counts["persistence"]) // CreateUser, CreateAccessKey, GetSessionToken
	require.Equal(t, 2, counts["data_access"]) // ListBuckets, GetSecretValue
	findings := out["findings"].([]map[string]any)
	require.Equal(t, "StopLogging", findings[0]["event"], "the most urgent category comes first")
	require.Equal(t, backdoorKey, findings[0]["access_key_id"])

	// The limiter keeps every region at CloudTrail's 2 requests/s. On a
	// loaded machine a request may still reach the sandbox a little early
	// (the one before it was slow in transit) and be throttled, or lose
	// its connection; the SDK retries it, so what counts is that every page
	// was read once and that throttles stayed rare.
	pages, throttled := 0, 0
	for _, c := range calls {
		if c.Operation != "LookupEvents" {
			continue
		}
		switch {
		case c.Outcome == apicall.OK:
			pages++
		case c.Error == "ThrottlingException":
			throttled++
		}
	}
	require.Equal(t, 5*3+2, pages, "one page per region per credential, three in us-west-2 for the leaked key")
	require.LessOrEqual(t, throttled, 3, "the limiter must keep LookupEvents under CloudTrail's limit")
	require.NotEmpty(t, progress)
	require.Contains(t, res.Message, "2 derived credential(s)")
}

func TestImpactSurvivesAFailedRegion(t *testing.T) {
	t.Parallel()
	b, _ := impactBackend(t)
	// The account has not enabled ap-east-1: that region fails, the other
	// is still read.
	res, err := testkit.RunAction(t, b.actions(t)["aws.cloudtrail_impact"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "regions": []any{"us-east-1", "ap-east-1"}})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"us-east-1": 5}, res.Outputs["by_region"], "the leaked key's four events and the backdoor key's StopLogging")
	require.Contains(t, res.Outputs["regions_failed"], "ap-east-1")
	require.Contains(t, res.Message, "1 region(s) could not be read: ap-east-1")
}

func TestImpactPlanMakesNoLookup(t *testing.T) {
	t.Parallel()
	b, sb := impactBackend(t)
	a := b.actions(t)["aws.cloudtrail_impact"]
	p, err := a.Decode(map[string]any{"access_key_id": b.leaked})
	require.NoError(t, err)
	plan, err := a.Plan(context.Background(), actions.Env{}, p)
	require.NoError(t, err)
	require.Zero(t, sb.Count("LookupEvents"))
	require.Equal(t, 1, sb.Count("DescribeRegions"))
	require.Contains(t, plan.Summary, "in 5 region(s)")
}

// An AssumeRole session names its role, so aws.contain_derived can revoke
// that role's sessions; a failed call derives nothing.
func TestDerivedFromAssumeRoleNamesTheRole(t *testing.T) {
	t.Parallel()
	e := trailEvent{EventName: "AssumeRole", UserIdentity: struct {
		AccessKeyID string `json:"accessKeyId"`
		UserName    string `json:"userName"`
	}{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", UserName: "ci-bot"},
		RequestParameters: map[string]any{"roleArn": "arn:aws:iam::111122223333:role/deploy", "roleSessionName": "x"},
		ResponseElements:  map[string]any{"credentials": map[string]any{"accessKeyId": "ASIAROLESESSION00001"}}}
	d := derivedFrom(e)
	require.Equal(t, map[string]any{"access_key_id": "ASIAROLESESSION00001", "kind": "session", "user_name": "ci-bot",
		"created_by_event": "AssumeRole", "role_arn": "arn:aws:iam::111122223333:role/deploy"}, d)

	e.ErrorCode = "AccessDenied"
	require.Nil(t, derivedFrom(e))
}
