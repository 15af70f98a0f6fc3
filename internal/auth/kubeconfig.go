package auth

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/atomicfile"
)

// KubeconfigName is the name of the cluster and the context in the
// kubeconfig files Ballast writes.
const KubeconfigName = "ballast"

// The kubeconfig format (clientcmd/api/v1), only what Ballast writes.
type kubeconfig struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Clusters       []namedCluster `json:"clusters"`
	Contexts       []namedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
	Users          []namedUser    `json:"users"`
	Preferences    struct{}       `json:"preferences"`
}

type namedCluster struct {
	Name    string `json:"name"`
	Cluster struct {
		Server                   string `json:"server"`
		CertificateAuthorityData []byte `json:"certificate-authority-data,omitempty"`
	} `json:"cluster"`
}

type namedContext struct {
	Name    string `json:"name"`
	Context struct {
		Cluster string `json:"cluster"`
		User    string `json:"user"`
	} `json:"context"`
}

type namedUser struct {
	Name string `json:"name"`
	User struct {
		ClientCertificateData []byte `json:"client-certificate-data,omitempty"`
		ClientKeyData         []byte `json:"client-key-data,omitempty"`
		Token                 string `json:"token,omitempty"`
	} `json:"user"`
}

// WriteKubeconfig writes a kubeconfig (mode 0600, atomically: a reader sees
// the old file or the new one) with cluster and context "ballast" pointing at
// server, trusting caPEM, and user `user` (default "ballast") holding the
// given credentials, embedded: a client certificate and key, a bearer token,
// or both. It is the current context.
func WriteKubeconfig(path, server string, caPEM, certPEM, keyPEM []byte, token string, user string) error {
	if server == "" {
		return errors.New("kubeconfig: no server URL")
	}
	if (len(certPEM) == 0) != (len(keyPEM) == 0) {
		return errors.New("kubeconfig: a client certificate needs its key, and a key its certificate")
	}
	if user == "" {
		user = KubeconfigName
	}
	var kc kubeconfig
	kc.APIVersion, kc.Kind, kc.CurrentContext = "v1", "Config", KubeconfigName
	var c namedCluster
	c.Name = KubeconfigName
	c.Cluster.Server = server
	c.Cluster.CertificateAuthorityData = caPEM
	var x namedContext
	x.Name = KubeconfigName
	x.Context.Cluster, x.Context.User = KubeconfigName, user
	var u namedUser
	u.Name = user
	u.User.ClientCertificateData, u.User.ClientKeyData, u.User.Token = certPEM, keyPEM, token
	kc.Clusters, kc.Contexts, kc.Users = []namedCluster{c}, []namedContext{x}, []namedUser{u}
	data, err := yaml.Marshal(kc)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	return nil
}

// AdminUserInfo is the admin: CN=ballast-admin, O=system:masters.
var AdminUserInfo = User{Name: AdminUser, Groups: []string{GroupMasters}}

// EnsureAdminKubeconfig makes sure path holds a working admin kubeconfig for
// server: a client certificate for ballast-admin in system:masters, issued by
// p's CA. An existing file is kept when it is for the same server and CA and
// its certificate is valid for more than RenewBefore; otherwise a new
// certificate is issued and the file rewritten (mode 0600). It reports
// whether it wrote the file.
//
// The admin credential is a certificate rather than a token so that nothing
// usable is stored on the server's side (the token file holds only hashes)
// and the file keeps working across restarts, as the CA is kept. Old copies
// of the admin kubeconfig stay valid until their certificate expires (there
// is no revocation other than making a new CA).
func EnsureAdminKubeconfig(path, server string, p *PKI) (written bool, err error) {
	if ok := adminKubeconfigUsable(path, server, p); ok {
		if err := os.Chmod(path, 0o600); err != nil {
			return false, fmt.Errorf("kubeconfig: %w", err)
		}
		return false, nil
	}
	certPEM, keyPEM, err := p.IssueClientCert(AdminUserInfo)
	if err != nil {
		return false, err
	}
	if err := WriteKubeconfig(path, server, p.CAPEM(), certPEM, keyPEM, "", AdminUser); err != nil {
		return false, err
	}
	return true, nil
}

func adminKubeconfigUsable(path, server string, p *PKI) bool {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return false
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return false
	}
	if len(kc.Clusters) != 1 || len(kc.Users) != 1 || len(kc.Contexts) != 1 || kc.CurrentContext != KubeconfigName {
		return false
	}
	c, u := kc.Clusters[0].Cluster, kc.Users[0].User
	if c.Server != server || !bytes.Equal(c.CertificateAuthorityData, p.CAPEM()) {
		return false
	}
	pair, err := tls.X509KeyPair(u.ClientCertificateData, u.ClientKeyData)
	if err != nil || pair.Leaf == nil {
		return false
	}
	leaf := pair.Leaf
	now := p.now()
	if now.Add(RenewBefore).After(leaf.NotAfter) {
		return false
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return false
	}
	return leaf.Subject.CommonName == AdminUser && slices.Contains(leaf.Subject.Organization, GroupMasters)
}
