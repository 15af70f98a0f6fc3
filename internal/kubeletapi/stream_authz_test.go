package kubeletapi

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ballast-dev/ballast/internal/auth"
)

// reviewTokens makes client's API answer TokenReviews: users' tokens
// authenticate as their user, others not.
func reviewTokens(client *fake.Clientset, users map[string]authenticationv1.UserInfo) {
	client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		if u, ok := users[tr.Spec.Token]; ok {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: u}
		}
		return true, tr, nil
	})
}

// Streams into pods are the kubelet's nodes/proxy: every refusal of the
// issue (anonymous, another node's credentials, a user the API server does
// not allow), and who gets through.
func TestStreamAuthorization(t *testing.T) {
	pki, err := auth.LoadOrCreatePKI(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var sars atomic.Int32
	var lastSAR atomic.Pointer[authorizationv1.SubjectAccessReviewSpec]
	client := fake.NewClientset()
	users := map[string]authenticationv1.UserInfo{
		"n1-token":    {Username: "system:node:n1", Groups: []string{"system:nodes"}},
		"n2-token":    {Username: "system:node:n2", Groups: []string{"system:nodes"}},
		"alice-token": {Username: "alice", Groups: []string{"ops"}},
		"bob-token":   {Username: "bob"},
	}
	reviewTokens(client, users)
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sars.Add(1)
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		spec := sar.Spec
		lastSAR.Store(&spec)
		ra := sar.Spec.ResourceAttributes
		if sar.Spec.User == "alice" && ra != nil && ra.Verb == "create" && ra.Resource == "nodes" && ra.Subresource == "proxy" && ra.Name == "n1" {
			sar.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true}
		} else {
			sar.Status = authorizationv1.SubjectAccessReviewStatus{Reason: "no RBAC policy matched"}
		}
		return true, sar, nil
	})
	cert, err := LoadOrCreateServingCert("", "", t.TempDir(), "n1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	pin := CertSHA256(cert.Certificate[0])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served "+r.URL.Path) })
	go Serve(ctx, ln, Options{Handler: handler, ClientCAs: pki.CAPool(), Client: client, NodeName: "n1", Cert: cert})
	base := "https://" + ln.Addr().String()

	certClient := func(name string, groups ...string) *http.Client {
		certPEM, keyPEM, err := pki.IssueClientCert(auth.User{Name: name, Groups: groups})
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return PinnedClient(c, pin, nil)
	}
	noCert := PinnedClient(tls.Certificate{}, pin, nil)
	do := func(c *http.Client, method, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	const exec = "/exec/default/web-n1/app?command=sh&input=1&output=1&tty=1"
	for _, tc := range []struct {
		name   string
		client *http.Client
		method string
		path   string
		token  string
		code   int
		body   string
	}{
		{"anonymous", noCert, "POST", exec, "", 401, "no credentials"},
		{"anonymous port-forward", noCert, "GET", "/portForward/default/web-n1", "", 401, "no credentials"},
		{"an unknown token", noCert, "POST", exec, "bogus", 401, "invalid bearer token"},
		{"this node's token", noCert, "POST", exec, "n1-token", 403, "may never exec"},
		{"another node's token", noCert, "GET", "/attach/default/web-n1/app?output=1", "n2-token", 403, "Forbidden (user=system:node:n2"},
		{"another node's certificate", certClient("system:node:n2", "system:nodes"), "POST", exec, "", 403, "may never exec"},
		{"this node's certificate", certClient("system:node:n1", "system:nodes"), "GET", "/portForward/default/web-n1", "", 403, "may never exec"},
		{"a user the API server refuses", noCert, "POST", exec, "bob-token", 403, `does not allow user "bob" to create nodes/proxy on node "n1": no RBAC policy matched`},
		{"a user the API server allows", noCert, "POST", exec, "alice-token", 200, "served /exec/default/web-n1/app"},
		{"... on GET (a WebSocket upgrade) as well", noCert, "GET", "/portForward/default/web-n1", "alice-token", 200, "served"},
		{"kube-apiserver's kubelet client certificate", certClient("kube-apiserver-kubelet-client", "system:masters"), "POST", exec, "", 200, "served"},
		{"ballast server's client certificate", certClient("system:kube-apiserver", "system:masters"), "GET", "/run/default/web-n1/app", "", 200, "served"},
		// The node's own token still reads logs: only streams are refused.
		{"this node reads logs", noCert, "GET", "/containerLogs/default/web-n1/app", "n1-token", 200, "served"},
	} {
		code, body := do(tc.client, tc.method, tc.path, tc.token)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %s %s: %d %q, want %d with %q", tc.name, tc.method, tc.path, code, body, tc.code, tc.body)
		}
	}
	if spec := lastSAR.Load(); spec == nil || spec.ResourceAttributes.Name != "n1" || spec.User == "" || slices.Contains(spec.Groups, groupClientCert) {
		t.Errorf("SubjectAccessReview sent: %+v", spec)
	}
	// Answers are cached as the kubelet caches them.
	before := sars.Load()
	do(noCert, "POST", exec, "alice-token")
	do(noCert, "POST", exec, "bob-token")
	if after := sars.Load(); after != before {
		t.Errorf("%d more SubjectAccessReviews for cached answers", after-before)
	}
}
