//go:build integration

package apiserver

// This test runs the real kubectl: hack/test.sh runs it with -tags integration.

import (
	"strings"
	"testing"
	"time"
)

// TestKubectlDebugRefused: the real kubectl debug gets kube-apiserver's
// answer for a static pod (Invalid: static pods do not support ephemeral
// containers), naming the manifest to edit, and exits with an error rather
// than crashing.
func TestKubectlDebugRefused(t *testing.T) {
	kubectlPath(t)
	e := newTestEnv(t)
	e.addNode("n1")
	e.addMirror("web", "n1")
	out, errOut, err := e.kubectl(30*time.Second, "debug", "web-n1", "--image=busybox", "--target=web")
	if err == nil {
		t.Fatalf("kubectl debug succeeded:\n%s", out)
	}
	for _, bad := range []string{"panic", "nil pointer", "goroutine"} {
		if strings.Contains(errOut, bad) {
			t.Fatalf("kubectl debug crashed:\n%s", errOut)
		}
	}
	for _, want := range []string{`The Pod "web-n1" is invalid`, "static pods do not support ephemeral containers", "/etc/kubernetes/manifests/web.yaml", "node n1"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("kubectl debug: stderr does not contain %q:\n%s", want, errOut)
		}
	}
	t.Logf("kubectl debug: %s", errOut)
}
