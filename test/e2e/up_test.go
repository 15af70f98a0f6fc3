package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// kubectlPath finds the real kubectl: the API tests are judged by it.
func kubectlPath(t *testing.T) string {
	p, err := exec.LookPath("kubectl")
	if err != nil {
		testutil.Need(t, "kubectl is not installed: the API tests need the real kubectl (1.32 here; apt-get install kubernetes-client is an old fallback)")
	}
	return p
}

// upProcess is `ballast up` under test.
type upProcess struct {
	*node
	kubeconfig string
	cacheDir   string
	kubectl    string
}

func startUp(t *testing.T, env *harness.Env) *upProcess {
	return startUpWith(t, env, nil)
}

// startUpWith is startUp with the node changed first (its data dir, say).
func startUpWith(t *testing.T, env *harness.Env, change func(*node)) *upProcess {
	n := newNode(t, env)
	if change != nil {
		change(n)
	}
	kc := kubectlPath(t)
	args := []string{"up", "--node-name", n.name, "--data-dir", n.dataDir, "--pod-manifest-path", n.manifests,
		"--images-dir", n.imagesDir, "--container-runtime-endpoint", env.Endpoint, "--listen", "127.0.0.1:0",
		"--crash-backoff-initial", "1s", "--crash-backoff-max", "4s"}
	cmd := exec.Command(n.bin, args...)
	cmd.Stderr = lockedWriter{n}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd = cmd
	n.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(n.exited) }()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			lockedWriter{n}.Write([]byte("stdout: " + sc.Text() + "\n"))
			if strings.HasPrefix(sc.Text(), "ready") && !once {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-n.exited:
		t.Fatalf("ballast up exited before ready:\n%s", n.logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("ballast up not ready in 60s:\n%s", n.logText())
	}
	return &upProcess{node: n, kubeconfig: filepath.Join(n.dataDir, "kubeconfig"), cacheDir: t.TempDir(), kubectl: kc}
}

// k runs kubectl against the server and returns its combined output.
func (u *upProcess) k(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.kubectl, append([]string{"--kubeconfig", u.kubeconfig, "--cache-dir", u.cacheDir}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+u.cacheDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// `ballast up`: the static pod shows in kubectl as <name>-<node>, 1/1
// Running; deleting its mirror brings it back; changing its spec is refused
// with a message naming the node and the file; kubectl logs works.
func TestUpKubectl(t *testing.T) {
	env := harness.Start(t)
	u := startUp(t, env)
	if info, err := os.Stat(u.kubeconfig); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin kubeconfig: %v %v", info, err)
	}
	u.write("web.yaml", manifest{Name: "web", Image: env.HelloImage(), Env: map[string]string{"LOG_LINES": "3"}}.yaml())
	name := "web-" + u.name
	u.eventually("kubectl get pods shows the static pod Running", 60*time.Second, func() error {
		return kubectlShowsRunning(u.k, name)
	})
	uid, err := u.k("get", "pod", name, "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatal(uid, err)
	}
	out, err := u.k("get", "nodes")
	if err != nil || !strings.Contains(out, u.name) || !strings.Contains(out, "Ready") {
		t.Errorf("kubectl get nodes:\n%s %v", out, err)
	}
	out, err = u.k("logs", name)
	if err != nil || !strings.Contains(out, "line 3") {
		t.Errorf("kubectl logs:\n%s %v", out, err)
	}
	out, err = u.k("set", "image", "pod/"+name, "app=other:v2")
	if err == nil || !strings.Contains(out, u.name) || !strings.Contains(out, "web.yaml") {
		t.Errorf("kubectl set image must fail naming the node and the manifest:\n%s %v", out, err)
	}
	out, err = u.k("delete", "pod", name, "--wait=false")
	if err != nil {
		t.Fatalf("kubectl delete: %s %v", out, err)
	}
	u.eventually("the mirror pod comes back", 30*time.Second, func() error {
		got, err := u.k("get", "pod", name, "-o", "jsonpath={.metadata.uid}")
		if err != nil || got == uid || got == "" {
			return fmt.Errorf("uid %q (was %q) %v", got, uid, err)
		}
		return nil
	})
	if p := u.pod("web"); p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("deleting the mirror restarted the container")
	}
	out, err = u.k("get", "events")
	if err != nil || !strings.Contains(out, "Started") {
		t.Errorf("kubectl get events:\n%s %v", out, err)
	}
	u.remove("web.yaml")
	u.eventually("mirror pod removed with its file", 60*time.Second, func() error {
		out, _ := u.k("get", "pods")
		if strings.Contains(out, name) {
			return fmt.Errorf("still listed:\n%s", out)
		}
		return nil
	})
	_ = u.cmd.Process.Signal(syscall.SIGTERM)
}

// kubectlShowsRunning checks that `kubectl get pods` (run by k) shows name
// as 1/1 Running.
func kubectlShowsRunning(k func(args ...string) (string, error), name string) error {
	out, err := k("get", "pods")
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == name && f[1] == "1/1" && f[2] == "Running" {
			return nil
		}
	}
	return fmt.Errorf("kubectl get pods:\n%s", out)
}
