package controlplane

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/bootstrap"
	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/manifest"
)

// Options are what `ballast init` is told.
type Options struct {
	Config
	ManifestDir, ImagesDir string
	NodeName               string
	// NodeIP is the address other nodes join at when the server listens on
	// every address.
	NodeIP string
	// Executable is the binary the image is built from.
	Executable string
	// JoinTTL is the lifetime of the join token init creates (0: none).
	JoinTTL time.Duration
}

// Result is what init prepared.
type Result struct {
	// URL is where this node reaches the server; Kubeconfig the admin's.
	URL, Kubeconfig string
	// JoinURL, JoinToken and CAHash make the join command of other nodes.
	JoinURL, JoinToken, CAHash string
	JoinExpires                time.Time
	Image                      string
	Manifests                  []string
}

// JoinCommand is the command another node runs to join.
func (r *Result) JoinCommand() string {
	return fmt.Sprintf("ballast join %s --token %s --ca-cert-hash %s", r.JoinURL, r.JoinToken, r.CAHash)
}

// Prepare checks that no other control plane is in the way, then makes
// what the control plane needs: the PKI, the admin kubeconfig, this node's
// credentials, the image and the manifests (written only when they change,
// so running it again changes nothing), and a join token. It is safe to
// run again with the same options.
func Prepare(o Options) (*Result, error) {
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: want host:port: %w", o.Listen, err)
	}
	localHost, joinHost := host, host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		localHost, joinHost = "127.0.0.1", o.NodeIP
		if o.NodeIP != "" && !slices.Contains(o.Hosts, o.NodeIP) {
			// Other nodes join at this node's address: the serving
			// certificate must name it.
			o.Hosts = append(slices.Clone(o.Hosts), o.NodeIP)
		}
	}
	if joinHost == "" {
		joinHost = localHost
	}
	res := &Result{URL: "https://" + net.JoinHostPort(localHost, port), JoinURL: "https://" + net.JoinHostPort(joinHost, port),
		Kubeconfig: filepath.Join(o.DataDir, "kubeconfig")}

	if c, err := net.DialTimeout("unix", localapi.SocketPath(o.DataDir), time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("a node agent already runs on data dir %s (its socket %s answers): stop it first; the control plane keeps running meanwhile", o.DataDir, localapi.SocketPath(o.DataDir))
	}
	ca, err := existingCA(o.PKIDir())
	if err != nil {
		return nil, err
	}
	if err := checkManifestDir(o.ManifestDir, o.DataDir); err != nil {
		return nil, err
	}
	if err := checkNodeCredentials(o.DataDir, ca); err != nil {
		return nil, err
	}
	if err := checkListener(o.Listen, localHost, port, ca); err != nil {
		return nil, err
	}

	// The same hosts the server puts in its certificate, so it keeps the
	// one made here.
	hosts := append(slices.Clone(o.Hosts), host)
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		hosts = slices.DeleteFunc(hosts, func(h string) bool { return h == host })
	}
	pki, err := auth.LoadOrCreatePKI(o.PKIDir(), hosts)
	if err != nil {
		return nil, err
	}
	res.CAHash = pki.CAHash()
	if _, err := auth.EnsureAdminKubeconfig(res.Kubeconfig, res.URL, pki); err != nil {
		return nil, err
	}
	if err := ensureNodeCredentials(o.DataDir, o.NodeName, res.URL, pki); err != nil {
		return nil, err
	}
	if res.Image, err = BuildImage(o.Executable, o.ImagesDir); err != nil {
		return nil, err
	}
	o.Image = res.Image
	files, err := Manifests(o.Config)
	if err != nil {
		return nil, err
	}
	if err := writeManifests(o.ManifestDir, files); err != nil {
		return nil, err
	}
	for name := range files {
		res.Manifests = append(res.Manifests, filepath.Join(o.ManifestDir, name))
	}
	slices.Sort(res.Manifests)
	if o.JoinTTL > 0 {
		tokens, err := auth.OpenTokens(filepath.Join(o.PKIDir(), auth.TokenFile))
		if err != nil {
			return nil, err
		}
		tok, info, err := tokens.CreateJoinToken(o.JoinTTL)
		if err != nil {
			return nil, err
		}
		res.JoinToken, res.JoinExpires = tok, info.Expires
	}
	return res, nil
}

