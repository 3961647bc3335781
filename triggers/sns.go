package triggers

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"time"
)

// SNS is POST /hooks/aws/sns: an SNS HTTPS subscription. Every message's
// signature is verified with the certificate named in it, which is fetched
// only over HTTPS from an SNS host and cached; subscriptions are confirmed
// only for the configured topics; a Notification carries an EventBridge
// event as a string.
type SNS struct {
	Topics []string // topic ARNs accepted
	Sink   Sink
	// FetchCert fetches a signing certificate; the default GETs it over
	// HTTPS. The URL's host has been checked before it is called.
	FetchCert func(url string) (*x509.Certificate, error)
	// Confirm visits a SubscribeURL; the default GETs it.
	Confirm func(url string) error
	Now     func() time.Time
	guard   *guard

	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

// NewSNS returns the endpoint for topics.
func NewSNS(topics []string, sink Sink, log *slog.Logger) *SNS {
	client := &http.Client{Timeout: 10 * time.Second}
	return &SNS{
		Topics: topics, Sink: sink, Now: time.Now, guard: newGuard("sns", log, DefaultRateLimit), certs: map[string]*x509.Certificate{},
		FetchCert: func(u string) (*x509.Certificate, error) {
			res, err := client.Get(u)
			if err != nil {
				return nil, err
			}
			defer res.Body.Close()
			data, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
			if err != nil {
				return nil, err
			}
			block, _ := pem.Decode(data)
			if block == nil {
				return nil, errors.New("not a PEM certificate")
			}
			return x509.ParseCertificate(block.Bytes)
		},
		Confirm: func(u string) error {
			res, err := client.Get(u)
			if err != nil {
				return err
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("HTTP %d", res.StatusCode)
			}
			return nil
		},
	}
}

// RateLimit sets the endpoint's limits per source address (see guard).
func (h *SNS) RateLimit(perSecond float64) { h.guard.limit(perSecond) }

// TrustProxies sets the proxies whose X-Forwarded-For names the source
// address (see guard.client).
func (h *SNS) TrustProxies(proxies []netip.Prefix) { h.guard.trust(proxies) }

// snsHost is what a signing certificate's and a SubscribeURL's host must be.
var snsHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

type snsMessage struct {
	Type             string `json:"Type"`
	MessageID        string `json:"MessageId"`
	Token            string `json:"Token"`
	TopicArn         string `json:"TopicArn"`
	Subject          string `json:"Subject"`
	Message          string `json:"Message"`
	SubscribeURL     string `json:"SubscribeURL"`
	Timestamp        string `json:"Timestamp"`
	SignatureVersion string `json:"SignatureVersion"`
	Signature        string `json:"Signature"`
	SigningCertURL   string `json:"SigningCertURL"`
}

// stringToSign is the canonical text SNS signs: "Key\nValue\n" pairs in a
// fixed order, Subject only when present.
func (m snsMessage) stringToSign() string {
	pairs := [][2]string{{"Message", m.Message}, {"MessageId", m.MessageID}}
	if m.Type == "Notification" {
		if m.Subject != "" {
			pairs = append(pairs, [2]string{"Subject", m.Subject})
		}
		pairs = append(pairs, [2]string{"Timestamp", m.Timestamp}, [2]string{"TopicArn", m.TopicArn}, [2]string{"Type", m.Type})
	} else {
		pairs = append(pairs, [2]string{"SubscribeURL", m.SubscribeURL}, [2]string{"Timestamp", m.Timestamp}, [2]string{"Token", m.Token},
			[2]string{"TopicArn", m.TopicArn}, [2]string{"Type", m.Type})
	}
	var b []byte
	for _, p := range pairs {
		b = append(b, p[0]+"\n"+p[1]+"\n"...)
	}
	return string(b)
}

func (h *SNS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.guard.start(w, r) {
		return
	}
	// The signature is inside the body: everything refused before it
	// verifies counts as unauthenticated.
	body, ok := h.guard.body(w, r)
	if !ok {
		return
	}
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		h.guard.unauthenticated(w, r, http.StatusBadRequest, "not an SNS message")
		return
	}
	if !slices.Contains(h.Topics, m.TopicArn) {
		h.guard.unauthenticated(w, r, http.StatusForbidden, "topic is not configured")
		return
	}
	if err := h.verify(m); err != nil {
		h.guard.unauthenticated(w, r, http.StatusUnauthorized, "signature: "+err.Error())
		return
	}
	if !h.guard.authenticated(w, r) {
		return
	}
	switch m.Type {
	case "SubscriptionConfirmation":
		u, err := url.Parse(m.SubscribeURL)
		if err != nil || u.Scheme != "https" || !snsHost.MatchString(u.Hostname()) {
			h.guard.reject(w, r, http.StatusBadRequest, "SubscribeURL is not an SNS HTTPS URL")
			return
		}
		if err := h.Confirm(m.SubscribeURL); err != nil {
			h.guard.log.Error("subscription not confirmed", "topic", m.TopicArn, "error", err)
			h.guard.count(ResultUnavailable)
			http.Error(w, "confirmation failed; SNS will send it again", http.StatusServiceUnavailable)
			return
		}
		h.guard.log.Info("subscription confirmed", "topic", m.TopicArn)
		h.guard.count(ResultAccepted)
		writeJSON(w, http.StatusOK, map[string]any{"confirmed": m.TopicArn})
	case "Notification":
		rep, err := ParseEventBridge([]byte(m.Message), h.Now())
		if err != nil {
			// SNS retries on errors; a message in which nothing can be
			// read will not improve, so it is refused once and for all.
			h.guard.reject(w, r, http.StatusBadRequest, err.Error())
			return
		}
		accept(w, r, h.guard, h.Sink, rep)
	default:
		h.guard.count(ResultIgnored)
		writeJSON(w, http.StatusOK, map[string]any{"ignored": m.Type})
	}
}

func (h *SNS) verify(m snsMessage) error {
	u, err := url.Parse(m.SigningCertURL)
	if err != nil || u.Scheme != "https" || !snsHost.MatchString(u.Hostname()) {
		return errors.New("SigningCertURL is not an SNS HTTPS URL")
	}
	h.mu.Lock()
	cert, ok := h.certs[m.SigningCertURL]
	h.mu.Unlock()
	if !ok {
		if cert, err = h.FetchCert(m.SigningCertURL); err != nil {
			// Without the URL, which the sender wrote: rejections quote
			// nothing of the body.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return fmt.Errorf("fetch the certificate SigningCertURL names: %w", err)
		}
		h.mu.Lock()
		h.certs[m.SigningCertURL] = cert
		h.mu.Unlock()
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("certificate key is not RSA")
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return errors.New("signature is not base64")
	}
	text := []byte(m.stringToSign())
	switch m.SignatureVersion {
	case "1":
		sum := sha1.Sum(text)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA1, sum[:], sig)
	case "2":
		sum := sha256.Sum256(text)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
	}
	return errors.New("SignatureVersion is not 1 or 2")
}
