package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
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
	ca := newCA(tb, dir)
	serving, servingKey := ca.issue(tb, "serving", "kube-apiserver", nil, "127.0.0.1", "localhost", "10.96.0.1")
	admin, adminKey := ca.issue(tb, "admin", "admin", []string{"system:masters"})
	_, saKey := ca.issue(tb, "sa", "sa", nil) // its key signs service account tokens
	port := freePort(tb)
	s := startProc(tb, dir, "kube-apiserver", filepath.Join(bins, "kube-apiserver"),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", fmt.Sprint(port),
		"--etcd-servers", strings.Join(u.etcd.Endpoints, ","),
		"--etcd-cafile", u.etcd.CAFile, "--etcd-certfile", u.etcd.CertFile, "--etcd-keyfile", u.etcd.KeyFile,
		"--tls-cert-file", serving, "--tls-private-key-file", servingKey,
		"--client-ca-file", ca.certFile,
		"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.96.0.0/24", "--endpoint-reconciler-type", "none",
		"--cert-dir", filepath.Join(dir, "apiserver-certs"), "--profiling=false", "--v", "1")
	s.kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	s.caCert, s.caKey = ca.certFile, ca.keyFile
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
`, port, ca.certFile, admin, adminKey)
	if err := os.WriteFile(s.kubeconfig, []byte(kc), 0o600); err != nil {
		tb.Fatal(err)
	}
	s.waitReady(tb, 3*time.Minute)
	u.servers = []*server{s}
	return u
}

// testCA is a CA in files.
type testCA struct {
	dir, certFile, keyFile string
	cert                   *x509.Certificate
	key                    *ecdsa.PrivateKey
}

func newCA(tb testing.TB, dir string) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fleet-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{dir: dir, cert: cert, key: key, certFile: filepath.Join(dir, "ca.crt"), keyFile: filepath.Join(dir, "ca.key")}
	writePEM(tb, ca.certFile, "CERTIFICATE", der)
	kder, _ := x509.MarshalECPrivateKey(key)
	writePEM(tb, ca.keyFile, "EC PRIVATE KEY", kder)
	return ca
}

// issue writes a certificate (client and server use) and its key.
func (ca *testCA) issue(tb testing.TB, name, cn string, orgs []string, hosts ...string) (certFile, keyFile string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, name+".crt"), filepath.Join(ca.dir, name+".key")
	writePEM(tb, certFile, "CERTIFICATE", der)
	kder, _ := x509.MarshalECPrivateKey(key)
	writePEM(tb, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}
