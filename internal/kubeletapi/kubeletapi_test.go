package kubeletapi

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ballast-dev/ballast/internal/auth"
)

type env struct {
	url     string
	pin     string
	pki     *auth.PKI
	reviews atomic.Int32
}

// start serves the kubelet API on 127.0.0.1 with a TokenReview fake that
// knows two tokens: "n1-token" (this node) and "n2-token" (another node).
func start(t *testing.T) *env {
	t.Helper()
	e := &env{}
	pki, err := auth.LoadOrCreatePKI(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.pki = pki
	client := fake.NewClientset()
	client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		e.reviews.Add(1)
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		switch tr.Spec.Token {
		case "n1-token":
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "system:node:n1", Groups: []string{"system:nodes"}}}
		case "n2-token":
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "system:node:n2", Groups: []string{"system:nodes"}}}
		}
		return true, tr, nil
	})
	cert, err := LoadOrCreateServingCert("", "", t.TempDir(), "n1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	e.pin = CertSHA256(cert.Certificate[0])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served "+r.URL.Path) })
	go Serve(ctx, ln, Options{Handler: handler, ClientCAs: pki.CAPool(), Client: client, NodeName: "n1", Cert: cert})
	e.url = "https://" + ln.Addr().String()
	return e
}

func (e *env) get(t *testing.T, c *http.Client, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAuthentication(t *testing.T) {
	e := start(t)
	c := PinnedClient(tls.Certificate{}, e.pin, nil)
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/pods", "", http.StatusUnauthorized},      // no anonymous access
		{"/healthz", "", http.StatusUnauthorized},   // not even health
		{"/pods", "bogus", http.StatusUnauthorized}, // a token the API does not know
		{"/pods", "n1-token", http.StatusOK},        // this node
		{"/containerLogs/default/p/c", "n1-token", http.StatusOK},
		{"/healthz", "n2-token", http.StatusOK},     // any authenticated user
		{"/pods", "n2-token", http.StatusForbidden}, // but another node reads nothing else
	} {
		if got := e.get(t, c, tc.path, tc.token); got != tc.want {
			t.Errorf("GET %s with %q: %d, want %d", tc.path, tc.token, got, tc.want)
		}
	}
	// Reviews are cached: asking again costs the API nothing.
	before := e.reviews.Load()
	e.get(t, c, "/pods", "n1-token")
	e.get(t, c, "/pods", "bogus")
	if after := e.reviews.Load(); after != before {
		t.Errorf("%d more token reviews for cached tokens", after-before)
	}
}

// otherPin is a pin that is certainly not pin: its first byte inverted.
func otherPin(t *testing.T, pin string) string {
	t.Helper()
	b, err := hex.DecodeString(pin)
	if err != nil || len(b) == 0 {
		t.Fatalf("pin %q is not hex: %v", pin, err)
	}
	b[0] = ^b[0]
	return hex.EncodeToString(b)
}

func TestClientCertificatesAndPinning(t *testing.T) {
	e := start(t)
	certPEM, keyPEM, err := e.pki.IssueClientCert(auth.User{Name: "system:kube-apiserver", Groups: []string{"system:masters"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.get(t, PinnedClient(cert, e.pin, nil), "/pods", ""); got != http.StatusOK {
		t.Errorf("the API server's client certificate: %d", got)
	}
	// A certificate from another CA is refused.
	other, err := auth.LoadOrCreatePKI(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	oc, ok, err := other.IssueClientCert(auth.User{Name: "system:kube-apiserver", Groups: []string{"system:masters"}})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := tls.X509KeyPair(oc, ok)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.get(t, PinnedClient(foreign, e.pin, nil), "/pods", ""); got != http.StatusUnauthorized {
		t.Errorf("a foreign client certificate: %d", got)
	}
	// The client refuses a server whose certificate is not the pinned one.
	if _, err := PinnedClient(cert, otherPin(t, e.pin), nil).Get(e.url + "/healthz"); err == nil {
		t.Errorf("a wrong pin was accepted")
	}
	if _, err := PinnedClient(cert, e.pin, nil).Get(e.url + "/healthz"); err != nil {
		t.Errorf("the right pin was refused: %v", err)
	}
}
