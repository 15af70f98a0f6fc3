package bootstrap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/auth"
)

type cluster struct {
	pki    *auth.PKI
	tokens *auth.TokenStore
	url    string
	now    time.Time
	ready  map[string]bool
}

// newCluster serves the join endpoints over TLS with a real PKI.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	pki, err := auth.LoadOrCreatePKI(filepath.Join(dir, "pki"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.OpenTokens(filepath.Join(dir, "pki", auth.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{pki: pki, tokens: tokens, now: time.Now(), ready: map[string]bool{}}
	h := &Handler{PKI: pki, Tokens: tokens, Now: func() time.Time { return c.now },
		NodeReady: func(_ context.Context, name string) (bool, error) { return c.ready[name], nil }}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: pki.ServerTLSConfig(), ErrorLog: log.New(io.Discard, "", 0)}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	c.url = "https://" + ln.Addr().String()
	return c
}

func (c *cluster) joinToken(t *testing.T, ttl time.Duration) string {
	t.Helper()
	tok, _, err := c.tokens.CreateJoinToken(ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestJoinIssuesTheNodesCertificate(t *testing.T) {
	c := newCluster(t)
	creds, err := Join(context.Background(), JoinOptions{Server: c.url, Token: c.joinToken(t, time.Hour), CAHash: c.pki.CAHash(), NodeName: "worker-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.Check(c.url, c.pki.CAHash(), "worker-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	// Written and read back: the kubeconfig is private, the CA beside it.
	dir := t.TempDir()
	if err := creds.Write(dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(KubeconfigPath(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig: %v %v", fi, err)
	}
	back, err := Existing(dir)
	if err != nil || back == nil {
		t.Fatalf("Existing: %v %v", back, err)
	}
	id, err := back.Identity(time.Now())
	if err != nil || id.Node != "worker-1" || id.Server != c.url || id.CAHash != c.pki.CAHash() {
		t.Fatalf("identity %+v %v", id, err)
	}
	if none, err := Existing(t.TempDir()); none != nil || err != nil {
		t.Errorf("Existing of an empty dir: %v %v", none, err)
	}
	if err := creds.Check(c.url, c.pki.CAHash(), "worker-2", time.Now()); err == nil {
		t.Error("credentials of worker-1 pass for worker-2")
	}
}

func TestJoinRefusals(t *testing.T) {
	c := newCluster(t)
	good := c.joinToken(t, time.Hour)
	other, err := auth.LoadOrCreatePKI(filepath.Join(t.TempDir(), "pki"), nil)
	if err != nil {
		t.Fatal(err)
	}
	apiToken, err := c.tokens.CreateNodeToken("worker-1")
	if err != nil {
		t.Fatal(err)
	}
	expiring := c.joinToken(t, time.Minute)
	revoked, info, err := c.tokens.CreateJoinToken(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.tokens.Revoke(info.ID); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	c.ready["taken"] = true

	for _, tc := range []struct {
		name  string
		opts  JoinOptions
		later time.Duration
		want  []string
		is    error
	}{
		{name: "wrong CA hash", opts: JoinOptions{Token: good, CAHash: other.CAHash(), NodeName: "w"}, want: []string{"refusing to join", other.CAHash(), c.pki.CAHash()}, is: ErrCAMismatch},
		{name: "malformed hash", opts: JoinOptions{Token: good, CAHash: "abc", NodeName: "w"}, want: []string{"sha256: and 64 hex digits"}},
		{name: "unknown token", opts: JoinOptions{Token: "nope", CAHash: c.pki.CAHash(), NodeName: "w"}, want: []string{"401", "unknown or revoked"}},
		{name: "revoked token", opts: JoinOptions{Token: revoked, CAHash: c.pki.CAHash(), NodeName: "w"}, want: []string{"unknown or revoked", "token create --join"}},
		{name: "expired token", opts: JoinOptions{Token: expiring, CAHash: c.pki.CAHash(), NodeName: "w"}, later: 2 * time.Minute, want: []string{"expired at", "token create --join"}},
		{name: "API token", opts: JoinOptions{Token: apiToken, CAHash: c.pki.CAHash(), NodeName: "w"}, want: []string{"not a join token"}},
		{name: "no token", opts: JoinOptions{CAHash: c.pki.CAHash(), NodeName: "w"}, want: []string{"--token is required"}},
		{name: "bad node name", opts: JoinOptions{Token: good, CAHash: c.pki.CAHash(), NodeName: "Bad_Name"}, want: []string{"invalid node name"}},
		{name: "a Ready node's name", opts: JoinOptions{Token: good, CAHash: c.pki.CAHash(), NodeName: "taken"}, want: []string{"409", "Node named taken is registered and Ready"}},
		{name: "http URL", opts: JoinOptions{Server: "http://127.0.0.1:1", Token: good, CAHash: c.pki.CAHash(), NodeName: "w"}, want: []string{"want https://HOST:PORT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.now = time.Now().Add(tc.later)
			if tc.opts.Server == "" {
				tc.opts.Server = c.url
			}
			_, err := Join(context.Background(), tc.opts)
			if err == nil {
				t.Fatal("joined")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
}

func TestHandlerRefusesForeignRequests(t *testing.T) {
	c := newCluster(t)
	tok := c.joinToken(t, time.Hour)
	h := &Handler{PKI: c.pki, Tokens: c.tokens}
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", CAURLPath, "", 200, "BEGIN CERTIFICATE"},
		{"POST", CAURLPath, "", 405, "GET the CA"},
		{"GET", CertificatePath, "", 405, "POST"},
		{"GET", PathPrefix + "other", "", 404, "no join endpoint"},
		{"POST", CertificatePath, "{", 400, "JSON"},
		{"POST", CertificatePath, `{"csr": "junk"}`, 400, "CERTIFICATE REQUEST"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, w.Code, w.Body, tc.code, tc.want)
		}
	}
	// A request for someone else than a node is refused.
	key := mustKey(t)
	csr, err := auth.NodeCSR("w", key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.NodeOfCSR(csr); err != nil {
		t.Fatal(err)
	}
	admin := adminCSR(t)
	r := httptest.NewRequest("POST", CertificatePath, strings.NewReader(`{"csr": `+quote(admin)+`}`))
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "system:node:") {
		t.Errorf("admin CSR: %d %s", w.Code, w.Body)
	}
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// adminCSR asks for an admin's certificate (system:masters).
func adminCSR(t *testing.T) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:w", Organization: []string{auth.GroupMasters}},
	}, mustKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func quote(b []byte) string {
	q, _ := json.Marshal(string(b))
	return string(q)
}

func TestJoined(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	now := time.Now()
	if ok, err := Joined(dir, c.url, c.pki.CAHash(), "w1", now); ok || err != nil {
		t.Fatalf("no credentials: %v %v", ok, err)
	}
	creds, err := Join(context.Background(), JoinOptions{Server: c.url, Token: c.joinToken(t, time.Hour), CAHash: c.pki.CAHash(), NodeName: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.Write(dir); err != nil {
		t.Fatal(err)
	}
	other, err := auth.LoadOrCreatePKI(filepath.Join(t.TempDir(), "pki"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, server, pin, node string
		now                     time.Time
		keep                    bool
		err                     string
	}{
		{name: "the same", server: c.url, pin: c.pki.CAHash(), node: "w1", now: now, keep: true},
		{name: "another address of the server", server: "https://10.0.0.1:6443", pin: c.pki.CAHash(), node: "w1", now: now},
		{name: "near expiry", server: c.url, pin: c.pki.CAHash(), node: "w1", now: now.Add(auth.ClientCertValidity - 10*24*time.Hour)},
		{name: "expired", server: c.url, pin: c.pki.CAHash(), node: "w1", now: now.Add(2 * auth.ClientCertValidity)},
		{name: "another cluster", server: c.url, pin: other.CAHash(), node: "w1", now: now, err: "belongs to another cluster"},
		{name: "another name", server: c.url, pin: c.pki.CAHash(), node: "w2", now: now, err: "joined as node w1"},
	} {
		keep, err := Joined(dir, tc.server, tc.pin, tc.node, tc.now)
		if keep != tc.keep || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v %v, want %v %q", tc.name, keep, err, tc.keep, tc.err)
		}
	}
}
