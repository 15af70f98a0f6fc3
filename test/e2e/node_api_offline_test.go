package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// `ballast node --kubeconfig FILE` whose API server is not running: the node
// runs its pods as without an API; once the server starts, the Node and the
// mirror pod appear within a few seconds.
func TestNodeAPIKubeconfigOffline(t *testing.T) {
	env := harness.Start(t)
	s := startAPIServer(t, env)
	n := newNode(t, env)
	tok := s.token(n.name)
	s.stop()
	kc := filepath.Join(env.Dir, "node.kubeconfig")
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: ballast
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: node
  user:
    token: %s
contexts:
- name: node
  context: {cluster: ballast, user: node}
current-context: node
`, s.url, s.caFile(), tok)
	if err := os.WriteFile(kc, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	n.extra = []string{"--kubeconfig", kc, "--node-ip", "127.0.0.1", "--address", "127.0.0.1", "--port", fmt.Sprint(apiFreePort(t))}
	n.start()
	n.write("web.yaml", manifest{Name: "web", Image: env.HelloImage(), Grace: 1}.yaml())
	n.waitPod("web", "running with no API server", running)

	s.start()
	started := time.Now()
	name := "web-" + n.name
	n.eventually("the mirror pod Running once the server is up", 30*time.Second, func() error { return s.mirrorRunning(name) })
	t.Logf("mirror pod Running %s after the server started", time.Since(started))
	if out, err := s.k("get", "node", n.name); err != nil {
		t.Errorf("kubectl get node: %s %v", out, err)
	}
}
