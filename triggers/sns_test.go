package triggers

import (
	"bytes"
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/sandbox"
)

const topic = "arn:aws:sns:us-east-1:111122223333:stanch-alerts"

type accepted struct{ alerts []alert.Alert }

func (a *accepted) Accept(_ context.Context, al alert.Alert) error {
	a.alerts = append(a.alerts, al)
	return nil
}

func snsEndpoint(t testing.TB, signer *sandbox.SNSSigner, sink Sink) (*SNS, *[]string, *[]string) {
	h := NewSNS([]string{topic}, sink, nil)
	var fetched, confirmed []string
	h.FetchCert = func(u string) (*x509.Certificate, error) {
		fetched = append(fetched, u)
		return signer.Cert, nil
	}
	h.Confirm = func(u string) error {
		confirmed = append(confirmed, u)
		return nil
	}
	return h, &fetched, &confirmed
}

func postTo(h http.Handler, body []byte) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hooks/aws/sns", bytes.NewReader(body)))
	return rec.Code
}

func TestSNSNotifications(t *testing.T) {
	t.Parallel()
	signer, err := sandbox.NewSNSSigner()
	require.NoError(t, err)
	sink := &accepted{}
	h, fetched, _ := snsEndpoint(t, signer, sink)
	event, err := os.ReadFile("testdata/guardduty-accesskey.json")
	require.NoError(t, err)

	require.Equal(t, http.StatusOK, postTo(h, signer.Notification(topic, string(event), 1)))
	require.Equal(t, http.StatusOK, postTo(h, signer.Notification(topic, string(event), 2)))
	require.Len(t, sink.alerts, 2)
	require.Equal(t, alert.SourceGuardDuty, sink.alerts[0].Source)
	require.Len(t, *fetched, 1, "the certificate is fetched once and cached")

	tampered := strings.Replace(string(signer.Notification(topic, string(event), 2)), "AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLX", 1)
	require.Equal(t, http.StatusUnauthorized, postTo(h, []byte(tampered)))
	require.Equal(t, http.StatusForbidden, postTo(h, signer.Notification("arn:aws:sns:us-east-1:999999999999:other", string(event), 2)))

	for _, certURL := range []string{"http://sns.us-east-1.amazonaws.com/cert.pem", "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem", "https://evil.example/cert.pem"} {
		forged := strings.Replace(string(signer.Notification(topic, string(event), 2)), signer.CertURL, certURL, 1)
		require.Equal(t, http.StatusUnauthorized, postTo(h, []byte(forged)), certURL)
	}
	require.Len(t, *fetched, 1, "no certificate is fetched from anywhere but an SNS host over HTTPS")
	require.Len(t, sink.alerts, 2)
}

func TestSNSSubscriptionConfirmation(t *testing.T) {
	t.Parallel()
	signer, err := sandbox.NewSNSSigner()
	require.NoError(t, err)
	h, _, confirmed := snsEndpoint(t, signer, &accepted{})
	good := "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + topic + "&Token=abc"
	require.Equal(t, http.StatusOK, postTo(h, signer.SubscriptionConfirmation(topic, good)))
	require.Equal(t, []string{good}, *confirmed)
	require.Equal(t, http.StatusBadRequest, postTo(h, signer.SubscriptionConfirmation(topic, "https://evil.example/confirm")))
	require.Equal(t, http.StatusForbidden, postTo(h, signer.SubscriptionConfirmation("arn:aws:sns:us-east-1:999999999999:other", good)), "only configured topics are confirmed")
	require.Len(t, *confirmed, 1)
}

// FuzzSNS: arbitrary bodies are refused without a panic, and never accepted.
func FuzzSNS(f *testing.F) {
	signer, err := sandbox.NewSNSSigner()
	if err != nil {
		f.Fatal(err)
	}
	event, err := os.ReadFile("testdata/health-credentials-exposed.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signer.Notification(topic, string(event), 2))
	f.Add(signer.SubscriptionConfirmation(topic, "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"))
	f.Fuzz(func(t *testing.T, body []byte) {
		sink := &accepted{}
		h, _, _ := snsEndpoint(t, signer, sink)
		postTo(h, body)
		if len(sink.alerts) > 0 && !bytes.Contains(body, []byte(`"Signature"`)) {
			t.Fatalf("accepted an unsigned message")
		}
	})
}
