package apiserver

import (
	"strings"
	"testing"
)

// TestKubeletReads: what a kubelet lists at start is served (empty), its
// creation refused, and a node keeps its own CSINode only.
func TestKubeletReads(t *testing.T) {
	e := newTestEnv(t)
	e.addNode("n1")
	for _, path := range []string{
		"/api/v1/services", "/api/v1/namespaces/default/services",
		"/apis/node.k8s.io/v1/runtimeclasses", "/apis/storage.k8s.io/v1/csidrivers", "/apis/storage.k8s.io/v1/csinodes",
	} {
		for _, rv := range []string{"", "?resourceVersion=0", "?limit=500"} {
			code, body := e.do("GET", path+rv, "node:n1", "", nil, nil)
			e.must(code, body, 200)
			if !strings.Contains(body, `"items":[]`) {
				t.Errorf("GET %s%s: %s, want an empty list", path, rv, body)
			}
		}
	}
	code, body := e.do("POST", "/api/v1/namespaces/default/services", "admin", "application/json",
		[]byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"}}`), nil)
	if code != 405 || !strings.Contains(body, `"reason":"MethodNotAllowed"`) || !strings.Contains(body, "create is not supported on services") {
		t.Fatalf("creating a Service: %d %s, want 405 MethodNotAllowed", code, body)
	}
	csinode := func(name string) []byte {
		return []byte(`{"apiVersion":"storage.k8s.io/v1","kind":"CSINode","metadata":{"name":"` + name + `"},"spec":{"drivers":null}}`)
	}
	code, body = e.do("POST", "/apis/storage.k8s.io/v1/csinodes", "node:n1", "application/json", csinode("n1"), nil)
	e.must(code, body, 201)
	code, body = e.do("POST", "/apis/storage.k8s.io/v1/csinodes", "node:n1", "application/json", csinode("n2"), nil)
	if code != 403 {
		t.Fatalf("node n1 creating n2's CSINode: %d %s, want 403", code, body)
	}
	code, body = e.do("GET", "/apis/storage.k8s.io/v1/csinodes/n1", "node:n1", "", nil, nil)
	e.must(code, body, 200)
}
