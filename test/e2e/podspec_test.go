package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// The fields of this version reach the container: command and args with
// $(VAR) expansion, env, workingDir, hostPath and emptyDir volumes, and the
// host network.
func TestPodSpecBasics(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	hostDir := filepath.Join(env.Dir, "hostpath")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "from-host"), []byte("host data"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.write("spec.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: spec
spec:
  volumes:
  - name: host
    hostPath:
      path: %s
  - name: scratch
    emptyDir: {}
  containers:
  - name: app
    image: %s
    command: ["/hello"]
    args: ["--greeting=$(GREETING)", "$$(ESCAPED)"]
    workingDir: /tmp
    env:
    - name: GREETING
      value: hi
    - name: COMBINED
      value: $(GREETING)-there
    - name: WRITE_FILE
      value: /scratch/made-here=pod data
    volumeMounts:
    - name: host
      mountPath: /host
      readOnly: true
    - name: scratch
      mountPath: /scratch
`, hostDir, env.HelloImage()))
	p := n.waitPod("spec", "running", running)
	base := fmt.Sprintf("http://%s:%d", p.Status.PodIP, harness.HelloPort)
	envOut, err := get(base + "/env")
	if err != nil || !strings.Contains(envOut, "COMBINED=hi-there\n") || !strings.Contains(envOut, "GREETING=hi\n") {
		t.Errorf("env:\n%s %v", envOut, err)
	}
	if b, err := get(base + "/file?path=/host/from-host"); err != nil || b != "host data" {
		t.Errorf("hostPath read: %q %v", b, err)
	}
	if b, err := get(base + "/file?path=/scratch/made-here"); err != nil || b != "pod data" {
		t.Errorf("emptyDir read: %q %v", b, err)
	}
	logs, err := n.run("logs", "spec")
	if err != nil || !strings.Contains(logs, `args=["--greeting=hi" "$(ESCAPED)"] cwd=/tmp`) {
		t.Errorf("args/workingDir not as written:\n%s %v", logs, err)
	}

	// Host network: the pod's IP is the host's, and it serves on the host.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	n.write("hostnet.yaml", manifest{Name: "hostnet", Image: env.HelloImage(), HostNetwork: true, Env: map[string]string{"PORT": fmt.Sprint(port)}}.yaml())
	hp := n.waitPod("hostnet", "running", running)
	if hp.Status.PodIP != hp.Status.HostIP {
		t.Errorf("host network pod IP %s, host IP %s", hp.Status.PodIP, hp.Status.HostIP)
	}
	n.eventually("host network pod serves on 127.0.0.1", 30*time.Second, func() error {
		b, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return err
		}
		if !strings.Contains(b, "hello from") {
			return fmt.Errorf("%q", b)
		}
		return nil
	})
}
