package bootstrap

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/auth"
)

// The node's credential files in its data dir, written by `ballast join`
// and `ballast init`, read by `ballast node` when it is given no API server.
const (
	KubeconfigFile = "node.kubeconfig"
	CAFile         = "node-ca.crt"
)

// KubeconfigPath is the node's kubeconfig in dataDir.
func KubeconfigPath(dataDir string) string { return filepath.Join(dataDir, KubeconfigFile) }

// CAPath is the cluster CA in dataDir, which the node's kubelet API trusts
// for client certificates (the API server's, for logs and metrics).
func CAPath(dataDir string) string { return filepath.Join(dataDir, CAFile) }

// Credentials are a node's connection to its API server: the server, its
// CA, and the node's client certificate and key.
type Credentials struct {
	Server                 string
	CAPEM, CertPEM, KeyPEM []byte
}

// Identity is what a node's credentials are for.
type Identity struct {
	Server string
	// CAHash is the pin of the CA (auth.CAHash).
	CAHash string
	// Node is the node's name; NotAfter when its certificate expires.
	Node     string
	NotAfter time.Time
}

// Identity checks the credentials (the certificate matches the key, chains
// to the CA and is a node's client certificate, valid at now) and says what
// they are for.
func (c *Credentials) Identity(now time.Time) (Identity, error) {
	block, _ := pem.Decode(c.CAPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return Identity{}, errors.New("no PEM CA certificate")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return Identity{}, fmt.Errorf("CA certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		return Identity{}, fmt.Errorf("client certificate and key: %w", err)
	}
	leaf := pair.Leaf
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return Identity{}, fmt.Errorf("client certificate: %w", err)
	}
	u := auth.User{Name: leaf.Subject.CommonName, Groups: slices.Clone(leaf.Subject.Organization)}
	if u.NodeName() == "" {
		return Identity{}, fmt.Errorf("client certificate is for %q in %v, not a node (system:node:<name> in system:nodes)", u.Name, u.Groups)
	}
	return Identity{Server: c.Server, CAHash: auth.CAHash(ca), Node: u.NodeName(), NotAfter: leaf.NotAfter}, nil
}

// Check checks the credentials are valid at now and for server, the CA of
// pin caHash and node.
func (c *Credentials) Check(server, caHash, node string, now time.Time) error {
	id, err := c.Identity(now)
	if err != nil {
		return err
	}
	if id.Server != server || id.CAHash != caHash || id.Node != node {
		return fmt.Errorf("they are for node %s at %s (CA %s), not node %s at %s (CA %s)", id.Node, id.Server, id.CAHash, node, server, caHash)
	}
	return nil
}

// Write writes the node's kubeconfig (mode 0600: it holds the key) and the
// CA into dataDir, each atomically.
func (c *Credentials) Write(dataDir string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(CAPath(dataDir), c.CAPEM, 0o644); err != nil {
		return fmt.Errorf("writing the cluster CA: %w", err)
	}
	return auth.WriteKubeconfig(KubeconfigPath(dataDir), c.Server, c.CAPEM, c.CertPEM, c.KeyPEM, "", "node")
}

// ReadCredentials reads the node's kubeconfig in dataDir; when there is
// none, the error is fs.ErrNotExist.
func ReadCredentials(dataDir string) (*Credentials, error) {
	path := KubeconfigPath(dataDir)
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil {
		return nil, fmt.Errorf("%s: no current context", path)
	}
	cluster, user := cfg.Clusters[ctx.Cluster], cfg.AuthInfos[ctx.AuthInfo]
	if cluster == nil || user == nil {
		return nil, fmt.Errorf("%s: the current context names no cluster or user", path)
	}
	return &Credentials{Server: cluster.Server, CAPEM: cluster.CertificateAuthorityData, CertPEM: user.ClientCertificateData, KeyPEM: user.ClientKeyData}, nil
}

// Existing reads the node's credentials in dataDir, or returns nil when it
// has none.
func Existing(dataDir string) (*Credentials, error) {
	c, err := ReadCredentials(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return c, err
}

// Joined tells whether the node in dataDir already holds valid credentials
// for this server, the CA of pin and this name, not within
// auth.RenewBefore of expiry: a join again keeps them. Credentials for
// another cluster (another CA) or another name are refused; unusable ones
// (expired, say) are replaced by a join.
func Joined(dataDir, server, pin, name string, now time.Time) (bool, error) {
	c, err := Existing(dataDir)
	if err != nil || c == nil {
		return false, err
	}
	id, err := c.Identity(now)
	if err != nil {
		return false, nil
	}
	path := KubeconfigPath(dataDir)
	if id.CAHash != pin {
		return false, fmt.Errorf("this node belongs to another cluster (%s, CA %s; %s): to join %s instead, stop its agent and remove %s first", id.Server, id.CAHash, path, server, path)
	}
	if id.Node != name {
		return false, fmt.Errorf("this data dir joined as node %s (%s): run with --node-name %s, or use another --data-dir", id.Node, path, id.Node)
	}
	return id.Server == server && now.Add(auth.RenewBefore).Before(id.NotAfter), nil
}
