// Package e2e holds Ballast's end-to-end tests: a real containerd with real
// runc (started by the harness in a temp dir), images built by the tests and
// served from an in-process registry, and the real `ballast` binary.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/testutil"
	"github.com/ballast-dev/ballast/test/e2e/harness"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// ballastBinary builds cmd/ballast once per test run.
func ballastBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := harness.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "ballast-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ballast")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/ballast")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// node is one `ballast node` process under test.
type node struct {
	t         *testing.T
	env       *harness.Env
	bin       string
	name      string
	dataDir   string
	manifests string
	imagesDir string
	extra     []string
	cmd       *exec.Cmd
	logMu     sync.Mutex
	log       bytes.Buffer
	exited    chan struct{}
}

func newNode(t *testing.T, env *harness.Env, extra ...string) *node {
	t.Helper()
	n := &node{
		t: t, env: env, bin: ballastBinary(t), name: "node-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		dataDir:   filepath.Join(env.Dir, "ballast"),
		manifests: filepath.Join(env.Dir, "manifests"),
		imagesDir: filepath.Join(env.Dir, "images"),
		extra:     extra,
	}
	if len(n.name) > 40 {
		n.name = n.name[:40]
	}
	n.name = strings.TrimRight(n.name, "-")
	for _, d := range []string{n.manifests, n.imagesDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			n.logMu.Lock()
			t.Logf("ballast node log:\n%s", n.log.String())
			n.logMu.Unlock()
		}
	})
	return n
}

type lockedWriter struct{ n *node }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.n.logMu.Lock()
	defer w.n.logMu.Unlock()
	return w.n.log.Write(p)
}

// newManagedNode is a node that starts its own containerd.
func newManagedNode(t *testing.T, m *harness.Managed) *node {
	n := &node{
		t: t, bin: ballastBinary(t), name: "managed",
		dataDir:   m.Dir,
		manifests: filepath.Join(m.Dir, "manifests"),
		imagesDir: m.ImagesDir,
		extra:     []string{"--cni-bridge", m.BridgeName, "--pod-cidr", m.Subnet, "--pod-infra-image", harness.SandboxImage},
	}
	if err := os.MkdirAll(n.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("ballast node log:\n%s", n.logText())
		}
	})
	return n
}

func (n *node) start() {
	n.t.Helper()
	args := []string{"node", "--node-name", n.name, "--data-dir", n.dataDir,
		"--pod-manifest-path", n.manifests, "--images-dir", n.imagesDir}
	if n.env != nil {
		args = append(args, "--container-runtime-endpoint", n.env.Endpoint)
	}
	args = append(args,
		"--crash-backoff-initial", "1s", "--crash-backoff-max", "4s",
		"--image-pull-backoff-initial", "1s", "--image-pull-backoff-max", "2s",
		"--log-level", "debug")
	args = append(args, n.extra...)
	n.cmd = exec.Command(n.bin, args...)
	n.cmd.Stdout = lockedWriter{n}
	n.cmd.Stderr = lockedWriter{n}
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { _ = c.Wait(); close(ch) }(n.cmd, n.exited)
	n.eventually("the agent answers on its socket", 30*time.Second, func() error {
		_, err := n.run("pods")
		return err
	})
}

// stop ends the agent with SIGTERM (pods keep running).
func (n *node) stop() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
	n.cmd = nil
}

// kill9 ends the agent with SIGKILL.
func (n *node) kill9() {
	n.t.Helper()
	if err := n.cmd.Process.Kill(); err != nil {
		n.t.Fatal(err)
	}
	<-n.exited
	n.cmd = nil
}

func (n *node) logText() string {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	return n.log.String()
}

