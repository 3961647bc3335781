package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

func TestLookupEventsPagesAndLimits(t *testing.T) {
	t.Parallel()
	f := setup(t)
	now := time.Now().UTC()
	var events []SeedEvent
	for i := range 120 {
		events = append(events, SeedEvent{Region: "us-west-2", Time: now.Add(-time.Duration(i) * time.Minute), Name: "DescribeInstances", AccessKeyID: leakedKey, User: "ci-bot"})
	}
	require.NoError(t, f.sb.AddEvents(accountID, events...))
	// Paging within the rate: the SDK's retries stay on, for a connection
	// that a loaded machine drops (seen under -race); nothing here is
	// throttled, which the sandbox's call log shows below.
	paging := cloudtrail.NewFromConfig(f.config(ResponderKeyID, ResponderSecret), func(o *cloudtrail.Options) { o.Region = "us-west-2" })
	c := cloudtrail.NewFromConfig(f.config(ResponderKeyID, ResponderSecret), func(o *cloudtrail.Options) { o.Region = "us-west-2"; o.RetryMaxAttempts = 1 })
	ctx := context.Background()
	in := &cloudtrail.LookupEventsInput{LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: cttypes.LookupAttributeKeyAccessKeyId, AttributeValue: aws.String(leakedKey)}}}
	pages := cloudtrail.NewLookupEventsPaginator(paging, in)
	total, n := 0, 0
	var newest time.Time
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		require.NoError(t, err)
		if n == 0 {
			newest = aws.ToTime(page.Events[0].EventTime)
		}
		total += len(page.Events)
		n++
		var record map[string]any
		require.NoError(t, json.Unmarshal([]byte(aws.ToString(page.Events[0].CloudTrailEvent)), &record))
		require.Equal(t, "us-west-2", record["awsRegion"])
		time.Sleep(600 * time.Millisecond) // stay within 2 requests/s
	}
	require.Equal(t, 120, total)
	require.Equal(t, 3, n, "50 per page")
	for _, call := range f.sb.Calls() {
		if call.Action == "LookupEvents" {
			require.Equal(t, 200, call.Status, "paging within 2 requests/s is never throttled")
		}
	}
	require.WithinDuration(t, now, newest, time.Second, "newest first")

	// Above 2 requests/s the sandbox throttles, as CloudTrail does.
	var throttled bool
	for range 10 {
		_, err := c.LookupEvents(ctx, in)
		var ae smithy.APIError
		if err != nil && !errors.As(err, &ae) {
			// This client does not retry, so that throttling shows: a
			// connection a loaded machine dropped (seen under -race in
			// CI) is not what this checks.
			t.Logf("not an answer: %v", err)
			continue
		}
		if err != nil {
			require.Equal(t, "ThrottlingException", ae.ErrorCode())
			throttled = true
		}
	}
	require.True(t, throttled)

	_, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: []cttypes.LookupAttribute{
		{AttributeKey: cttypes.LookupAttributeKeyAccessKeyId, AttributeValue: aws.String(leakedKey)},
		{AttributeKey: cttypes.LookupAttributeKeyEventName, AttributeValue: aws.String("x")}}})
	require.Error(t, err)
}

func TestDescribeRegions(t *testing.T) {
	t.Parallel()
	f := setup(t)
	out, err := ec2.NewFromConfig(f.config(ResponderKeyID, ResponderSecret)).DescribeRegions(context.Background(), &ec2.DescribeRegionsInput{})
	require.NoError(t, err)
	var names []string
	for _, r := range out.Regions {
		names = append(names, aws.ToString(r.RegionName))
	}
	require.Equal(t, []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1"}, names)
}

func TestAWSCLIParsesCloudTrailAndEC2(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI (aws) is not on PATH; the machine image provides it")
	}
	f := setup(t)
	require.NoError(t, f.sb.AddEvents(accountID, SeedEvent{Region: "us-east-1", Time: time.Now().Add(-time.Minute), Name: "CreateUser", AccessKeyID: leakedKey, User: "ci-bot",
		Resources: []SeedResource{{Type: "AWS::IAM::User", Name: "backdoor"}}}))
	run := func(args ...string) map[string]any {
		cmd := exec.Command("aws", append(args, "--endpoint-url", f.url, "--output", "json", "--region", "us-east-1")...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+ResponderKeyID, "AWS_SECRET_ACCESS_KEY="+ResponderSecret,
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "aws %v: %s", args, out)
		var v map[string]any
		require.NoError(t, json.Unmarshal(out, &v), string(out))
		return v
	}
	events := run("cloudtrail", "lookup-events", "--lookup-attributes", "AttributeKey=AccessKeyId,AttributeValue="+leakedKey)["Events"].([]any)
	require.Len(t, events, 1)
	e := events[0].(map[string]any)
	require.Equal(t, "CreateUser", e["EventName"])
	require.Equal(t, "backdoor", e["Resources"].([]any)[0].(map[string]any)["ResourceName"])
	regions := run("ec2", "describe-regions")["Regions"].([]any)
	require.Len(t, regions, 5)
	require.Equal(t, "us-east-1", regions[0].(map[string]any)["RegionName"])
}
