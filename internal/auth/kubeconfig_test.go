package auth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// whoami is the answer of the test server: who the request came from.
type whoami struct {
	Name          string   `json:"name"`
	Groups        []string `json:"groups"`
	Authenticated bool     `json:"authenticated"`
}

// startServer serves HTTPS with p.ServerTLSConfig, answering every request
// with who made it (401 when the credentials do not verify).
func startServer(t *testing.T, p *PKI, a *Authenticator) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, ok, err := a.Authenticate(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			json.NewEncoder(w).Encode(whoami{u.Name, u.Groups, ok})
		}),
		TLSConfig: p.ServerTLSConfig(),
		ErrorLog:  log.New(io.Discard, "", 0), // handshake failures are expected in tests
	}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != http.ErrServerClosed {
			t.Errorf("ServeTLS: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

// ask makes one request with the transport of the kubeconfig at path,
// built as client-go builds it.
func ask(t *testing.T, kubeconfigPath string) (whoami, int) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	return askConfig(t, cfg)
}

func askConfig(t *testing.T, cfg *rest.Config) (whoami, int) {
	t.Helper()
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: rt, Timeout: 10 * time.Second}
	resp, err := client.Get(cfg.Host + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var w whoami
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &w); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
	}
	return w, resp.StatusCode
}

func setup(t *testing.T) (*PKI, *TokenStore, string, string) {
	t.Helper()
	dir := t.TempDir()
	p, err := LoadOrCreatePKI(filepath.Join(dir, "pki"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := OpenTokens(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	server := startServer(t, p, NewAuthenticator(p, tokens))
	return p, tokens, server, dir
}

func TestKubeconfigClientCert(t *testing.T) {
	p, _, server, dir := setup(t)
	certPEM, keyPEM, err := p.IssueClientCert(User{Name: "system:node:n1", Groups: []string{GroupNodes}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node.kubeconfig")
	if err := WriteKubeconfig(path, server, p.CAPEM(), certPEM, keyPEM, "", "system:node:n1"); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("kubeconfig mode %o", m)
	}

	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if raw.CurrentContext != "ballast" || raw.Contexts["ballast"] == nil ||
		raw.Contexts["ballast"].Cluster != "ballast" || raw.Contexts["ballast"].AuthInfo != "system:node:n1" {
		t.Fatalf("contexts %+v current %q", raw.Contexts, raw.CurrentContext)
	}
	if c := raw.Clusters["ballast"]; c == nil || c.Server != server || string(c.CertificateAuthorityData) != string(p.CAPEM()) {
		t.Fatalf("cluster %+v", raw.Clusters["ballast"])
	}
	if err := clientcmd.Validate(*raw); err != nil {
		t.Fatal(err)
	}

	w, code := ask(t, path)
	if code != 200 || w.Name != "system:node:n1" || !w.Authenticated ||
		!slices.Equal(w.Groups, []string{GroupNodes, GroupAuthenticated}) {
		t.Fatalf("server saw %+v (%d)", w, code)
	}
}

func TestKubeconfigToken(t *testing.T) {
	p, tokens, server, dir := setup(t)
	tok, err := tokens.CreateNodeToken("n2")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "token.kubeconfig")
	if err := WriteKubeconfig(path, server, p.CAPEM(), nil, nil, tok, "n2"); err != nil {
		t.Fatal(err)
	}
	w, code := ask(t, path)
	if code != 200 || w.Name != "system:node:n2" || !w.Authenticated {
		t.Fatalf("server saw %+v (%d)", w, code)
	}
	u := User{Name: w.Name, Groups: w.Groups}
	if u.NodeName() != "n2" {
		t.Errorf("NodeName %q", u.NodeName())
	}

	// A wrong token is refused (401), not treated as anonymous.
	if err := WriteKubeconfig(path, server, p.CAPEM(), nil, nil, tok+"x", "n2"); err != nil {
		t.Fatal(err)
	}
	if _, code := ask(t, path); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
}

func TestAnonymousAndForeignCert(t *testing.T) {
	p, _, server, dir := setup(t)
	// No credentials: anonymous.
	w, code := askConfig(t, &rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{CAData: p.CAPEM()}})
	if code != 200 || w.Authenticated || w.Name != AnonymousUser {
		t.Fatalf("anonymous: %+v (%d)", w, code)
	}

	// A client certificate of another CA: the handshake fails.
	other, err := LoadOrCreatePKI(filepath.Join(dir, "other"), nil)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := other.IssueClientCert(AdminUserInfo)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rest.TransportFor(&rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{CAData: p.CAPEM(), CertData: certPEM, KeyData: keyPEM}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt}).Get(server + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate from another CA was accepted: %d", resp.StatusCode)
	}

	// The server certificate is not trusted without the CA.
	_, err = http.Get(server + "/")
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &uae) {
		t.Errorf("want an unknown-authority error, got %v", err)
	}

	// TLS 1.1 is refused.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(server, "https://"), &tls.Config{RootCAs: p.CAPool(), MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Error("TLS 1.1 accepted")
	}
}

