package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ballast-dev/ballast/internal/atomicfile"
)

// Files LoadOrCreatePKI keeps in its directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	pkiLockFile    = ".lock"
)

// Lifetimes of what the PKI issues. Keys are ECDSA P-256.
const (
	CAValidity          = 10 * 365 * 24 * time.Hour
	ServerCertValidity  = 365 * 24 * time.Hour
	ClientCertValidity  = 365 * 24 * time.Hour
	RenewBefore         = 30 * 24 * time.Hour // a certificate this close to expiry is replaced
	clockSkewAllowance  = time.Hour           // NotBefore is backdated by this much
	defaultCommonNameCA = "ballast-ca"
)

// defaultHosts are always in the serving certificate.
var defaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// PKI is the cluster's certificate authority and the API server's serving
// certificate, kept in one directory.
//
// The CA is created once and never replaced: every kubeconfig, node
// credential and client certificate depends on it. If ca.crt exists but
// ca.key does not (or they do not match) LoadOrCreatePKI fails rather than
// silently making a new CA.
//
// The serving certificate is regenerated when the host list changes, when it
// no longer chains to the CA, or within RenewBefore of expiry — at start and
// also while running (ServerTLSConfig's GetCertificate renews it in place on
// a handshake, so a server that runs for a year keeps serving).
type PKI struct {
	dir    string
	hosts  []string // normalized, sorted; includes defaultHosts
	caCert *x509.Certificate
	caKey  crypto.Signer
	caPEM  []byte
	pool   *x509.CertPool

	mu      sync.Mutex
	serving *tls.Certificate
	now     func() time.Time // for tests
}

// LoadOrCreatePKI loads the PKI in dir, creating what is missing. dir is
// created with mode 0700 (an existing dir is tightened to 0700); keys are
// written with mode 0600. hosts are the DNS names and IP addresses the API is
// reached at, added to localhost, 127.0.0.1 and ::1. A file lock in dir keeps
// two processes from creating two CAs at once.
func LoadOrCreatePKI(dir string, hosts []string) (*PKI, error) {
	return loadOrCreatePKI(dir, hosts, time.Now)
}

func loadOrCreatePKI(dir string, hosts []string, now func() time.Time) (*PKI, error) {
	norm, err := normalizeHosts(hosts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	unlock, err := lockFile(filepath.Join(dir, pkiLockFile))
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	defer unlock()

	p := &PKI{dir: dir, hosts: norm, now: now}
	if err := p.loadOrCreateCA(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadOrCreateServingLocked(); err != nil {
		return nil, err
	}
	return p, nil
}

// normalizeHosts trims, strips IPv6 brackets, canonicalizes IPs, lower-cases
// names, adds the defaults, and sorts and dedups.
func normalizeHosts(hosts []string) ([]string, error) {
	var out []string
	for _, h := range append(slices.Clone(hosts), defaultHosts...) {
		h = strings.TrimSpace(h)
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			out = append(out, ip.String())
			continue
		}
		if strings.ContainsAny(h, " /:@") {
			return nil, fmt.Errorf("pki: %q is not a host name or IP address", h)
		}
		out = append(out, strings.ToLower(h))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (p *PKI) path(name string) string { return filepath.Join(p.dir, name) }

func (p *PKI) loadOrCreateCA() error {
	certPEM, certErr := os.ReadFile(p.path(CACertFile))
	keyPEM, keyErr := os.ReadFile(p.path(CAKeyFile))
	switch {
	case certErr == nil && keyErr == nil:
		cert, err := parseCertPEM(certPEM)
		if err != nil {
			return fmt.Errorf("pki: %s: %w", p.path(CACertFile), err)
		}
		key, err := parseKeyPEM(keyPEM)
		if err != nil {
			return fmt.Errorf("pki: %s: %w", p.path(CAKeyFile), err)
		}
		if !publicKeysEqual(cert.PublicKey, key.Public()) {
			return fmt.Errorf("pki: %s does not match %s; restore the CA's key or remove both files to make a new CA (every kubeconfig and node credential must then be reissued)",
				p.path(CAKeyFile), p.path(CACertFile))
		}
		if !cert.IsCA {
			return fmt.Errorf("pki: %s is not a CA certificate", p.path(CACertFile))
		}
		if err := tightenKeyFile(p.path(CAKeyFile)); err != nil {
			return err
		}
		p.setCA(cert, key, certPEM)
		return nil
	case certErr == nil && errors.Is(keyErr, fs.ErrNotExist):
		return fmt.Errorf("pki: %s exists but %s is missing; restore the CA's key or remove %s to make a new CA (every kubeconfig and node credential must then be reissued)",
			p.path(CACertFile), p.path(CAKeyFile), p.path(CACertFile))
	case errors.Is(certErr, fs.ErrNotExist):
		// No CA yet (a key without a certificate is a creation that was
		// interrupted: the certificate is written last).
		return p.createCA()
	case certErr != nil:
		return fmt.Errorf("pki: %w", certErr)
	default:
		return fmt.Errorf("pki: %w", keyErr)
	}
}

func (p *PKI) createCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	now := p.now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: defaultCommonNameCA, Organization: []string{"ballast"}},
		NotBefore:             now.Add(-clockSkewAllowance),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("pki: creating CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := encodeKeyPEM(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := atomicfile.WriteFile(p.path(CAKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p.path(CACertFile), certPEM, 0o644); err != nil {
		return err
	}
	p.setCA(cert, key, certPEM)
	return nil
}

func (p *PKI) setCA(cert *x509.Certificate, key crypto.Signer, certPEM []byte) {
	p.caCert, p.caKey, p.caPEM = cert, key, certPEM
	p.pool = x509.NewCertPool()
	p.pool.AddCert(cert)
}

// loadOrCreateServingLocked keeps the serving certificate on disk if it is
// still right for the hosts and the CA, or makes a new one.
func (p *PKI) loadOrCreateServingLocked() error {
	certPEM, err1 := os.ReadFile(p.path(ServerCertFile))
	keyPEM, err2 := os.ReadFile(p.path(ServerKeyFile))
	if err1 == nil && err2 == nil {
		if pair, err := tls.X509KeyPair(certPEM, keyPEM); err == nil && p.servingUsable(pair.Leaf) {
			if err := tightenKeyFile(p.path(ServerKeyFile)); err != nil {
				return err
			}
			p.serving = &pair
			return nil
		}
	}
	return p.createServingLocked()
}

// servingUsable tells whether a serving certificate chains to the CA, is for
// exactly the configured hosts and is not within RenewBefore of expiry.
func (p *PKI) servingUsable(leaf *x509.Certificate) bool {
	if leaf == nil {
		return false
	}
	now := p.now()
	if now.Add(RenewBefore).After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return false
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return false
	}
	var have []string
	have = append(have, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		have = append(have, ip.String())
	}
	slices.Sort(have)
	return slices.Equal(have, p.hosts)
}

