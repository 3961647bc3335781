package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// plantedValue stands where a sender put a secret in an event stanch does
// not act on; no answer or log line may quote it.
const plantedValue = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY"

// TestServeEventBridgeBatchKeepsWhatItCanRead posts a batch of an AWS
// Health event stanch acts on, an event from another source and a
// GuardDuty finding that names no key. It used to be answered 400, the
// Health event lost with it (EventBridge does not retry 4xx). Now the
// Health event is stored and contained, and the answer and the log name
// each ignored event with the reason, never a value of the body.
func TestServeEventBridgeBatchKeepsWhatItCanRead(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	const secret = "eventbridge-connection-api-key"
	base, cmd, stderr := e.startServe(t, secret)
	health, err := os.ReadFile(e.testdata("health-credentials-exposed.json"))
	require.NoError(t, err)
	batch := "[" + string(health) +
		`,{"version":"0","id":"ec2-7","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":"111122223333","detail":{"state":"` + plantedValue + `"}}` +
		`,{"version":"0","id":"gd-9","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"111122223333","detail":{"id":"f9","type":"Recon:EC2/PortProbeUnprotectedPort","resource":{"resourceType":"Instance","instanceDetails":{"instanceId":"` + plantedValue + `"}}}}]`

	req, err := http.NewRequest(http.MethodPost, base+"/hooks/aws/eventbridge", bytes.NewReader([]byte(batch)))
	require.NoError(t, err)
	req.Header.Set("X-Stanch-Token", secret)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	var answer struct {
		Accepted []string `json:"accepted"`
		Ignored  []struct {
			Event  string `json:"event"`
			Reason string `json:"reason"`
		} `json:"ignored"`
	}
	require.NoError(t, json.Unmarshal(body, &answer), string(body))
	require.Len(t, answer.Accepted, 1)
	require.Len(t, answer.Ignored, 2)
	require.Equal(t, "ec2-7", answer.Ignored[0].Event)
	require.Contains(t, answer.Ignored[0].Reason, "source is neither aws.guardduty nor aws.health")
	require.Equal(t, "gd-9", answer.Ignored[1].Event)
	require.Contains(t, answer.Ignored[1].Reason, "the finding names no access key")
	e.waitStatus(t, stderr, leakedKey, "Inactive")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	log := stderr.String()
	require.Contains(t, log, `level=WARN msg="event ignored" source=eventbridge event="event ec2-7" reason=`)
	require.Contains(t, log, `event="event gd-9"`)
	require.NotContains(t, string(body), plantedValue)
	require.NotContains(t, log, plantedValue)
}
