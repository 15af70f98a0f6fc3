package auth

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Names of the unauthenticated caller, as Kubernetes uses them.
const (
	AnonymousUser        = "system:anonymous"
	GroupUnauthenticated = "system:unauthenticated"
)

// Anonymous is the user of a request that carries no credentials.
var Anonymous = User{Name: AnonymousUser, Groups: []string{GroupUnauthenticated}}

// Errors of Authenticate; the server answers them with 401 Unauthorized.
var (
	ErrInvalidToken      = errors.New("invalid bearer token")
	ErrInvalidClientCert = errors.New("invalid client certificate")
)

// Authenticator finds who made a request, in kube-apiserver's order: a
// client certificate, then a bearer token, else anonymous.
type Authenticator struct {
	// ClientCAs verifies client certificates. When nil, only
	// r.TLS.VerifiedChains (verified by the TLS handshake) is trusted.
	ClientCAs *x509.CertPool
	// Tokens resolves bearer tokens; nil accepts none.
	Tokens *TokenStore

	verified verifiedChains
	now      func() time.Time // for tests
}

// NewAuthenticator authenticates client certificates issued by p's CA and
// the tokens of t. Either may be nil.
func NewAuthenticator(p *PKI, t *TokenStore) *Authenticator {
	a := &Authenticator{Tokens: t}
	if p != nil {
		a.ClientCAs = p.CAPool()
	}
	return a
}

// Authenticate returns the request's user and true, with
// system:authenticated added to its groups. A request with no credentials
// gets (Anonymous, false, nil): whether it may go on is for Authorize. A
// request with credentials that do not verify (an unknown bearer token, a
// client certificate with no CommonName) gets an error and must be answered
// 401, even if anonymous access would have allowed it, as kube-apiserver does.
//
// A client certificate: CommonName is the user, Organizations the groups.
// With ClientCAs set the peer certificate is verified here against them
// (as kube-apiserver re-verifies), so it does not depend on the listener's
// TLS settings; otherwise r.TLS.VerifiedChains must hold it.
func (a *Authenticator) Authenticate(r *http.Request) (User, bool, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		leaf, err := a.verifiedLeaf(r)
		if err != nil {
			return Anonymous, false, err
		}
		if leaf != nil {
			if leaf.Subject.CommonName == "" {
				return Anonymous, false, ErrInvalidClientCert
			}
			return authenticated(User{Name: leaf.Subject.CommonName, Groups: slices.Clone(leaf.Subject.Organization)}), true, nil
		}
	}
	if token, ok := BearerToken(r); ok {
		if a.Tokens == nil {
			return Anonymous, false, ErrInvalidToken
		}
		u, ok := a.Tokens.Lookup(token)
		if !ok {
			return Anonymous, false, ErrInvalidToken
		}
		return authenticated(u), true, nil
	}
	return Anonymous, false, nil
}

// verifiedLeaf returns the client certificate if it chains to the trusted
// CA, nil if there is nothing trusted to check it with.
func (a *Authenticator) verifiedLeaf(r *http.Request) (*x509.Certificate, error) {
	certs := r.TLS.PeerCertificates
	if a.ClientCAs == nil {
		if len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			return r.TLS.VerifiedChains[0][0], nil
		}
		return nil, nil
	}
	now := time.Now()
	if a.now != nil {
		now = a.now()
	}
	key := chainKey(certs)
	if a.verified.known(a.ClientCAs, key, now) {
		return certs[0], nil
	}
	opts := x509.VerifyOptions{
		Roots:         a.ClientCAs,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		CurrentTime:   now,
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := certs[0].Verify(opts)
	if err != nil {
		return nil, ErrInvalidClientCert
	}
	a.verified.add(a.ClientCAs, key, now, chains)
	return certs[0], nil
}

// verifiedChains remembers the client certificate chains that verified
// against a CA pool, so that a client's every request does not check its
// certificate's signature again: an ECDSA verification, a quarter of a
// millisecond, which with a fleet's Lease renewals and status updates was
// 4% of the server's CPU. A chain is remembered for verifiedFor at most,
// and never past the expiry of a certificate in it.
type verifiedChains struct {
	mu    sync.Mutex
	pool  *x509.CertPool
	until map[[sha256.Size]byte]time.Time
}

const (
	verifiedFor = 5 * time.Minute
	// verifiedMax bounds the chains remembered (a fleet's nodes); past it,
	// the expired ones are dropped, or all.
	verifiedMax = 20000
)

// chainKey identifies a chain by its certificates' bytes (DER delimits
// each, so their concatenation is unambiguous).
func chainKey(certs []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range certs {
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (v *verifiedChains) known(pool *x509.CertPool, key [sha256.Size]byte, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	until, ok := v.until[key]
	return ok && v.pool == pool && now.Before(until)
}

func (v *verifiedChains) add(pool *x509.CertPool, key [sha256.Size]byte, now time.Time, chains [][]*x509.Certificate) {
	if len(chains) == 0 {
		return
	}
	until := now.Add(verifiedFor)
	// The verified chain ends at the trusted root; expiry of any of its
	// certificates ends what is remembered.
	for _, c := range chains[0] {
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pool != pool || v.until == nil {
		v.pool, v.until = pool, map[[sha256.Size]byte]time.Time{}
	}
	if len(v.until) >= verifiedMax {
		for k, u := range v.until {
			if !now.Before(u) {
				delete(v.until, k)
			}
		}
		if len(v.until) >= verifiedMax {
			clear(v.until)
		}
	}
	v.until[key] = until
}

// BearerToken reads "Authorization: Bearer <token>" (scheme case-insensitive).
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func authenticated(u User) User {
	if !slices.Contains(u.Groups, GroupAuthenticated) {
		u.Groups = append(u.Groups, GroupAuthenticated)
	}
	return u
}

// IsAuthenticated tells whether u was authenticated (is in
// system:authenticated), as opposed to anonymous.
func (u User) IsAuthenticated() bool {
	return u.Name != "" && u.Name != AnonymousUser && slices.Contains(u.Groups, GroupAuthenticated)
}

// IsAdmin tells whether u is in system:masters.
func (u User) IsAdmin() bool { return slices.Contains(u.Groups, GroupMasters) }
