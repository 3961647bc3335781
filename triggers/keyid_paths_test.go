package triggers

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

const (
	keyA = "AKIAIOSFODNN7EXAMPLE"
	keyB = "AKIAI44QH8DHBEXAMPLE"
)

// malformedKeyIDs are what the red-team pass had accepted with 200, after
// which the run failed at identify and the key stayed active; plus terminal
// escapes, which went on to stanch's output.
var malformedKeyIDs = []string{
	"key=" + keyA,
	keyA + " " + keyB,
	"x\n" + keyA,
	keyA + "\x1b[2J",
	keyA + "\u202e",
}

func guardDutyWithKey(t *testing.T, id string) string {
	t.Helper()
	key, err := json.Marshal(id)
	require.NoError(t, err)
	return strings.Replace(string(load(t, "guardduty-accesskey.json")), `"accessKeyId": "`+keyA+`"`, `"accessKeyId": `+string(key), 1)
}

// TestAlertJSONKeyIDIsNormalisedOrRefused: `stanch run --alert` and
// `stanch ingest` read a stanch Alert through ParseDocument.
func TestAlertJSONKeyIDIsNormalisedOrRefused(t *testing.T) {
	t.Parallel()
	rep, err := ParseDocument([]byte(`{"source":"manual","credential":{"id":" `+keyA+`\n"}}`), now, SourceFiles{})
	require.NoError(t, err)
	require.Equal(t, keyA, rep.Alerts[0].Credential.ID)
	for _, id := range malformedKeyIDs {
		doc, _ := json.Marshal(map[string]any{"source": "manual", "credential": map[string]string{"id": id}})
		_, err := ParseDocument(doc, now, SourceFiles{})
		require.ErrorIs(t, err, alert.ErrInvalid, "%q", id)
		require.ErrorContains(t, err, "credential.id")
		require.NotContains(t, err.Error(), id)
	}
}

// TestEventBridgeRefusesMalformedKeyIDs: a finding whose key id field
// holds no one key id is answered 400, naming the field and not its value,
// on the EventBridge and SNS endpoints; whitespace around an id is trimmed.
func TestEventBridgeRefusesMalformedKeyIDs(t *testing.T) {
	t.Parallel()
	sink := &accepted{}
	eb := NewEventBridge("X-Stanch-Token", []byte("s3cret"), sink, nil)
	signer, err := sandbox.NewSNSSigner()
	require.NoError(t, err)
	sns, _, _ := snsEndpoint(t, signer, sink)
	postEB := func(body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/hooks/aws/eventbridge", strings.NewReader(body))
		r.Header.Set("X-Stanch-Token", "s3cret")
		rec := httptest.NewRecorder()
		eb.ServeHTTP(rec, r)
		return rec
	}
	postSNS := func(body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		sns.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hooks/aws/sns", strings.NewReader(string(signer.Notification(topic, body, 2)))))
		return rec
	}
	for _, post := range []func(string) *httptest.ResponseRecorder{postEB, postSNS} {
		for _, id := range malformedKeyIDs {
			rec := post(guardDutyWithKey(t, id))
			require.Equal(t, http.StatusBadRequest, rec.Code, "%q: %s", id, rec.Body.String())
			require.Contains(t, rec.Body.String(), "resource.accessKeyDetails.accessKeyId is not an AWS access key id")
			require.NotContains(t, rec.Body.String(), id)
		}
		require.Empty(t, sink.alerts)
	}
	rec := postEB(guardDutyWithKey(t, " "+keyA+" "))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, keyA, sink.alerts[0].Credential.ID)

	// AWS Health: two different key ids name no one key.
	health := strings.Replace(string(load(t, "health-credentials-exposed.json")), `"resources": ["`+keyA+`"]`, `"resources": ["`+keyB+`"]`, 1)
	rec = postEB(health)
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "the event names more than one access key id")

	// An event of another kind is still only ignored.
	rec = postEB(`{"id":"x","source":"aws.ec2","detail-type":"x","detail":{}}`)
	require.Equal(t, http.StatusOK, rec.Code)
}

// recordingSink keeps what an SQS poller accepted and what it recorded as
// not acted on.
type recordingSink struct {
	accepted
	mu      sync.Mutex
	unacted []string
}

func (s *recordingSink) RecordUnacted(_ context.Context, source, dedupKey, reference, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unacted = append(s.unacted, source+"|"+dedupKey+"|"+reference+"|"+reason)
	return nil
}

