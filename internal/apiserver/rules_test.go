//go:build integration

package apiserver

// This test runs the real kubectl: hack/test.sh runs it with -tags integration.

import (
	"strings"
	"testing"
	"time"
)

// TestKubectlAuthCanIList: the real kubectl lists the caller's rules from a
// SelfSubjectRulesReview.
func TestKubectlAuthCanIList(t *testing.T) {
	kubectlPath(t)
	e := newTestEnv(t)
	out, errOut, err := e.kubectl(30*time.Second, "auth", "can-i", "--list")
	if err != nil {
		t.Fatalf("kubectl auth can-i --list: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "*.*") || !strings.Contains(out, "[*]") {
		t.Fatalf("admin's rules do not show everything:\n%s", out)
	}
	// A node's rules, asked with its token.
	code, body := e.do("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", "node:n1", "",
		[]byte(`{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectRulesReview","spec":{"namespace":"kube-node-lease"}}`), nil)
	e.must(code, body, 201)
	for _, want := range []string{`"resourceNames":["n1"]`, `"leases"`, `"selfsubjectrulesreviews"`, `"/healthz"`} {
		if !strings.Contains(body, want) {
			t.Errorf("node rules lack %s: %s", want, body)
		}
	}
	t.Logf("kubectl auth can-i --list:\n%s", out)
}