// existingCA reads the CA in dir, or returns nil when there is none yet.
func existingCA(dir string) (*x509.Certificate, error) {
	ca, err := auth.ReadCertificate(filepath.Join(dir, auth.CACertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return ca, err
}

// podHead is what the checks read of a manifest.
type podHead struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

// checkManifestDir refuses a manifest directory that runs another control
// plane: a kubeadm one (kube-apiserver, etcd), or Ballast's of another data
// dir, or files of init's names that init did not write.
func checkManifestDir(dir, dataDir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("manifest directory: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if _, ignored := manifest.Ignored(name); ignored || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var p podHead
		// A file that is not one Pod (a List, or broken) is the node's
		// business, not init's, unless it has one of init's names.
		_ = yaml.Unmarshal(data, &p)
		owner, ours := p.Metadata.Annotations[AnnotationDataDir]
		switch {
		case ours && owner != dataDir:
			return fmt.Errorf("%s is the control plane of data dir %s: run `ballast init --data-dir %s` to keep it, or remove the file to make a new one here (a different control plane is there)", path, owner, owner)
		case ours:
		case name == ServerManifest || name == EtcdManifest:
			return fmt.Errorf("%s was not written by ballast init: move it away, or choose another --pod-manifest-path", path)
		case p.Kind == "Pod" && (p.Metadata.Name == "kube-apiserver" || p.Metadata.Name == "etcd"):
			return fmt.Errorf("%s runs %s: a control plane (kubeadm's?) is already in %s; ballast init will not run a second one beside it", path, p.Metadata.Name, dir)
		}
	}
	return nil
}

// checkNodeCredentials refuses a data dir whose node joined another cluster
// (one of another CA).
func checkNodeCredentials(dataDir string, ca *x509.Certificate) error {
	c, err := bootstrap.Existing(dataDir)
	if err != nil {
		return err
	}
	if c == nil {
		return nil
	}
	id, err := c.Identity(time.Now())
	if err != nil {
		return nil // unusable: init writes new ones
	}
	if ca == nil || id.CAHash != auth.CAHash(ca) {
		return fmt.Errorf("this node belongs to the cluster at %s (%s): it cannot also run a control plane with data dir %s; use another --data-dir, or remove %s to leave that cluster", id.Server, bootstrap.KubeconfigPath(dataDir), dataDir, bootstrap.KubeconfigPath(dataDir))
	}
	return nil
}

// checkListener refuses a listen address where something else answers:
// only this control plane's own server (a certificate from its CA) may.
func checkListener(listen, host, port string, ca *x509.Certificate) error {
	addr := net.JoinHostPort(host, port)
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil // free (or not reachable from here: the server will say)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // checked against the CA below
	if err := tc.Handshake(); err == nil && ca != nil {
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		peer := tc.ConnectionState().PeerCertificates
		if len(peer) > 0 {
			if _, err := peer[0].Verify(x509.VerifyOptions{Roots: pool}); err == nil {
				return nil // this control plane's server, running
			}
		}
	}
	return fmt.Errorf("something else listens on %s (not this control plane's server): stop it, or give another --listen", listen)
}

// ensureNodeCredentials gives this node a client certificate of its own,
// unless it has a valid one for this server, well before its expiry.
func ensureNodeCredentials(dataDir, node, url string, pki *auth.PKI) error {
	if c, err := bootstrap.Existing(dataDir); err == nil && c != nil {
		if id, err := c.Identity(time.Now()); err == nil && id.Node == node && id.Server == url && id.CAHash == pki.CAHash() &&
			time.Now().Add(auth.RenewBefore).Before(id.NotAfter) {
			return nil
		}
	}
	u, err := auth.NodeUser(node)
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := pki.IssueClientCert(u)
	if err != nil {
		return err
	}
	c := &bootstrap.Credentials{Server: url, CAPEM: pki.CAPEM(), CertPEM: certPEM, KeyPEM: keyPEM}
	return c.Write(dataDir)
}

// writeManifests writes each file whose content changed (atomically: the
// node never reads half a file), and removes init's etcd manifest when etcd
// no longer runs in a pod.
func writeManifests(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("manifest directory: %w", err)
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			continue
		}
		if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	}
	if _, ok := files[EtcdManifest]; !ok {
		if err := os.Remove(filepath.Join(dir, EtcdManifest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
