package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"testing"
	"time"
)

// requestWith is a request that came over TLS with the client
// certificate in certPEM and keyPEM.
func requestWith(t *testing.T, certPEM, keyPEM []byte) *http.Request {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest("GET", "https://127.0.0.1/api", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{pair.Leaf}}
	return r
}

// A client certificate verified once is trusted from memory, but never
// past its expiry, nor by an authenticator of another CA.
func TestAuthenticateRemembersVerifiedCerts(t *testing.T) {
	p, err := LoadOrCreatePKI(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := p.issueClientCert(User{Name: "system:node:n1", Groups: []string{GroupNodes}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a := NewAuthenticator(p, nil)
	a.now = func() time.Time { return now }
	r := requestWith(t, certPEM, keyPEM)
	for i := range 2 { // verified, then remembered
		u, ok, err := a.Authenticate(r)
		if err != nil || !ok || u.Name != "system:node:n1" {
			t.Fatalf("request %d: %v %t %v, want system:node:n1", i, u, ok, err)
		}
	}
	if len(a.verified.until) != 1 {
		t.Fatalf("%d chains remembered, want 1", len(a.verified.until))
	}
	// Past the certificate's expiry (within verifiedFor of the first
	// verification, and past it).
	for _, late := range []time.Duration{time.Hour + time.Minute, 2 * time.Hour} {
		now = time.Now().Add(late)
		if _, _, err := a.Authenticate(r); !errors.Is(err, ErrInvalidClientCert) {
			t.Errorf("%v later: %v, want %v", late, err, ErrInvalidClientCert)
		}
	}
	// Another CA's authenticator does not trust it, remembered or not.
	other, err := LoadOrCreatePKI(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := NewAuthenticator(other, nil)
	b.verified = verifiedChains{pool: a.ClientCAs, until: a.verified.until}
	now = time.Now()
	b.now = a.now
	if _, _, err := b.Authenticate(r); !errors.Is(err, ErrInvalidClientCert) {
		t.Errorf("another CA: %v, want %v", err, ErrInvalidClientCert)
	}
}

func TestVerifiedChainsBounded(t *testing.T) {
	var v verifiedChains
	now := time.Now()
	chain := [][]*x509.Certificate{{{NotAfter: now.Add(time.Hour)}}}
	for i := range verifiedMax + 10 {
		var k [32]byte
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		v.add(nil, k, now, chain)
	}
	if n := len(v.until); n > verifiedMax {
		t.Errorf("%d chains remembered, want at most %d", n, verifiedMax)
	}
}
