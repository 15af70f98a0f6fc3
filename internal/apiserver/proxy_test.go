package apiserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
)

// TestNodeAndPodProxy: nodes/N/proxy/PATH reaches the node's kubelet API
// through the node dialer, for admins only; pods/P[:PORT]/proxy refuses a
// pod whose IP is not a global unicast address, as kube-apiserver does.
func TestNodeAndPodProxy(t *testing.T) {
	var got []string
	kubelet := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI())
		fmt.Fprintf(w, "kubelet says %s", r.URL.Path)
	}))
	defer kubelet.Close()
	e := newTestEnv(t, func(c *Config) {
		c.NodeLogs = func(_ context.Context, node string) (*http.Client, *url.URL, error) {
			if node != "n1" {
				return nil, nil, fmt.Errorf("unknown node %s", node)
			}
			u, _ := url.Parse(kubelet.URL)
			return kubelet.Client(), u, nil
		}
	})
	e.addNode("n1")
	p := e.addMirror("web", "n1")
	for _, tc := range []struct {
		path, token string
		code        int
		body        string
	}{
		{"/api/v1/nodes/n1/proxy/healthz", "admin", 200, "kubelet says /healthz"},
		{"/api/v1/nodes/n1/proxy/stats/summary?only_cpu_and_memory=true", "admin", 200, "kubelet says /stats/summary"},
		{"/api/v1/nodes/n1/proxy/metrics", "node:n1", 403, `cannot get resource \"nodes/proxy\"`},
		{"/api/v1/nodes/n1/proxy/metrics", "bad", 401, "Unauthorized"},
		{"/api/v1/nodes/nope/proxy/metrics", "admin", 404, `nodes \"nope\" not found`},
		{"/api/v1/nodes/n1:9999/proxy/metrics", "admin", 400, "only to the node's kubelet API"},
		{"/api/v1/namespaces/default/pods/" + p.Name + "/proxy/", "node:n1", 403, `cannot get resource \"pods/proxy\"`},
		{"/api/v1/namespaces/default/pods/nope:80/proxy/", "admin", 404, `pods \"nope\" not found`},
	} {
		req, _ := http.NewRequest("GET", e.ts.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("GET %s as %s: %d %s, want %d with %q", tc.path, tc.token, resp.StatusCode, b, tc.code, tc.body)
		}
		if tc.code >= 400 {
			apitest.CheckStatusShape(t, b, tc.code, request.ReasonForCode(int32(tc.code)), "")
		}
	}
	if len(got) != 2 || got[1] != "GET /stats/summary?only_cpu_and_memory=true" {
		t.Errorf("the kubelet got %v", got)
	}

	// A pod without a routable IP: 400 "address not allowed", as kube-apiserver.
	for _, ip := range []string{"", "127.0.0.1"} {
		p.Status.PodIP = ip
		code, body := e.do("PUT", "/api/v1/namespaces/default/pods/"+p.Name+"/status", "node:n1", "", p, p)
		e.must(code, body, 200)
		code, body = e.do("GET", "/api/v1/namespaces/default/pods/"+p.Name+":8080/proxy/", "admin", "", nil, nil)
		if code != 400 || !strings.Contains(body, "address not allowed") {
			t.Errorf("pod IP %q: %d %s", ip, code, body)
		}
	}
}
