package bootstrap

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/auth"
)

// ErrCAMismatch is returned when the server's CA is not the pinned one.
var ErrCAMismatch = errors.New("the server's CA does not match --ca-cert-hash")

// JoinOptions say where and how a node joins.
type JoinOptions struct {
	// Server is the API server's URL, https://HOST:PORT.
	Server string
	// Token is a bootstrap token (`ballast server token create --join`).
	Token string
	// CAHash pins the server's CA: "sha256:<hex>" (see auth.CAHash).
	CAHash string
	// NodeName is the name the node joins under.
	NodeName string
	// Timeout bounds each request (default 30s).
	Timeout time.Duration
}

// Join fetches the server's CA, refuses it unless it matches the pin, and
// only then, over TLS that trusts that CA alone, exchanges the token and a
// certificate request for the node's client certificate. The key is made
// here and never sent.
func Join(ctx context.Context, o JoinOptions) (*Credentials, error) {
	server, err := ParseServerURL(o.Server)
	if err != nil {
		return nil, err
	}
	pin, err := auth.ParseCAHash(o.CAHash)
	if err != nil {
		return nil, err
	}
	if o.Token == "" {
		return nil, errors.New("--token is required: a bootstrap token from `ballast server token create --join` on the control plane")
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	caPEM, ca, err := fetchCA(ctx, server, o.Timeout)
	if err != nil {
		return nil, err
	}
	if got := auth.CAHash(ca); got != pin {
		return nil, fmt.Errorf("%w: the server at %s presents a CA whose hash is %s, not %s: refusing to join. Check the hash (`ballast init` printed it; `ballast server token create --join` prints it again) or whether something stands between this node and the server",
			ErrCAMismatch, server, got, pin)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := auth.NodeCSR(o.NodeName, key)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	client := &http.Client{Timeout: o.Timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	body, _ := json.Marshal(CertificateRequest{CSR: string(csr)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+CertificatePath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+o.Token)
	resp, err := client.Do(req)
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		return nil, fmt.Errorf("asking %s for the node's certificate: %w: join at an address the server's certificate names, or add this one to the server's --tls-san", server, err)
	}
	if err != nil {
		return nil, fmt.Errorf("asking %s for the node's certificate: %w", server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRequest))
	if err != nil {
		return nil, fmt.Errorf("asking %s for the node's certificate: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the server at %s refused the join (%s): %s", server, resp.Status, statusMessage(data))
	}
	var cr CertificateResponse
	if err := json.Unmarshal(data, &cr); err != nil {
		return nil, fmt.Errorf("the server at %s answered the join with something else than a certificate: %w", server, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &Credentials{
		Server: server, CAPEM: caPEM, CertPEM: []byte(cr.Certificate),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	if err := c.Check(server, pin, o.NodeName, time.Now()); err != nil {
		return nil, fmt.Errorf("the certificate the server at %s issued: %w", server, err)
	}
	return c, nil
}

// ParseServerURL checks a server URL: https, a host and a port, nothing
// else; it returns it as https://HOST:PORT.
func ParseServerURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("server %q: want https://HOST:PORT (the URL `ballast init` printed)", s)
	}
	return "https://" + u.Host, nil
}

// fetchCA reads the CA from the server over TLS that verifies nothing yet:
// what it gets is trusted only once it matches the pin.
func fetchCA(ctx context.Context, server string, timeout time.Duration) ([]byte, *x509.Certificate, error) {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // checked against the pin below
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+CAURLPath, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("reaching the server at %s: %w (is `ballast init` running there, and is the address right?)", server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRequest))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the CA from %s: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("the server at %s gives no CA for joining (%s): %s (is it a Ballast API server?)", server, resp.Status, statusMessage(data))
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("the server at %s answered %s with no PEM certificate (is it a Ballast API server?)", server, CAURLPath)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("the CA from %s: %w", server, err)
	}
	return data, ca, nil
}

// statusMessage is the message of a Status body, or the body itself.
func statusMessage(data []byte) string {
	var st metav1.Status
	if json.Unmarshal(data, &st) == nil && st.Message != "" {
		return st.Message
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
