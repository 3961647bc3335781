package triggers

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/sandbox"
)

// plantedKeyField is a secret a sender put where a key id belongs; no
// reason, answer or log may quote it.
const plantedKeyField = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY"

// mixedBatch is an EventBridge batch of one GuardDuty finding stanch acts
// on and four entries it cannot: an event from another source, a finding
// about an instance that names no key, a finding whose accessKeyId holds a
// secret instead of a key id, and an object that is no event at all.
func mixedBatch(t *testing.T) []byte {
	t.Helper()
	finding := string(load(t, "guardduty-accesskey.json"))
	noKey := strings.Replace(finding, `"resourceType": "AccessKey",
      "accessKeyDetails": {
        "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "principalId": "AIDAEXAMPLEPRINCIPAL",
        "userName": "ci-bot",
        "userType": "IAMUser"
      }`, `"resourceType": "Instance", "instanceDetails": {"instanceId": "i-0abc123def4567890"}`, 1)
	noKey = strings.Replace(noKey, "c8b1b3d0-5f1e-4a4f-9b1e-3c2d1e0f9a8b", "noKey-event", 1)
	require.NotEqual(t, finding, noKey)
	secretKey := strings.Replace(finding, `"accessKeyId": "AKIAIOSFODNN7EXAMPLE"`, `"accessKeyId": "`+plantedKeyField+`"`, 1)
	secretKey = strings.Replace(secretKey, "c8b1b3d0-5f1e-4a4f-9b1e-3c2d1e0f9a8b", "secret-in-key-field", 1)
	other := `{"version":"0","id":"ec2-event","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":"111122223333","detail":{"instance-id":"i-0abc","state":"` + plantedKeyField + `"}}`
	return []byte("[" + finding + "," + other + "," + noKey + "," + secretKey + `,{"hello":"` + plantedKeyField + `"}]`)
}

// TestEventBridgeBatchKeepsWhatItCanRead: one unsupported event used to
// cost the whole batch (and EventBridge does not retry a 400). Now the
// finding is read and each other entry is skipped with a reason that names
// fields, never their values.
func TestEventBridgeBatchKeepsWhatItCanRead(t *testing.T) {
	t.Parallel()
	rep, err := ParseEventBridge(mixedBatch(t), now)
	require.NoError(t, err)
	require.Len(t, rep.Alerts, 1)
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", rep.Alerts[0].Credential.ID)
	require.Len(t, rep.Skipped, 4)
	got := map[string]string{}
	for _, s := range rep.Skipped {
		got[s.Where] = s.Reason
		require.False(t, s.NotAFinding)
		require.NotContains(t, s.Reason+s.Where+s.Event, plantedKeyField)
	}
	require.Contains(t, got["event ec2-event"], "source is neither aws.guardduty nor aws.health")
	require.Contains(t, got["event noKey-event"], "names no access key (resource.accessKeyDetails.accessKeyId is missing)")
	require.Contains(t, got["event secret-in-key-field"], "resource.accessKeyDetails.accessKeyId is not an AWS access key id")
	require.Contains(t, got["event 5"], "not an EventBridge event")
	for _, s := range rep.Skipped[:3] {
		require.NotEmpty(t, s.Event, "an event with a readable id is named by it")
	}
}

// TestEventBridgeNothingReadableIsAnError: only a body in which nothing is
// an EventBridge event is refused whole, without quoting it.
func TestEventBridgeNothingReadableIsAnError(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"not json " + plantedKeyField, `{"hello":"` + plantedKeyField + `"}`, `[{"a":1},"` + plantedKeyField + `"]`, `[` + plantedKeyField} {
		_, err := ParseEventBridge([]byte(body), now)
		require.ErrorIs(t, err, ErrNotEventBridge, body)
		require.NotContains(t, err.Error(), plantedKeyField)
	}
	rep, err := ParseEventBridge([]byte(`{"id":"x","source":"aws.ec2","detail-type":"x","detail":{}}`), now)
	require.NoError(t, err, "an event stanch does not act on is read, and ignored")
	require.Empty(t, rep.Alerts)
	require.Len(t, rep.Skipped, 1)
}

// An event id that is not an id is not echoed either.
func TestEventBridgeOddIDsAreNotEchoed(t *testing.T) {
	t.Parallel()
	rep, err := ParseEventBridge([]byte(`{"id":"`+plantedKeyField+`","source":"aws.ec2","detail-type":"x","detail":{}}`), now)
	require.NoError(t, err)
	require.Equal(t, "event 1", rep.Skipped[0].Where)
	require.Empty(t, rep.Skipped[0].Event)
}