// run runs a ballast client command against this node's data dir.
func (n *node) run(args ...string) (string, error) {
	args = append(args, "--data-dir", n.dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, n.bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ballast %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (n *node) pods() []corev1.Pod {
	n.t.Helper()
	out, err := n.run("pods", "-o", "json")
	if err != nil {
		n.t.Fatal(err)
	}
	var list corev1.PodList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		n.t.Fatalf("ballast pods -o json: %v\n%s", err, out)
	}
	return list.Items
}

func (n *node) pod(name string) *corev1.Pod {
	for _, p := range n.pods() {
		if p.Name == name+"-"+n.name {
			return &p
		}
	}
	return nil
}

// eventually retries check until it passes or the timeout (generous: these
// machines are slow and noisy) ends.
func (n *node) eventually(what string, timeout time.Duration, check func() error) {
	n.t.Helper()
	if err := testutil.PollEvery(100*time.Millisecond, timeout, check); err != nil {
		n.t.Fatalf("waited for %s: %v", what, err)
	}
}

// waitPod waits until the pod satisfies cond, and returns it.
func (n *node) waitPod(name, what string, cond func(p *corev1.Pod) error) *corev1.Pod {
	n.t.Helper()
	var got *corev1.Pod
	n.eventually(name+": "+what, 60*time.Second, func() error {
		p := n.pod(name)
		if p == nil {
			return fmt.Errorf("pod %s-%s not listed", name, n.name)
		}
		got = p
		return cond(p)
	})
	return got
}

func running(p *corev1.Pod) error {
	if p.Status.Phase != corev1.PodRunning {
		return fmt.Errorf("phase %s (%s)", p.Status.Phase, reasons(p))
	}
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready {
			return fmt.Errorf("container %s not ready (%s)", c.Name, reasons(p))
		}
	}
	return nil
}

func reasons(p *corev1.Pod) string {
	var rs []string
	for _, c := range p.Status.ContainerStatuses {
		switch {
		case c.State.Waiting != nil:
			rs = append(rs, c.Name+": waiting "+c.State.Waiting.Reason+" "+c.State.Waiting.Message)
		case c.State.Terminated != nil:
			rs = append(rs, fmt.Sprintf("%s: terminated %s exit %d", c.Name, c.State.Terminated.Reason, c.State.Terminated.ExitCode))
		case c.State.Running != nil:
			rs = append(rs, c.Name+": running")
		}
	}
	return strings.Join(rs, "; ")
}

// manifest is a pod manifest of the hello image.
type manifest struct {
	Name          string
	Image         string
	Env           map[string]string
	RestartPolicy string
	Grace         int
	HostNetwork   bool
	PullPolicy    string
}

func (m manifest) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  labels:\n    app: %s\nspec:\n", m.Name, m.Name)
	if m.RestartPolicy != "" {
		fmt.Fprintf(&b, "  restartPolicy: %s\n", m.RestartPolicy)
	}
	if m.Grace > 0 {
		fmt.Fprintf(&b, "  terminationGracePeriodSeconds: %d\n", m.Grace)
	}
	if m.HostNetwork {
		b.WriteString("  hostNetwork: true\n")
	}
	fmt.Fprintf(&b, "  containers:\n  - name: app\n    image: %s\n", m.Image)
	if m.PullPolicy != "" {
		fmt.Fprintf(&b, "    imagePullPolicy: %s\n", m.PullPolicy)
	}
	if len(m.Env) > 0 {
		b.WriteString("    env:\n")
		for k, v := range m.Env {
			fmt.Fprintf(&b, "    - name: %s\n      value: %q\n", k, v)
		}
	}
	return b.String()
}

// write writes a manifest atomically (temp file, then rename), as tools do.
func (n *node) write(file, content string) {
	n.t.Helper()
	tmp := filepath.Join(filepath.Dir(n.manifests), ".tmp-"+file)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(n.manifests, file)); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) remove(file string) {
	n.t.Helper()
	if err := os.Remove(filepath.Join(n.manifests, file)); err != nil {
		n.t.Fatal(err)
	}
}

// get fetches url. A container that runs may not listen yet: a refused
// connection is tried again for a while.
func get(url string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	var r *http.Response
	var err error
	_ = testutil.PollEvery(100*time.Millisecond, 20*time.Second, func() error {
		r, err = c.Get(url)
		if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			return err // not listening yet: try again
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

func containerID(p *corev1.Pod) string {
	if len(p.Status.ContainerStatuses) == 0 {
		return ""
	}
	return p.Status.ContainerStatuses[0].ContainerID
}
