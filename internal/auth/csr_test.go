package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignNodeCSR(t *testing.T) {
	p, err := LoadOrCreatePKI(filepath.Join(t.TempDir(), "pki"), nil)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := NodeCSR("worker-1", key)
	if err != nil {
		t.Fatal(err)
	}
	name, certPEM, err := p.SignNodeCSR(csr)
	if err != nil || name != "worker-1" {
		t.Fatal(name, err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatalf("the certificate is not for the request's key: %v", err)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: p.CAPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	if pair.Leaf.Subject.CommonName != "system:node:worker-1" || len(pair.Leaf.Subject.Organization) != 1 || pair.Leaf.Subject.Organization[0] != GroupNodes {
		t.Errorf("subject %v", pair.Leaf.Subject)
	}

	for _, tc := range []struct {
		name    string
		subject pkix.Name
		want    string
	}{
		{"admin group", pkix.Name{CommonName: "system:node:w", Organization: []string{GroupNodes, GroupMasters}}, "Organization system:nodes only"},
		{"not a node", pkix.Name{CommonName: "ballast-admin", Organization: []string{GroupNodes}}, "CommonName system:node:<node name>"},
		{"bad name", pkix.Name{CommonName: "system:node:UPPER", Organization: []string{GroupNodes}}, "invalid node name"},
	} {
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: tc.subject}, key)
		_, _, err := p.SignNodeCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	// A request whose signature does not verify: its last byte (in the
	// signature) changed.
	block, _ := pem.Decode(csr)
	der := append([]byte(nil), block.Bytes...)
	der[len(der)-1] ^= 0xff
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if _, _, err := p.SignNodeCSR(bad); err == nil {
		t.Error("a tampered request was signed")
	}
	if _, err := ParseCAHash(p.CAHash()); err != nil || !strings.HasPrefix(p.CAHash(), "sha256:") || len(p.CAHash()) != 71 {
		t.Errorf("CAHash %q: %v", p.CAHash(), err)
	}
	if _, err := ParseCAHash("sha256:xyz"); err == nil {
		t.Error("a malformed hash parsed")
	}
}