// On SQS nobody answers the sender: a refused finding is kept where
// people look (stanch alerts list), and its message deleted.
func TestSQSKeepsRefusedFindings(t *testing.T) {
	t.Parallel()
	sb := testkit.Sandbox(t, testkit.Seed(t, `
accounts:
  - id: "111122223333"
    users: [`+sandbox.ResponderSeedUser+`]
    queues: [stanch-alerts]
`))
	ctx := context.Background()
	client := sqs.NewFromConfig(sb.AWSConfig())
	queue := sb.URL + "/111122223333/stanch-alerts"
	_, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: aws.String(guardDutyWithKey(t, "key="+keyA))})
	require.NoError(t, err)
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 1})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1)

	sink := &recordingSink{}
	p := &SQSPoller{Client: client, QueueURL: queue, Sink: sink, Log: slog.New(slog.DiscardHandler), Now: time.Now}
	m := out.Messages[0]
	p.handle(ctx, aws.ToString(m.MessageId), aws.ToString(m.Body), aws.ToString(m.ReceiptHandle))
	require.Empty(t, sink.alerts)
	require.Len(t, sink.unacted, 1)
	require.Contains(t, sink.unacted[0], "resource.accessKeyDetails.accessKeyId is not an AWS access key id")
	require.NotContains(t, sink.unacted[0], "key="+keyA)
	require.Zero(t, sb.QueueDepth("111122223333", "stanch-alerts"), "the message is deleted")
}

// Scanners: a finding whose secret holds two different key ids names no
// one key; the others in the report are still read.
func TestScannerFindingsWithTwoKeyIDs(t *testing.T) {
	t.Parallel()
	lines := strings.Split(strings.TrimSpace(string(load(t, "trufflehog.jsonl"))), "\n")
	two := strings.Replace(lines[0], `"Raw":"`+keyA+`"`, `"Raw":"`+keyA+` `+keyB+`"`, 1)
	rep, err := ParseTruffleHog([]byte(two+"\n"+lines[1]), now)
	require.NoError(t, err)
	require.Len(t, rep.Alerts, 1)
	require.Len(t, rep.Skipped, 1)
	require.Contains(t, rep.Skipped[0].Reason, "more than one AWS access key id")

	report := strings.Replace(string(load(t, "gitleaks.json")), `"Secret": "`+keyA+`"`, `"Secret": "`+keyA+` `+keyB+`"`, 1)
	rep, err = ParseGitleaks([]byte(report), now, SourceFiles{})
	require.NoError(t, err)
	var reasons []string
	for _, s := range rep.Skipped {
		reasons = append(reasons, s.Reason)
	}
	require.Contains(t, strings.Join(reasons, "\n"), "more than one AWS access key id")
	for _, a := range rep.Alerts {
		require.NotEqual(t, keyB, a.Credential.ID)
	}
}

// GitHub: the literal of a key id alert is one key id, or the alert cannot
// be acted on (with what to do); whitespace around it is trimmed.
func TestGitHubLiteralIsOneKeyID(t *testing.T) {
	t.Parallel()
	sb := testkit.Sandbox(t, testkit.Seed(t, `
accounts:
  - id: "111122223333"
    users: [`+sandbox.ResponderSeedUser+`]
github:
  token: ghp_literal
  alerts:
    - {repo: acme/api, number: 1, secret_type: aws_access_key_id, secret: "`+keyA+` `+keyB+`"}
    - {repo: acme/api, number: 2, secret_type: aws_access_key_id, secret: "key=`+keyA+`"}
    - {repo: acme/api, number: 3, secret_type: aws_access_key_id, secret: " `+keyA+`\n"}
`))
	client := sb.GitHubClient(t, "ghp_literal")
	r := &GitHubResolver{Client: client}
	for _, n := range []string{"1", "2"} {
		_, err := r.Resolve(context.Background(), []byte(`{"repo":"acme/api","number":`+n+`,"action":"created"}`))
		require.ErrorIs(t, err, alert.ErrUnactionable, n)
		require.ErrorContains(t, err, "the secret literal of this aws_access_key_id alert is not one AWS access key id")
		require.NotContains(t, err.Error(), keyB)
	}
	alerts, err := r.Resolve(context.Background(), []byte(`{"repo":"acme/api","number":3,"action":"created"}`))
	require.NoError(t, err)
	require.Equal(t, keyA, alerts[0].Credential.ID)
}

// TestGuardDutyKeyPrefixDecidesItsKind: an InstanceCredentialExfiltration
// finding that names an AKIA key made it a role session, so the playbook
// for keys never ran.
func TestGuardDutyKeyPrefixDecidesItsKind(t *testing.T) {
	t.Parallel()
	finding := strings.NewReplacer(`"accessKeyId": "ASIAIOSFODNN7SESSION"`, `"accessKeyId": "`+keyA+`"`).Replace(string(load(t, "guardduty-instance-exfiltration.json")))
	rep, err := ParseDocument([]byte(finding), now, SourceFiles{})
	require.NoError(t, err)
	require.Len(t, rep.Alerts, 1)
	require.Equal(t, alert.CredentialAccessKey, rep.Alerts[0].Credential.Kind, "AKIA is an IAM user's key, whatever the finding's type")
	require.Equal(t, alert.CredentialRoleSession, parse(t, "guardduty-instance-exfiltration.json")[0].Credential.Kind)

	// A sample finding has no prefix to go by: its type still informs.
	sample := strings.Replace(finding, `"accessKeyId": "`+keyA+`"`, `"accessKeyId": "GeneratedFindingAccessKeyId"`, 1)
	rep, err = ParseDocument([]byte(sample), now, SourceFiles{})
	require.NoError(t, err)
	require.True(t, rep.Alerts[0].Test)
	require.Equal(t, alert.CredentialRoleSession, rep.Alerts[0].Credential.Kind)
}
