package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// apiServer is a separate `ballast server` process under test.
type apiServer struct {
	t          *testing.T
	bin        string
	dataDir    string
	port       int
	url        string
	kubeconfig string
	cacheDir   string
	kubectl    string
	log        *node // reuses node's locked log buffer
	cmd        *exec.Cmd
	exited     chan struct{}
}

// apiFreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func apiFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startAPIServer(t *testing.T, env *harness.Env) *apiServer {
	s := &apiServer{
		t: t, bin: ballastBinary(t), dataDir: filepath.Join(env.Dir, "server"), port: apiFreePort(t),
		cacheDir: t.TempDir(), kubectl: kubectlPath(t), log: &node{t: t},
	}
	s.kubeconfig = filepath.Join(s.dataDir, "kubeconfig")
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("ballast server log:\n%s", s.log.logText())
		}
	})
	return s
}

// start starts (or restarts) the server on its data dir and port.
func (s *apiServer) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "server", "--data-dir", s.dataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", s.port), "--log-level", "debug")
	cmd.Stderr = lockedWriter{s.log}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { _ = c.Wait(); close(ch) }(cmd, s.exited)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lockedWriter{s.log}.Write([]byte("stdout: " + sc.Text() + "\n"))
			if u, ok := strings.CutPrefix(sc.Text(), "ballast server ready at "); ok {
				ready <- strings.TrimSpace(u)
			}
		}
	}()
	select {
	case s.url = <-ready:
	case <-s.exited:
		s.t.Fatalf("ballast server exited before ready:\n%s", s.log.logText())
	case <-time.After(60 * time.Second):
		s.t.Fatalf("ballast server not ready in 60s:\n%s", s.log.logText())
	}
}

// kill9 kills the server process by its PID.
func (s *apiServer) kill9() {
	s.t.Helper()
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
	<-s.exited
	s.cmd = nil
}

func (s *apiServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd = nil
}

// k runs the real kubectl against the server.
func (s *apiServer) k(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.kubectl, append([]string{"--kubeconfig", s.kubeconfig, "--cache-dir", s.cacheDir}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+s.cacheDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// client is a client-go client with the admin kubeconfig (for timing).
func (s *apiServer) client() kubernetes.Interface {
	s.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.Timeout = 5 * time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func (s *apiServer) token(node string) string {
	s.t.Helper()
	out, err := exec.Command(s.bin, "server", "token", "create", "--node", node, "--data-dir", s.dataDir).Output()
	if err != nil {
		s.t.Fatalf("token create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func (s *apiServer) caFile() string { return filepath.Join(s.dataDir, "pki", "ca.crt") }

// startAPINode starts a separate `ballast node` joined to s with a token,
// serving its kubelet API on a free port of 127.0.0.1.
func startAPINode(t *testing.T, env *harness.Env, s *apiServer) (*node, int) {
	kport := apiFreePort(t)
	n := newNode(t, env)
	tok := s.token(n.name)
	n.extra = []string{"--server", s.url, "--token", tok, "--certificate-authority", s.caFile(),
		"--node-ip", "127.0.0.1", "--address", "127.0.0.1", "--port", fmt.Sprint(kport), "--client-ca-file", s.caFile()}
	n.start()
	return n, kport
}

// mirrorRunning checks that kubectl get pods shows name 1/1 Running.
func (s *apiServer) mirrorRunning(name string) error { return kubectlShowsRunning(s.k, name) }

func (s *apiServer) getPod(c kubernetes.Interface, name string) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
}
