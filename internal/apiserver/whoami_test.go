package apiserver

import (
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
)

// A SelfSubjectReview (kubectl auth whoami) says who the server
// authenticated; kubectl_test.go runs the real kubectl on it.
func TestSelfSubjectReview(t *testing.T) {
	e := newTestEnv(t)
	const path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
	review := map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
	code, body := e.do("POST", path, "admin", "", review, nil)
	e.must(code, body, 201)
	if !strings.Contains(body, `"username":"`+apitest.AdminUser.Name+`"`) || !strings.Contains(body, `"system:masters"`) {
		t.Fatalf("admin: %s", body)
	}
	code, body = e.do("POST", path, "node:n1", "", review, nil)
	e.must(code, body, 201)
	if !strings.Contains(body, `"username":"system:node:n1"`) || !strings.Contains(body, `"system:nodes"`) {
		t.Fatalf("node: %s", body)
	}
}
