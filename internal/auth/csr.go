package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// CAHash is the pin `ballast join --ca-cert-hash` checks a CA against, as
// kubeadm's discovery-token-ca-cert-hash: "sha256:" and the hex SHA-256 of
// the CA certificate's SubjectPublicKeyInfo.
func CAHash(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CAHash is the pin of this PKI's CA (see the function CAHash).
func (p *PKI) CAHash() string { return CAHash(p.caCert) }

// ParseCAHash checks a pin's form ("sha256:" and 64 hex digits) and returns
// it in lower case.
func ParseCAHash(s string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(s))
	hexPart, ok := strings.CutPrefix(h, "sha256:")
	if b, err := hex.DecodeString(hexPart); !ok || err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("CA certificate hash %q: want sha256: and 64 hex digits (as printed by `ballast init` or `ballast server token create --join`)", s)
	}
	return h, nil
}

// NodeCSR makes a certificate request for node name's client certificate
// (CommonName system:node:<name>, Organization system:nodes), signed by key.
func NodeCSR(name string, key any) ([]byte, error) {
	u, err := NodeUser(name)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: u.Name, Organization: []string{GroupNodes}},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// NodeOfCSR checks a node's certificate request as SignNodeCSR does and
// returns the node's name.
func NodeOfCSR(csrPEM []byte) (string, error) {
	_, name, err := parseNodeCSR(csrPEM)
	return name, err
}

func parseNodeCSR(csrPEM []byte) (*x509.CertificateRequest, string, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, "", errors.New("no PEM CERTIFICATE REQUEST block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, "", err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, "", fmt.Errorf("bad signature: %w", err)
	}
	name, ok := strings.CutPrefix(csr.Subject.CommonName, NodeUserPrefix)
	if !ok || !slices.Equal(csr.Subject.Organization, []string{GroupNodes}) {
		return nil, "", fmt.Errorf("it asks for %q in %v: a node asks for CommonName %s<node name> in Organization %s only",
			csr.Subject.CommonName, csr.Subject.Organization, NodeUserPrefix, GroupNodes)
	}
	if _, err := NodeUser(name); err != nil {
		return nil, "", err
	}
	return csr, name, nil
}

// SignNodeCSR issues a node's client certificate (valid ClientCertValidity)
// for the public key of its certificate request, so the node's private key
// never leaves it. The request must be signed by that key and ask for
// exactly CommonName system:node:<name> and Organization system:nodes; what
// else it asks for (names, extensions) is ignored. It returns the node's
// name and the certificate.
func (p *PKI) SignNodeCSR(csrPEM []byte) (node string, certPEM []byte, err error) {
	csr, name, err := parseNodeCSR(csrPEM)
	if err != nil {
		return "", nil, fmt.Errorf("certificate request: %w", err)
	}
	now := p.now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: NodeUserPrefix + name, Organization: []string{GroupNodes}},
		NotBefore:    now.Add(-clockSkewAllowance),
		NotAfter:     now.Add(ClientCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, csr.PublicKey, p.caKey)
	if err != nil {
		return "", nil, fmt.Errorf("pki: signing the certificate of node %s: %w", name, err)
	}
	return name, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// ReadCertificate reads the first PEM certificate of the file at path (a CA's
// ca.crt, say). A missing file is an error wrapping fs.ErrNotExist.
func ReadCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := parseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
