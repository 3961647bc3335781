package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// snsCertHost stands in for the SNS host that serves signing certificates,
// reached the way stanch reaches the real one: over HTTPS, through an
// HTTPS_PROXY, with a certificate chain the serve process trusts through
// SSL_CERT_FILE. Nothing in stanch knows it is being tested.
type snsCertHost struct {
	proxyURL string
	caFile   string
	fetches  atomic.Int64
}

func newSNSCertHost(t *testing.T, signer *sandbox.SNSSigner) *snsCertHost {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stanch test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	hostKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	u, err := splitURL(signer.CertURL)
	require.NoError(t, err)
	hostTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: u.host}, DNSNames: []string{u.host},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	hostDER, err := x509.CreateCertificate(rand.Reader, hostTmpl, ca, &hostKey.PublicKey, caKey)
	require.NoError(t, err)

	h := &snsCertHost{caFile: filepath.Join(t.TempDir(), "ca.pem")}
	require.NoError(t, os.WriteFile(h.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signer.Cert.Raw})
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{hostDER}, PrivateKey: hostKey}}}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	h.proxyURL = "http://" + ln.Addr().String()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go h.serve(conn, u, tlsCfg, certPEM)
		}
	}()
	return h
}

type parsedURL struct{ host, path string }

func splitURL(s string) (parsedURL, error) {
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		return parsedURL{}, os.ErrInvalid
	}
	host, path, _ := strings.Cut(rest, "/")
	return parsedURL{host: host, path: "/" + path}, nil
}

// serve answers one CONNECT to the certificate host with TLS and the
// certificate; any other destination is refused.
func (h *snsCertHost) serve(conn net.Conn, u parsedURL, tlsCfg *tls.Config, certPEM []byte) {
	defer conn.Close()
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil || req.Method != http.MethodConnect || req.Host != u.host+":443" {
		_, _ = conn.Write([]byte("HTTP/1.1 403 Forbidden\r\n\r\n"))
		return
	}
	_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	tconn := tls.Server(conn, tlsCfg)
	defer tconn.Close()
	get, err := http.ReadRequest(bufio.NewReader(tconn))
	if err != nil {
		return
	}
	if get.URL.Path != u.path {
		_, _ = tconn.Write([]byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		return
	}
	h.fetches.Add(1)
	resp := http.Response{StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1, ContentLength: int64(len(certPEM)), Close: true,
		Header: http.Header{"Content-Type": {"application/x-pem-file"}}, Body: http.NoBody}
	_ = resp.Write(tconn)
	_, _ = tconn.Write(certPEM)
}

// guardDutyFinding is the documented AccessKey finding, about key of user,
// with finding id.
func guardDutyFinding(t *testing.T, root, key, user, id string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "triggers/testdata/guardduty-accesskey.json"))
	require.NoError(t, err)
	s := strings.ReplaceAll(string(data), "AKIAIOSFODNN7EXAMPLE", key)
	s = strings.ReplaceAll(s, `"userName": "ci-bot"`, `"userName": "`+user+`"`)
	return strings.ReplaceAll(s, "5ac5a4d1e6d0c3b0a9f8e7d6c5b4a392", id)
}

const pathsSeed = `
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
      - name: ci-bot
        keys: [{id: AKIAIOSFODNN7EXAMPLE, secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY}]
      - name: gd-eventbridge
        keys: [{id: AKIAGDEVENTBRIDGE001, secret: gdEventBridgeSecretgdEventBridgeSecret01}]
      - name: gd-sns
        keys: [{id: AKIAGDSNSPATHKEY0001, secret: gdSNSPathSecretgdSNSPathSecretgdSNSPath1}]
      - name: gd-sqs
        keys: [{id: AKIAGDSQSPATHKEY0001, secret: gdSQSPathSecretgdSQSPathSecretgdSQSPath1}]
    queues: [stanch-alerts]
github:
  token: ghp_sandboxTokenForStanchTests0000000000
  alerts:
    - repo: acme/payments-service
      number: 42
      secret_type: aws_access_key_id
      secret: AKIAIOSFODNN7EXAMPLE
      locations:
        - {path: deploy/settings.py, line: 12, commit: 4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d}
`

