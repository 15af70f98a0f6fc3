package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/storage/etcd/etcdtest"
)

// server is one API server process of a run.
type server struct {
	name       string
	cmd        *exec.Cmd
	log        string
	exited     chan struct{}
	kubeconfig string
	// caCert and caKey sign client certificates the server accepts.
	caCert, caKey string
}

// under is what a fleet runs against: servers on one etcd cluster.
type under struct {
	servers []*server
	etcd    *etcdtest.Cluster
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProc starts a server process, logging to dir/name.log, stopped
// (by PID) when tb ends.
func startProc(tb testing.TB, dir, name, bin string, args ...string) *server {
	tb.Helper()
	s := &server{name: name, log: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	f, err := os.Create(s.log)
	if err != nil {
		tb.Fatal(err)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = f, f
	if err := s.cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = s.cmd.Wait(); f.Close(); close(s.exited) }()
	tb.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

// waitReady waits until s answers /readyz through its kubeconfig.
func (s *server) waitReady(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.exited:
			tb.Fatalf("%s exited: %s", s.name, tail(s.log))
		default:
		}
		if _, err := os.Stat(s.kubeconfig); err == nil {
			if cs, err := kubernetes.NewForConfig(s.rest(tb)); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err = cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
				cancel()
				if err == nil {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready within %v: %s", s.name, timeout, tail(s.log))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *server) rest(tb testing.TB) *rest.Config {
	tb.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		tb.Fatal(err)
	}
	rc.QPS, rc.Burst, rc.Timeout = -1, 0, 0
	return rc
}

// usage is a process's CPU time so far and resident memory now.
type usage struct {
	cpu time.Duration
	rss int64 // bytes
}

func (s *server) usage() usage {
	pid := s.cmd.Process.Pid
	var u usage
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command (which may hold spaces) end with ")".
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			u.cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				u.rss = kb << 10
			}
		}
	}
	return u
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// startBallast starts n `ballast server`s on one 3-member etcd cluster,
// sharing one PKI (so a node's certificate works with each).
func startBallast(tb testing.TB, bin, etcdBin string, n int) *under {
	tb.Helper()
	u := &under{etcd: etcdtest.StartClusterOf(tb, etcdBin, 3)}
	dir := tb.TempDir()
	for i := range n {
		data := filepath.Join(dir, fmt.Sprintf("server%d", i))
		if i > 0 {
			if err := os.MkdirAll(data, 0o700); err != nil {
				tb.Fatal(err)
			}
			if out, err := exec.Command("cp", "-a", filepath.Join(dir, "server0", "pki"), data).CombinedOutput(); err != nil {
				tb.Fatalf("sharing the PKI: %v: %s", err, out)
			}
		}
		s := startProc(tb, dir, fmt.Sprintf("ballast-server-%d", i), bin, "server",
			"--data-dir", data, "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(tb)),
			"--etcd-servers", strings.Join(u.etcd.Endpoints, ","),
			"--etcd-cafile", u.etcd.CAFile, "--etcd-certfile", u.etcd.CertFile, "--etcd-keyfile", u.etcd.KeyFile,
			"--log-level", "warn")
		s.kubeconfig = filepath.Join(data, "kubeconfig")
		s.caCert, s.caKey = filepath.Join(data, "pki", "ca.crt"), filepath.Join(data, "pki", "ca.key")
		s.waitReady(tb, 2*time.Minute)
		u.servers = append(u.servers, s)
	}
	return u
}

// startKube starts kube-apiserver 1.32 (Node,RBAC and NodeRestriction,
// as a real cluster) on a 3-member etcd cluster of its own.
func startKube(tb testing.TB, bins string) *under {
	tb.Helper()
	u := &under{etcd: etcdtest.StartClusterOf(tb, filepath.Join(bins, "etcd"), 3)}
	dir := tb.TempDir()
	pki, err := auth.LoadOrCreatePKI(filepath.Join(dir, "pki"), nil) // serving 127.0.0.1 and localhost
	if err != nil {
		tb.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(dir, "pki", name) }
	certPEM, keyPEM, err := pki.IssueClientCert(auth.User{Name: "admin", Groups: []string{"system:masters"}})
	if err != nil {
		tb.Fatal(err)
	}
	admin, adminKey := filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")
	saKey := filepath.Join(dir, "sa.key") // signs service account tokens
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	for file, b := range map[string][]byte{admin: certPEM, adminKey: keyPEM, saKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})} {
		if err := os.WriteFile(file, b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	port := freePort(tb)
	s := startProc(tb, dir, "kube-apiserver", filepath.Join(bins, "kube-apiserver"),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", fmt.Sprint(port),
		"--etcd-servers", strings.Join(u.etcd.Endpoints, ","),
		"--etcd-cafile", u.etcd.CAFile, "--etcd-certfile", u.etcd.CertFile, "--etcd-keyfile", u.etcd.KeyFile,
		"--tls-cert-file", p(auth.ServerCertFile), "--tls-private-key-file", p(auth.ServerKeyFile),
		"--client-ca-file", p(auth.CACertFile),
		"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.96.0.0/24", "--endpoint-reconciler-type", "none",
		"--cert-dir", filepath.Join(dir, "apiserver-certs"), "--profiling=false", "--v", "1")
	s.kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	s.caCert, s.caKey = p(auth.CACertFile), p(auth.CAKeyFile)
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kube
  cluster: {server: "https://127.0.0.1:%d", certificate-authority: %q}
users:
- name: admin
  user: {client-certificate: %q, client-key: %q}
contexts:
- name: admin
  context: {cluster: kube, user: admin}
current-context: admin
`, port, p(auth.CACertFile), admin, adminKey)
	if err := os.WriteFile(s.kubeconfig, []byte(kc), 0o600); err != nil {
		tb.Fatal(err)
	}
	s.waitReady(tb, 3*time.Minute)
	u.servers = []*server{s}
	return u
}
