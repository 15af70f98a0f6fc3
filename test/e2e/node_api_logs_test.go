package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// kubectl logs through a separate `ballast server` for a pod on a separate
// `ballast node`, through the node's kubelet HTTPS API; that API refuses
// anonymous requests and bad tokens, and accepts the node's own token
// (checked with a TokenReview).
func TestNodeAPILogs(t *testing.T) {
	env := harness.Start(t)
	s := startAPIServer(t, env)
	n, kport := startAPINode(t, env, s)
	n.write("web.yaml", manifest{Name: "web", Image: env.HelloImage(), Grace: 1, Env: map[string]string{"LOG_LINES": "3"}}.yaml())
	name := "web-" + n.name
	n.eventually("kubectl shows the mirror pod Running", 60*time.Second, func() error { return s.mirrorRunning(name) })
	n.eventually("kubectl logs through the server", 30*time.Second, func() error {
		out, err := s.k("logs", name)
		if err != nil || !strings.Contains(out, "line 3") {
			return fmt.Errorf("kubectl logs: %v\n%s", err, out)
		}
		return nil
	})
	out, err := s.k("logs", name, "--tail", "1")
	if err != nil || strings.TrimSpace(out) == "" || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("kubectl logs --tail 1: %q %v", out, err)
	}

	base := fmt.Sprintf("https://127.0.0.1:%d", kport)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	call := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/healthz", "/pods", "/containerLogs/default/" + name + "/app"} {
		if code, body := call(p, ""); code != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s: %d %s, want 401", p, code, body)
		}
		if code, body := call(p, "not-a-token"); code != http.StatusUnauthorized {
			t.Errorf("bad token GET %s: %d %s, want 401", p, code, body)
		}
	}
	tok := s.token(n.name)
	if code, body := call("/pods", tok); code != http.StatusOK || !strings.Contains(body, name) {
		t.Errorf("GET /pods with the node's token: %d %s", code, body)
	}
	if code, body := call("/containerLogs/default/"+name+"/app", tok); code != http.StatusOK || !strings.Contains(body, "line 3") {
		t.Errorf("GET /containerLogs with the node's token: %d %s", code, body)
	}
	other := s.token("some-other-node")
	if code, _ := call("/healthz", other); code != http.StatusOK {
		t.Errorf("GET /healthz with another node's token: %d, want 200", code)
	}
	if code, _ := call("/pods", other); code != http.StatusForbidden {
		t.Errorf("GET /pods with another node's token: %d, want 403", code)
	}
}
