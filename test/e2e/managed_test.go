package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// Without --container-runtime-endpoint the agent starts its own containerd,
// imports images from its images directory, keeps containerd running when
// it exits, adopts it when it starts again, and restarts it if it dies.
func TestManagedContainerd(t *testing.T) {
	m := harness.NewManaged(t)
	n := newManagedNode(t, m)
	n.start()
	n.write("hello.yaml", manifest{Name: "hello", Image: harness.HelloTarballRef}.yaml())
	p := n.waitPod("hello", "running", running)
	body, err := get(fmt.Sprintf("http://%s:%d/", p.Status.PodIP, harness.HelloPort))
	if err != nil || !strings.Contains(body, "hello from hello-managed") {
		t.Fatalf("GET: %q %v", body, err)
	}
	pid := containerdPid(t, m)

	n.kill9()
	n.start()
	if again := containerdPid(t, m); again != pid {
		t.Errorf("containerd pid %d after agent restart, want the adopted %d", again, pid)
	}
	if !strings.Contains(n.logText(), "adopted running containerd") {
		t.Errorf("agent did not say it adopted containerd")
	}
	if q := n.waitPod("hello", "running", running); containerID(q) != containerID(p) {
		t.Errorf("pod restarted by the agent restart")
	}

	// containerd dies: the agent starts it again and nothing is lost.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n.eventually("containerd restarted by the agent", 60*time.Second, func() error {
		if now := containerdPid(t, m); now == pid || now == 0 {
			return fmt.Errorf("containerd pid %d", now)
		}
		return nil
	})
	n.write("second.yaml", manifest{Name: "second", Image: harness.HelloTarballRef}.yaml())
	n.waitPod("second", "running", running)
	if q := n.waitPod("hello", "running", running); containerID(q) != containerID(p) {
		t.Errorf("pod restarted by the containerd restart")
	}
}

func containerdPid(t *testing.T, m *harness.Managed) int {
	b, err := os.ReadFile(filepath.Join(m.Dir, "containerd", "containerd.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