// TestGuardDutyS3FindingNamesTheKey: GuardDuty's S3 findings (and EC2 ones
// whose credentials were used) carry accessKeyDetails on a resource that is
// not an AccessKey; the key they name is the one to contain. The resource
// part follows GuardDuty's published S3 sample finding.
func TestGuardDutyS3FindingNamesTheKey(t *testing.T) {
	t.Parallel()
	alerts := parse(t, "guardduty-s3-exfiltration.json")
	require.Len(t, alerts, 1)
	a := alerts[0]
	require.Equal(t, alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: "AKIAIOSFODNN7EXAMPLE", Account: "111122223333", Principal: "ci-bot"}, a.Credential)
	require.Equal(t, alert.KindCredentialMisused, a.Kind)
	require.Equal(t, "guardduty:111122223333:a4c2e8f0b6d1937e5f0a2b4c6d8e0f12", a.DedupKey)
	require.Contains(t, a.Title, "Exfiltration:S3/MaliciousIPCaller")
	require.False(t, a.Test)

	ec2 := strings.Replace(string(load(t, "guardduty-instance-exfiltration.json")), `"resourceType": "AccessKey"`, `"resourceType": "Instance"`, 1)
	rep, err := ParseDocument([]byte(ec2), now, SourceFiles{})
	require.NoError(t, err)
	require.Len(t, rep.Alerts, 1, "an instance finding that names the credentials used is acted on")
	require.Equal(t, "ASIAIOSFODNN7SESSION", rep.Alerts[0].Credential.ID)
}

// TestGuardDutySampleFindingsAreTestsWhateverTheirKey: service.additionalInfo
// says sample: true on every sample finding; such a finding is a test even
// when its key id looks real.
func TestGuardDutySampleFindingsAreTestsWhateverTheirKey(t *testing.T) {
	t.Parallel()
	a := parse(t, "guardduty-s3-sample.json")[0]
	require.True(t, a.Test)
	require.Equal(t, "GeneratedFindingAccessKeyId", a.Credential.ID)

	withRealKey := strings.Replace(string(load(t, "guardduty-accesskey.json")), `"serviceName": "guardduty",`, `"serviceName": "guardduty", "additionalInfo": {"sample": true},`, 1)
	rep, err := ParseDocument([]byte(withRealKey), now, SourceFiles{})
	require.NoError(t, err)
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", rep.Alerts[0].Credential.ID)
	require.True(t, rep.Alerts[0].Test)

	// The API's form of the same marker.
	apiForm := strings.Replace(string(load(t, "guardduty-accesskey.json")), `"serviceName": "guardduty",`, `"serviceName": "guardduty", "additionalInfo": {"value": "{\"sample\":true}", "type": "default"},`, 1)
	rep, err = ParseDocument([]byte(apiForm), now, SourceFiles{})
	require.NoError(t, err)
	require.True(t, rep.Alerts[0].Test)

	require.False(t, parse(t, "guardduty-accesskey.json")[0].Test)
}

// TestSNSMixedBatchStoresWhatItCan: the SNS path answers like the
// EventBridge one: 200, the accepted alerts, and the ignored events.
func TestSNSMixedBatchStoresWhatItCan(t *testing.T) {
	t.Parallel()
	signer, err := sandbox.NewSNSSigner()
	require.NoError(t, err)
	sink := &accepted{}
	h, _, _ := snsEndpoint(t, signer, sink)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hooks/aws/sns", strings.NewReader(string(signer.Notification(topic, string(mixedBatch(t)), 1)))))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Len(t, sink.alerts, 1)
	var answer struct {
		Accepted     []string       `json:"accepted"`
		Ignored      []ignoredEvent `json:"ignored"`
		IgnoredCount int            `json:"ignored_count"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &answer))
	require.Equal(t, []string{"guardduty:111122223333:5ac5a4d1e6d0c3b0a9f8e7d6c5b4a392"}, answer.Accepted)
	require.Len(t, answer.Ignored, 4)
	require.Equal(t, 4, answer.IgnoredCount)
	require.Equal(t, "ec2-event", answer.Ignored[0].Event)
	require.NotContains(t, rec.Body.String(), plantedKeyField)

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hooks/aws/sns", strings.NewReader(string(signer.Notification(topic, `{"hello":"`+plantedKeyField+`"}`, 2)))))
	require.Equal(t, http.StatusBadRequest, rec.Code, "nothing readable is still refused")
	require.NotContains(t, rec.Body.String(), plantedKeyField)
}