func (p *PKI) createServingLocked() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	now := p.now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "ballast-apiserver"},
		NotBefore:    now.Add(-clockSkewAllowance),
		NotAfter:     now.Add(ServerCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range p.hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	certPEM, keyPEM, err := p.sign(tmpl, key)
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := atomicfile.WriteFile(p.path(ServerKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p.path(ServerCertFile), certPEM, 0o644); err != nil {
		return err
	}
	p.serving = &pair
	return nil
}

func (p *PKI) sign(tmpl *x509.Certificate, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, key.Public(), p.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: signing certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// getCertificate returns the serving certificate, renewing it first if it
// has come within RenewBefore of expiry while the server ran.
func (p *PKI) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.now().Add(RenewBefore).After(p.serving.Leaf.NotAfter) {
		if err := p.createServingLocked(); err != nil {
			// Keep serving the old certificate until it really expires.
			if p.now().After(p.serving.Leaf.NotAfter) {
				return nil, err
			}
		}
	}
	return p.serving, nil
}

// ServerTLSConfig is the API server's TLS configuration: the serving
// certificate (through GetCertificate, so it is renewed while running), TLS
// 1.2 or later, and client certificates asked for but not required
// (tls.VerifyClientCertIfGiven), verified against the CA. A request without a
// client certificate falls through to bearer tokens or anonymous.
//
// NextProtos is left empty: http.Server.ServeTLS adds "h2" and "http/1.1".
func (p *PKI) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: p.getCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      p.CAPool(),
	}
}

// IssueClientCert issues a client certificate for user, read as Kubernetes
// reads one: CommonName is the user name, Organizations are the groups. It
// is valid for ClientCertValidity. Nothing is written to disk.
func (p *PKI) IssueClientCert(user User) (certPEM, keyPEM []byte, err error) {
	return p.issueClientCert(user, ClientCertValidity)
}

func (p *PKI) issueClientCert(user User, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if user.Name == "" {
		return nil, nil, errors.New("pki: a client certificate needs a user name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	now := p.now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: user.Name, Organization: slices.Clone(user.Groups)},
		NotBefore:    now.Add(-clockSkewAllowance),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return p.sign(tmpl, key)
}

// CAPEM returns the CA certificate, PEM-encoded (for kubeconfigs and nodes).
func (p *PKI) CAPEM() []byte { return bytes.Clone(p.caPEM) }

// CAPool returns a pool holding only the CA (for verifying client certs).
func (p *PKI) CAPool() *x509.CertPool { return p.pool.Clone() }

// Dir returns the directory the PKI lives in.
func (p *PKI) Dir() string { return p.dir }

// Hosts returns the names and addresses in the serving certificate.
func (p *PKI) Hosts() []string { return slices.Clone(p.hosts) }

// ServingCertificate returns the current serving certificate (its Leaf set).
func (p *PKI) ServingCertificate() *tls.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.serving
}

// --- helpers ---

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n.Add(n, big.NewInt(1))
}

func encodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// tightenKeyFile makes sure a key file is not readable by others.
func tightenKeyFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
	}
	return nil
}

// lockFile takes an exclusive flock on path (created 0600), for changes that
// another process may make at the same time.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
