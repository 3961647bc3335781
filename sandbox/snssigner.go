package sandbox

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"time"
)

// SNSSigner signs SNS messages as SNS does, with a key and self-signed
// certificate of its own that only tests trust (they hand it to the
// endpoint in place of fetching AWS's).
type SNSSigner struct {
	Cert    *x509.Certificate
	CertURL string
	key     *rsa.PrivateKey
}

// NewSNSSigner makes a signer; its CertURL names an SNS host, so the
// endpoint's host check applies as in production.
func NewSNSSigner() (*SNSSigner, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.us-east-1.amazonaws.com (stanch sandbox)"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &SNSSigner{Cert: cert, CertURL: "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-stanch-sandbox.pem", key: key}, nil
}

// Notification returns a signed Notification carrying message.
func (s *SNSSigner) Notification(topicArn, message string, version int) []byte {
	m := map[string]string{"Type": "Notification", "MessageId": newRequestID(), "TopicArn": topicArn, "Message": message,
		"Timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "SignatureVersion": fmt.Sprint(version), "SigningCertURL": s.CertURL}
	text := "Message\n" + m["Message"] + "\nMessageId\n" + m["MessageId"] + "\nTimestamp\n" + m["Timestamp"] + "\nTopicArn\n" + m["TopicArn"] + "\nType\n" + m["Type"] + "\n"
	m["Signature"] = s.sign(text, version)
	out, _ := json.Marshal(m)
	return out
}

// SubscriptionConfirmation returns a signed confirmation request.
func (s *SNSSigner) SubscriptionConfirmation(topicArn, subscribeURL string) []byte {
	m := map[string]string{"Type": "SubscriptionConfirmation", "MessageId": newRequestID(), "Token": "token-" + newRequestID(), "TopicArn": topicArn,
		"Message": "You have chosen to subscribe to the topic " + topicArn, "SubscribeURL": subscribeURL,
		"Timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "SignatureVersion": "2", "SigningCertURL": s.CertURL}
	text := "Message\n" + m["Message"] + "\nMessageId\n" + m["MessageId"] + "\nSubscribeURL\n" + m["SubscribeURL"] + "\nTimestamp\n" + m["Timestamp"] +
		"\nToken\n" + m["Token"] + "\nTopicArn\n" + m["TopicArn"] + "\nType\n" + m["Type"] + "\n"
	m["Signature"] = s.sign(text, 2)
	out, _ := json.Marshal(m)
	return out
}

func (s *SNSSigner) sign(text string, version int) string {
	var sig []byte
	if version == 1 {
		sum := sha1.Sum([]byte(text))
		sig, _ = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA1, sum[:])
	} else {
		sum := sha256.Sum256([]byte(text))
		sig, _ = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	}
	return base64.StdEncoding.EncodeToString(sig)
}
