package apiserver

import (
	"strings"
	"testing"
)

// TokenReview: a node (or an admin) asks whether a bearer token is valid,
// and for whom; the token is checked with the server's own authentication.
func TestTokenReview(t *testing.T) {
	e := newTestEnv(t)
	const path = "/apis/authentication.k8s.io/v1/tokenreviews"
	review := func(token string) map[string]any {
		return map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": map[string]any{"token": token}}
	}
	code, body := e.do("POST", path, "node:n1", "", review("node:n2"), nil)
	e.must(code, body, 201)
	if !strings.Contains(body, `"authenticated":true`) || !strings.Contains(body, `"username":"system:node:n2"`) || !strings.Contains(body, `"kind":"TokenReview"`) {
		t.Fatal(body)
	}
	code, body = e.do("POST", path, "admin", "", review("bad"), nil)
	e.must(code, body, 201)
	if strings.Contains(body, `"authenticated":true`) || !strings.Contains(body, `"error"`) {
		t.Fatal(body)
	}
	code, body = e.do("POST", path, "admin", "", review(""), nil)
	e.must(code, body, 422)
}
