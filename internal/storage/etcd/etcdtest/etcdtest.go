// Package etcdtest starts real etcd clusters for tests: separate etcd
// processes (Debian's etcd-server package, or any etcd on PATH) on
// 127.0.0.1 ports in a temporary directory, serving clients over TLS with
// client certificates. Tests are skipped where no etcd binary is found.
package etcdtest

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
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// Cluster is a running etcd cluster.
type Cluster struct {
	// Members, in order; Endpoints[i] is Members[i].ClientURL.
	Members   []*Member
	Endpoints []string
	// CAFile signed the members' serving certificates; CertFile and
	// KeyFile are a client certificate the members accept.
	CAFile, CertFile, KeyFile string

	t testing.TB
}

// Member is one etcd process.
type Member struct {
	Name, ClientURL, PeerURL, Dir, LogFile string
	cmd                                    *exec.Cmd
	exited                                 chan struct{}
}

// StartCluster starts an n-member cluster and waits until every member
// serves. The processes are killed when t ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterOf(t, "", n)
}

// StartClusterOf is StartCluster with the etcd binary at bin ("": etcd on
// PATH).
func StartClusterOf(t testing.TB, bin string, n int) *Cluster {
	t.Helper()
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			testutil.Need(t, "no etcd binary on PATH: the external-cluster tests need it (apt-get install -y etcd-server)")
		}
	}
	dir := t.TempDir()
	c := &Cluster{t: t}
	c.CAFile, c.CertFile, c.KeyFile = writeCerts(t, dir)

	ports := freePorts(t, 2*n)
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("https://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			Dir:       filepath.Join(dir, fmt.Sprintf("m%d", i)),
			LogFile:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
		}
		c.Members = append(c.Members, m)
		c.Endpoints = append(c.Endpoints, m.ClientURL)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.kill()
		}
	})
	for _, m := range c.Members {
		log, err := os.Create(m.LogFile)
		if err != nil {
			t.Fatal(err)
		}
		m.cmd = exec.Command(bin,
			"--name", m.Name,
			"--data-dir", m.Dir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(dir),
			"--cert-file", filepath.Join(dir, "server.crt"),
			"--key-file", filepath.Join(dir, "server.key"),
			"--trusted-ca-file", c.CAFile,
			"--client-cert-auth",
			"--heartbeat-interval", "50",
			"--election-timeout", "500",
			"--logger", "zap",
			"--log-level", "warn",
		)
		m.cmd.Stdout, m.cmd.Stderr = log, log
		if err := m.cmd.Start(); err != nil {
			log.Close()
			t.Fatalf("start etcd member %s: %v", m.Name, err)
		}
		log.Close()
		m.exited = make(chan struct{})
		go func(cmd *exec.Cmd, exited chan struct{}) {
			cmd.Wait()
			close(exited)
		}(m.cmd, m.exited)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, m := range c.Members {
		for !c.healthy(m.ClientURL) {
			select {
			case <-m.exited:
				t.Fatalf("etcd member %s exited: %s", m.Name, tail(m.LogFile))
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("etcd member %s not serving within 30 s: %s", m.Name, tail(m.LogFile))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c
}

// Client returns a client of the given endpoints (all members when none),
// closed when the test ends.
func (c *Cluster) Client(endpoints ...string) *clientv3.Client {
	c.t.Helper()
	if len(endpoints) == 0 {
		endpoints = c.Endpoints
	}
	cli, err := c.newClient(endpoints)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

func (c *Cluster) newClient(endpoints []string) (*clientv3.Client, error) {
	tlsConfig, err := transport.TLSInfo{CertFile: c.CertFile, KeyFile: c.KeyFile, TrustedCAFile: c.CAFile}.ClientConfig()
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsConfig, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
}

func (c *Cluster) healthy(endpoint string) bool {
	cli, err := c.newClient([]string{endpoint})
	if err != nil {
		return false
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = cli.Get(ctx, "health")
	return err == nil
}

// Leader returns the index of the member that leads the cluster.
func (c *Cluster) Leader() int {
	c.t.Helper()
	cli := c.Client()
	for i, ep := range c.Endpoints {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cli.Status(ctx, ep)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	c.t.Fatal("no etcd member is leader")
	return -1
}

// Stop kills member i (SIGKILL, by its process id) and waits for it to exit.
func (c *Cluster) Stop(i int) { c.Members[i].kill() }

func (m *Member) kill() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	select {
	case <-m.exited:
		return
	default:
	}
	syscall.Kill(m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.exited
}

func tail(file string) string {
	b, _ := os.ReadFile(file)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// freePorts returns n distinct ports free on 127.0.0.1 a moment ago.
func freePorts(t testing.TB, n int) []int {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// writeCerts writes a CA, a serving certificate for 127.0.0.1 and a client
// certificate into dir.
func writeCerts(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "etcdtest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name string, blockType string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".crt", "CERTIFICATE", der)
		write(name+".key", "EC PRIVATE KEY", keyDER)
	}
	issue("server", 2, x509.ExtKeyUsageServerAuth)
	issue("client", 3, x509.ExtKeyUsageClientAuth)
	return write("ca.crt", "CERTIFICATE", caDER), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
}
