package auth

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPKICreateAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := LoadOrCreatePKI(dir, []string{"api.example.com", "10.0.0.5", "[fd00::1]"})
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("dir mode %o, want 700", m)
	}
	for _, f := range []string{CAKeyFile, ServerKeyFile} {
		if m := mode(t, filepath.Join(dir, f)); m != 0o600 {
			t.Errorf("%s mode %o, want 600", f, m)
		}
	}
	if !bytes.Equal(p.CAPEM(), readFile(t, filepath.Join(dir, CACertFile))) {
		t.Error("CAPEM differs from ca.crt")
	}
	leaf := p.ServingCertificate().Leaf
	wantDNS := []string{"api.example.com", "localhost"}
	if got := slices.Sorted(slices.Values(leaf.DNSNames)); !slices.Equal(got, wantDNS) {
		t.Errorf("DNS SANs %v, want %v", got, wantDNS)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	slices.Sort(ips)
	if want := []string{"10.0.0.5", "127.0.0.1", "::1", "fd00::1"}; !slices.Equal(ips, want) {
		t.Errorf("IP SANs %v, want %v", ips, want)
	}
	for _, host := range []string{"api.example.com", "localhost", "127.0.0.1", "::1", "10.0.0.5"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.CAPool(), DNSName: host}); err != nil {
			t.Errorf("serving cert for %s: %v", host, err)
		}
	}

	// Restart with the same hosts (in another order): nothing changes.
	servingBefore := readFile(t, filepath.Join(dir, ServerCertFile))
	p2, err := LoadOrCreatePKI(dir, []string{"10.0.0.5", "fd00::1", "API.example.com", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p2.CAPEM(), p.CAPEM()) {
		t.Error("CA changed across restart")
	}
	if !bytes.Equal(servingBefore, readFile(t, filepath.Join(dir, ServerCertFile))) {
		t.Error("serving cert regenerated although hosts did not change")
	}

	// Hosts change: same CA, new serving cert with the new host.
	p3, err := LoadOrCreatePKI(dir, []string{"other.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p3.CAPEM(), p.CAPEM()) {
		t.Error("CA changed when hosts changed")
	}
	if bytes.Equal(servingBefore, readFile(t, filepath.Join(dir, ServerCertFile))) {
		t.Error("serving cert kept although hosts changed")
	}
	if err := p3.ServingCertificate().Leaf.VerifyHostname("other.example.com"); err != nil {
		t.Error(err)
	}
	if err := p3.ServingCertificate().Leaf.VerifyHostname("api.example.com"); err == nil {
		t.Error("old host still in serving cert")
	}
}

func TestPKIRenewsNearExpiry(t *testing.T) {
	dir := t.TempDir()
	p, err := LoadOrCreatePKI(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := p.ServingCertificate().Leaf.SerialNumber

	// At start, 20 days before expiry: renewed.
	late := func() time.Time { return time.Now().Add(ServerCertValidity - 20*24*time.Hour) }
	p2, err := loadOrCreatePKI(dir, nil, late)
	if err != nil {
		t.Fatal(err)
	}
	if p2.ServingCertificate().Leaf.SerialNumber.Cmp(before) == 0 {
		t.Error("serving cert near expiry was kept at start")
	}

	// While running: GetCertificate renews.
	p.now = late
	cert, err := p.ServerTLSConfig().GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf.SerialNumber.Cmp(before) == 0 {
		t.Error("GetCertificate kept a certificate near expiry")
	}
	if !cert.Leaf.NotAfter.After(late().Add(RenewBefore)) {
		t.Error("renewed certificate still near expiry")
	}
}

func TestPKIRefusesToReplaceCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreatePKI(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreatePKI(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "ca.key is missing") {
		t.Fatalf("err = %v, want a missing-key error", err)
	}

	// A key of another CA.
	other := t.TempDir()
	if _, err := LoadOrCreatePKI(other, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), readFile(t, filepath.Join(other, CAKeyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreatePKI(dir, nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("err = %v, want a mismatch error", err)
	}
}

func TestPKITightensModes(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreatePKI(dir, nil); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Join(dir, CAKeyFile), 0o644)
	if _, err := LoadOrCreatePKI(dir, nil); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("dir mode %o", m)
	}
	if m := mode(t, filepath.Join(dir, CAKeyFile)); m != 0o600 {
		t.Errorf("ca.key mode %o", m)
	}
}

func TestPKIRejectsBadHost(t *testing.T) {
	if _, err := LoadOrCreatePKI(t.TempDir(), []string{"https://x:6443"}); err == nil {
		t.Fatal("want an error for a URL as host")
	}
}

func TestIssueClientCert(t *testing.T) {
	p, err := LoadOrCreatePKI(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := p.IssueClientCert(User{Name: "system:node:n1", Groups: []string{GroupNodes}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseKeyPEM(keyPEM); err != nil {
		t.Fatal(err)
	}
	c, err := parseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "system:node:n1" || !slices.Equal(c.Subject.Organization, []string{GroupNodes}) {
		t.Errorf("subject %v", c.Subject)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: p.CAPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: p.CAPool()}); err == nil {
		t.Error("client cert is usable as a server cert")
	}
	if _, _, err := p.IssueClientCert(User{}); err == nil {
		t.Error("want an error for an empty user")
	}
}
