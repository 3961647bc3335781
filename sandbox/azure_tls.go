package sandbox

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// The Key Vault client sends a token only over HTTPS, so each vault is
// served over TLS with a certificate from a CA the sandbox makes up when
// it starts: clients trust AzureCAPEM (or AzureCertPool) as a root, for
// example with azcore.ClientOptions.Transport set to an http.Client whose
// TLS config has that pool as RootCAs.

type azureCA struct {
	pem  []byte // the CA certificate
	pool *x509.CertPool
	leaf tls.Certificate // for 127.0.0.1, ::1, localhost and *.localhost
}

func newAzureCA() (*azureCA, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("azure test CA: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{CommonName: "stanch sandbox test CA", Organization: []string{"stanch sandbox"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("azure test CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("azure test CA: %w", err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("azure test certificate: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serialNumber(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "*.localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("azure test certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &azureCA{
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pool: pool,
		leaf: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey},
	}, nil
}

func serialNumber() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// AzureCAPEM is the PEM of the CA that signs the Key Vault listeners'
// certificate, or nil when the seed has no azure.
func (s *Sandbox) AzureCAPEM() []byte {
	if s.azure == nil {
		return nil
	}
	return append([]byte(nil), s.azure.ca.pem...)
}

// AzureCertPool is a pool holding only that CA, or nil when the seed has no
// azure.
func (s *Sandbox) AzureCertPool() *x509.CertPool {
	if s.azure == nil {
		return nil
	}
	return s.azure.ca.pool.Clone()
}

// AzureURL is the URL a vault is served at ("https://127.0.0.1:PORT/"), or
// "" when the vault is not seeded or StartAzure has not run.
func (s *Sandbox) AzureURL(vault string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.azure == nil {
		return ""
	}
	return s.azure.urls[vault]
}

// AzureVaults are the seeded vaults' names, in seed order.
func (s *Sandbox) AzureVaults() []string {
	if s.azure == nil {
		return nil
	}
	return append([]string(nil), s.azure.order...)
}

// StartAzure serves each seeded vault over HTTPS on a listener of its own,
// on host (an IP address, "" for 127.0.0.1) and a free port, until stop is
// called. Calling it when the seed has no azure does nothing.
func (s *Sandbox) StartAzure(host string) (stop func(), err error) {
	if s.azure == nil {
		return func() {}, nil
	}
	if host == "" {
		host = "127.0.0.1"
	}
	var servers []*http.Server
	stop = func() {
		for _, srv := range servers {
			_ = srv.Close()
		}
	}
	urlHost := host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		urlHost = "127.0.0.1"
	}
	for _, vault := range s.azure.order {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			stop()
			return nil, fmt.Errorf("sandbox: Azure Key Vault %s: listen: %w", vault, err)
		}
		srv := &http.Server{
			Handler:           s.azureHandler(vault),
			ReadHeaderTimeout: 10 * time.Second,
			TLSConfig:         &tls.Config{Certificates: []tls.Certificate{s.azure.ca.leaf}, MinVersion: tls.VersionTLS12},
			// A client that does not trust the test CA is its own problem.
			ErrorLog: log.New(io.Discard, "", 0),
		}
		servers = append(servers, srv)
		go func() { _ = srv.ServeTLS(ln, "", "") }()
		port := ln.Addr().(*net.TCPAddr).Port
		s.mu.Lock()
		s.azure.urls[vault] = fmt.Sprintf("https://%s/", net.JoinHostPort(urlHost, fmt.Sprint(port)))
		s.mu.Unlock()
	}
	return stop, nil
}

// startAzureFor starts the vaults for `stanch sandbox`, writes the CA to a
// file and prints where they are; stop also removes the file.
func (s *Sandbox) startAzureFor(ln net.Listener, out io.Writer) (stop func(), err error) {
	if s.azure == nil {
		return func() {}, nil
	}
	host := "127.0.0.1"
	if addr, ok := ln.Addr().(*net.TCPAddr); ok {
		host = addr.IP.String()
	}
	stopServers, err := s.StartAzure(host)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "stanch-sandbox-azure-ca-*.pem")
	if err == nil {
		_, err = f.Write(s.azure.ca.pem)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		stopServers()
		return nil, fmt.Errorf("sandbox: write the Azure test CA: %w", err)
	}
	caFile, _ := filepath.Abs(f.Name())
	fmt.Fprintf(out, "export STANCH_AZURE_CA_FILE=%s\n", caFile)
	if len(s.azure.order) > 0 {
		fmt.Fprintf(out, "export STANCH_AZURE_KEYVAULT_URL=%s\n", s.AzureURL(s.azure.order[0]))
	}
	if s.azure.firstToken != "" {
		fmt.Fprintf(out, "export STANCH_AZURE_TOKEN=%s\n", s.azure.firstToken)
	}
	for _, vault := range s.azure.order {
		fmt.Fprintf(out, "# sandbox: Azure Key Vault %s at %s (HTTPS: trust $STANCH_AZURE_CA_FILE; azsecrets needs DisableChallengeResourceVerification)\n", vault, s.AzureURL(vault))
	}
	return func() {
		stopServers()
		_ = os.Remove(caFile)
	}, nil
}