func TestAuthenticatorWithoutCAPool(t *testing.T) {
	// Trusting r.TLS.VerifiedChains only (ClientCAs nil).
	p, err := LoadOrCreatePKI(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	server := startServer(t, p, &Authenticator{})
	certPEM, keyPEM, err := p.IssueClientCert(User{Name: "bob", Groups: []string{"g"}})
	if err != nil {
		t.Fatal(err)
	}
	w, code := askConfig(t, &rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{CAData: p.CAPEM(), CertData: certPEM, KeyData: keyPEM}})
	if code != 200 || w.Name != "bob" || !slices.Equal(w.Groups, []string{"g", GroupAuthenticated}) {
		t.Fatalf("%+v (%d)", w, code)
	}
	// And a bearer token with no store is refused.
	_, code = askConfig(t, &rest.Config{Host: server, BearerToken: "t", TLSClientConfig: rest.TLSClientConfig{CAData: p.CAPEM()}})
	if code != http.StatusUnauthorized {
		t.Errorf("token without store: %d", code)
	}
}

func TestEnsureAdminKubeconfig(t *testing.T) {
	p, _, server, dir := setup(t)
	path := filepath.Join(dir, "kubeconfig")
	written, err := EnsureAdminKubeconfig(path, server, p)
	if err != nil || !written {
		t.Fatalf("first: %v %v", written, err)
	}
	w, code := ask(t, path)
	if code != 200 || w.Name != AdminUser || !slices.Contains(w.Groups, GroupMasters) {
		t.Fatalf("server saw %+v (%d)", w, code)
	}
	if !Authorize(Attributes{User: User{Name: w.Name, Groups: w.Groups}, Verb: "delete", Resource: "nodes", Name: "x"}).Allowed {
		t.Error("admin from kubeconfig is not allowed everything")
	}
	before := readFile(t, path)

	// Restart: same PKI dir, file kept as is.
	p2, err := LoadOrCreatePKI(p.Dir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	written, err = EnsureAdminKubeconfig(path, server, p2)
	if err != nil || written {
		t.Fatalf("restart: %v %v", written, err)
	}
	if string(readFile(t, path)) != string(before) {
		t.Error("admin kubeconfig changed across restart")
	}

	// Another server URL: rewritten.
	if written, err = EnsureAdminKubeconfig(path, "https://127.0.0.1:1", p2); err != nil || !written {
		t.Fatalf("new server: %v %v", written, err)
	}
	// Near expiry: rewritten.
	p2.now = func() time.Time { return time.Now().Add(ClientCertValidity - 10*24*time.Hour) }
	if written, err = EnsureAdminKubeconfig(path, "https://127.0.0.1:1", p2); err != nil || !written {
		t.Fatalf("near expiry: %v %v", written, err)
	}
	// Garbage: rewritten.
	os.WriteFile(path, []byte("garbage"), 0o644)
	p2.now = time.Now
	if written, err = EnsureAdminKubeconfig(path, server, p2); err != nil || !written {
		t.Fatalf("garbage: %v %v", written, err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("mode %o", m)
	}
}

func TestWriteKubeconfigErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	if err := WriteKubeconfig(path, "", nil, nil, nil, "t", ""); err == nil {
		t.Error("no server accepted")
	}
	if err := WriteKubeconfig(path, "https://x", nil, []byte("c"), nil, "", ""); err == nil {
		t.Error("cert without key accepted")
	}
}
