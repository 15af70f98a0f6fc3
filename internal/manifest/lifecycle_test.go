package manifest

import (
	"strings"
	"testing"
)

// kubeadm writes "creationTimestamp: null" and "status: {}" into the
// manifests it generates: such files run unchanged; a real status does not.
func TestKubeadmEmptyStatus(t *testing.T) {
	data := webYAML + "status: {}\n"
	data = strings.Replace(data, "metadata:\n", "metadata:\n  creationTimestamp: null\n", 1)
	if _, err := Parse("/etc/kubernetes/manifests/web.yaml", []byte(data), "n1"); err != nil {
		t.Fatalf("kubeadm-shaped file refused: %v", err)
	}
	_, err := Parse("/etc/kubernetes/manifests/web.yaml", []byte(webYAML+"status:\n  phase: Running\n"), "n1")
	if err == nil || !strings.Contains(err.Error(), "status: Forbidden: the status of a static pod is reported by Ballast") {
		t.Errorf("a real status must be refused, got %v", err)
	}
}
