package auth

import (
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
	"strings"
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

	now func() time.Time // for tests
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
	opts := x509.VerifyOptions{
		Roots:         a.ClientCAs,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if a.now != nil {
		opts.CurrentTime = a.now()
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return nil, ErrInvalidClientCert
	}
	return certs[0], nil
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
