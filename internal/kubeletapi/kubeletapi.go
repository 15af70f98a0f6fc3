// Package kubeletapi is the node's HTTPS API on the kubelet's port (10250):
// the agent's read-only paths (/healthz, /pods, /containerLogs/...) served
// by internal/localapi's handler, and the streams into pods (/exec, /attach,
// /portForward, internal/streaming), behind TLS, for kube-apiserver and
// `ballast server`. Every request must authenticate, by a client
// certificate from ClientCAs or by a bearer token that the API server
// confirms with a TokenReview; there is no anonymous access. Streams are
// authorized as the kubelet's nodes/proxy (auth.AuthorizeKubeletStream).
package kubeletapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// Options configure the kubelet API.
type Options struct {
	// Addr is host:port to listen on.
	Addr string
	// Handler serves the paths (internal/localapi.Handler).
	Handler http.Handler
	// ClientCAs verify client certificates (nil: none accepted).
	ClientCAs *x509.CertPool
	// Client reviews bearer tokens with TokenReviews (nil: none accepted).
	Client kubernetes.Interface
	// NodeName is this node; its own user (system:node:NAME) may read everything.
	NodeName string
	// Cert is the serving certificate.
	Cert tls.Certificate
	Log  *slog.Logger
}

// Serve serves until ctx ends.
func Serve(ctx context.Context, ln net.Listener, o Options) error {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	a := &authn{o: o, cache: map[string]cached{}, streams: &streamAuthz{o: o}}
	tc := &tls.Config{
		Certificates: []tls.Certificate{o.Cert},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	srv := &http.Server{
		Handler:           a.wrap(o.Handler),
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) || ctx.Err() != nil {
		return nil
	}
	return err
}

type cached struct {
	user    string
	groups  []string
	ok      bool
	expires time.Time
}

type authn struct {
	o       Options
	streams *streamAuthz
	mu      sync.Mutex
	cache   map[string]cached
}

func (a *authn) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, groups, err := a.authenticate(r)
		if err != nil {
			a.o.Log.Debug("kubelet API: unauthorized", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
			w.Header().Set("WWW-Authenticate", `Bearer realm="kubelet"`)
			http.Error(w, "Unauthorized: "+err.Error(), http.StatusUnauthorized)
			return
		}
		if auth.IsKubeletStreamPath(r.URL.Path) {
			a.serveStream(w, r, user, groups, next)
			return
		}
		if !allowed(user, groups, a.o.NodeName, r.URL.Path) {
			http.Error(w, fmt.Sprintf("Forbidden (user=%s, path=%s): only the API server, admins (system:masters) and this node may use the kubelet API", user, r.URL.Path), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowed: /healthz for anyone authenticated; the rest (logs, /metrics*
// as the kubelet's nodes/metrics, /stats as nodes/stats) for client
// certificates (ClientCAs are trusted for it, as the kubelet's
// --client-ca-file with the API server's client cert), admins and this
// node, never another node.
func allowed(user string, groups []string, node, path string) bool {
	if path == "/healthz" {
		return true
	}
	if other, ok := strings.CutPrefix(user, "system:node:"); ok && other != node {
		return false // another node: never (logs, metrics, stats)
	}
	return slices.Contains(groups, "system:masters") || user == "system:node:"+node ||
		user == "system:kube-apiserver" || slices.Contains(groups, groupClientCert)
}

func (a *authn) authenticate(r *http.Request) (string, []string, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if a.o.ClientCAs == nil {
			return "", nil, errors.New("client certificates are not accepted (no --client-ca-file)")
		}
		certs := r.TLS.PeerCertificates
		opts := x509.VerifyOptions{Roots: a.o.ClientCAs, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
		if _, err := certs[0].Verify(opts); err != nil {
			return "", nil, fmt.Errorf("invalid client certificate: %v", err)
		}
		if certs[0].Subject.CommonName == "" {
			return "", nil, errors.New("invalid client certificate: no CommonName")
		}
		return certs[0].Subject.CommonName, append(slices.Clone(certs[0].Subject.Organization), groupClientCert), nil
	}
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", nil, errors.New("no credentials: a client certificate or a bearer token is required")
	}
	if a.o.Client == nil {
		return "", nil, errors.New("bearer tokens are not accepted (no API server configured to review them)")
	}
	key := hex.EncodeToString(sum(token))
	a.mu.Lock()
	c, hit := a.cache[key]
	a.mu.Unlock()
	if !hit || time.Now().After(c.expires) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		tr, err := a.o.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			return "", nil, fmt.Errorf("token review failed: %v", err)
		}
		c = cached{user: tr.Status.User.Username, groups: tr.Status.User.Groups, ok: tr.Status.Authenticated}
		ttl := 2 * time.Minute
		if !c.ok {
			ttl = 10 * time.Second
		}
		c.expires = time.Now().Add(ttl)
		a.mu.Lock()
		if len(a.cache) > 1000 {
			a.cache = map[string]cached{}
		}
		a.cache[key] = c
		a.mu.Unlock()
	}
	if !c.ok {
		return "", nil, errors.New("invalid bearer token")
	}
	return c.user, c.groups, nil
}

func sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// CertSHA256 is the hex SHA-256 of a certificate's DER.
func CertSHA256(der []byte) string { return hex.EncodeToString(sum(string(der))) }

// LoadOrCreateServingCert loads certFile/keyFile if given, else a
// self-signed certificate kept in dir (kubelet.crt, kubelet.key), created
// on first use for the node's name and IPs.
func LoadOrCreateServingCert(certFile, keyFile, dir, nodeName string, ips []string) (tls.Certificate, error) {
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return tls.Certificate{}, errors.New("--tls-cert-file and --tls-private-key-file go together")
		}
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("loading the kubelet serving certificate: %w", err)
		}
		return c, nil
	}
	crt, key := filepath.Join(dir, "kubelet.crt"), filepath.Join(dir, "kubelet.key")
	if c, err := tls.LoadX509KeyPair(crt, key); err == nil {
		if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil && time.Now().Before(leaf.NotAfter.Add(-24*time.Hour)) && covers(leaf, nodeName, ips) {
			return c, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeName + "@" + fmt.Sprint(time.Now().Unix())},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
		DNSNames: []string{nodeName},
	}
	for _, s := range ips {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return tls.Certificate{}, err
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(crt, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func covers(c *x509.Certificate, name string, ips []string) bool {
	if !slices.Contains(c.DNSNames, name) {
		return false
	}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			continue
		}
		if !slices.ContainsFunc(c.IPAddresses, func(x net.IP) bool { return x.Equal(ip) }) {
			return false
		}
	}
	return true
}

// PinnedClient is an HTTPS client for a node's kubelet API presenting
// clientCert, and trusting the node's serving certificate only if its
// SHA-256 is pin (self-signed certificates, pinned by the node in its Node's
// annotation) — or, with pin empty, if it verifies against roots.
func PinnedClient(clientCert tls.Certificate, pin string, roots *x509.CertPool) *http.Client {
	tc := &tls.Config{Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}
	if pin != "" {
		tc.InsecureSkipVerify = true // replaced by the pin check below
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !strings.EqualFold(CertSHA256(raw[0]), pin) {
				return errors.New("the node's serving certificate does not match the one pinned in its Node (" + wellknown.AnnotationServingCertSHA256 + ")")
			}
			return nil
		}
	} else {
		tc.RootCAs = roots
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second}}
}