// A GuardDuty finding reaches stanch serve through each of its three paths
// (an EventBridge API destination, an SNS subscription whose signature and
// certificate are checked for real, an SQS queue) and starts one incident
// each; a Health event about a key whose GitHub incident is open joins it.
func TestServeGuardDutyOnEveryPathAndHealthJoinsGitHub(t *testing.T) {
	t.Parallel()
	e := newE2EWithSeed(t, []byte(pathsSeed))
	signer, err := sandbox.NewSNSSigner()
	require.NoError(t, err)
	certs := newSNSCertHost(t, signer)
	const topic = "arn:aws:sns:us-east-1:111122223333:stanch-guardduty"
	const secret = "eventbridge-connection-api-key"
	queue := e.url + "/111122223333/stanch-alerts"
	e.env = []string{"HTTPS_PROXY=" + certs.proxyURL, "https_proxy=" + certs.proxyURL, "NO_PROXY=", "no_proxy=", "SSL_CERT_FILE=" + certs.caFile}
	base, _, stderr := e.startServe(t, secret, "--sns-topic", topic, "--sqs-queue-url", queue)

	// GitHub first: its incident waits for approval of the rotation, open.
	require.Equal(t, http.StatusOK, signedGitHub(t, base+"/hooks/github", "secret_scanning_alert", "d-1",
		[]byte(`{"action":"created","alert":{"number":42,"secret_type":"aws_access_key_id"},"repository":{"full_name":"acme/payments-service"}}`), githubSecret))
	e.waitStatus(t, stderr, "AKIAIOSFODNN7EXAMPLE", "Inactive")

	require.Equal(t, http.StatusOK, post(t, base+"/hooks/aws/eventbridge", "X-Stanch-Token", secret,
		[]byte(guardDutyFinding(t, e.root, "AKIAGDEVENTBRIDGE001", "gd-eventbridge", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"))))

	note := signer.Notification(topic, guardDutyFinding(t, e.root, "AKIAGDSNSPATHKEY0001", "gd-sns", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa02"), 2)
	require.Equal(t, http.StatusOK, post(t, base+"/hooks/aws/sns", "", "", note))
	forged := strings.Replace(string(signer.Notification(topic, guardDutyFinding(t, e.root, "AKIAGDSNSPATHKEY0001", "gd-sns", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa03"), 2)), "gd-sns", "gd-sqs", 1)
	require.NotEqual(t, http.StatusOK, post(t, base+"/hooks/aws/sns", "", "", []byte(forged)), "a message changed after signing is refused")

	client := sqs.NewFromConfig(testkit.AWSConfig(e.url, sandbox.ResponderKeyID, sandbox.ResponderSecret))
	_, err = client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(queue),
		MessageBody: aws.String(guardDutyFinding(t, e.root, "AKIAGDSQSPATHKEY0001", "gd-sqs", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa04"))})
	require.NoError(t, err)

	for _, key := range []string{"AKIAGDEVENTBRIDGE001", "AKIAGDSNSPATHKEY0001", "AKIAGDSQSPATHKEY0001"} {
		e.waitStatus(t, stderr, key, "Inactive")
	}
	require.EqualValues(t, 1, certs.fetches.Load(), "the signing certificate is fetched once and cached")

	health, err := os.ReadFile(filepath.Join(e.root, "triggers/testdata/health-credentials-exposed.json"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, post(t, base+"/hooks/aws/eventbridge", "X-Stanch-Token", secret, health))

	res := e.stanch(nil, "runs", "list", "--database", e.db)
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, 4, strings.Count(res.stdout, "run_"), "one incident per finding and one for GitHub, none for Health:\n%s", res.stdout)
	var githubRun string
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(res.stdout, "\n") {
			if strings.Contains(line, "AKIAIOSFODNN7EXAMPLE") || strings.Contains(line, "github") {
				githubRun = runIDPattern.FindString(line)
			}
		}
		if githubRun == "" {
			return false
		}
		show := e.stanch(nil, "runs", "show", githubRun, "--database", e.db)
		return strings.Contains(show.stdout, "alert_joined")
	}, 20*time.Second, 100*time.Millisecond, "the Health alert joined the GitHub incident; runs:\n%s\nlog:\n%s", res.stdout, stderr.String())
	require.Equal(t, 1, e.sb.EffectiveCount("UpdateAccessKey")-3, "the Health alert contained nothing twice")
}

// waitStatus waits until the sandbox shows key in status.
func (e *e2e) waitStatus(t *testing.T, log *syncBuffer, key, status string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got, _ := e.sb.KeyStatus(account, key); got == status {
			return
		}
		require.True(t, time.Now().Before(deadline), "%s never became %s; serve log:\n%s", key, status, log.String())
		time.Sleep(20 * time.Millisecond)
	}
}
