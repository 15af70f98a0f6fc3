package kubeletapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/auth"
)

// groupClientCert marks a user authenticated by a client certificate.
const groupClientCert = "ballast:client-cert"

// How long SubjectAccessReview answers are kept: the kubelet's defaults
// (--authorization-webhook-cache-authorized-ttl and -unauthorized-ttl).
const (
	sarAllowedTTL = 5 * time.Minute
	sarDeniedTTL  = 30 * time.Second
)

// streamAuthz decides the streams into pods (/exec, /attach, /portForward,
// /run) by auth.AuthorizeKubeletStream: node identities never, the trusted
// client certificates yes, token users as the API server answers a
// SubjectAccessReview for create nodes/proxy on this node.
type streamAuthz struct {
	o     Options
	mu    sync.Mutex
	cache map[string]sarAnswer
}

type sarAnswer struct {
	allowed bool
	reason  string
	expires time.Time
}

// authorize returns "" when the stream may open, else why not.
func (s *streamAuthz) authorize(ctx context.Context, user string, groups []string) (string, error) {
	viaCert := slices.Contains(groups, groupClientCert)
	groups = slices.DeleteFunc(slices.Clone(groups), func(g string) bool { return g == groupClientCert })
	u := auth.User{Name: user, Groups: groups}
	action, d := auth.AuthorizeKubeletStream(u, viaCert, s.o.NodeName)
	switch action {
	case auth.KubeletStreamAllow:
		return "", nil
	case auth.KubeletStreamDeny:
		return d.Reason, nil
	}
	if s.o.Client == nil {
		return "no API server is configured to authorize tokens (SubjectAccessReview)", nil
	}
	key := user + "\x00" + strings.Join(groups, "\x00")
	s.mu.Lock()
	c, hit := s.cache[key]
	s.mu.Unlock()
	if hit && time.Now().Before(c.expires) {
		return c.reason, nil
	}
	attrs := auth.KubeletStreamAttributes(u, s.o.NodeName)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sar, err := s.o.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: attrs.Verb, Resource: attrs.Resource, Subresource: attrs.Subresource, Name: attrs.Name},
	}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("subject access review failed: %w", err)
	}
	c = sarAnswer{allowed: sar.Status.Allowed, expires: time.Now().Add(sarAllowedTTL)}
	if !c.allowed {
		c.reason = fmt.Sprintf("the API server does not allow user %q to create nodes/proxy on node %q", user, s.o.NodeName)
		if sar.Status.Reason != "" {
			c.reason += ": " + sar.Status.Reason
		}
		c.expires = time.Now().Add(sarDeniedTTL)
	}
	s.mu.Lock()
	if s.cache == nil || len(s.cache) > 1000 {
		s.cache = map[string]sarAnswer{}
	}
	s.cache[key] = c
	s.mu.Unlock()
	return c.reason, nil
}

// serveStream authorizes a stream into a pod for an authenticated caller,
// then serves it; refusals are 403 with the kubelet's wording and the reason.
func (a *authn) serveStream(w http.ResponseWriter, r *http.Request, user string, groups []string, next http.Handler) {
	reason, err := a.streams.authorize(r.Context(), user, groups)
	if err != nil {
		a.o.Log.Warn("kubelet API: authorizing a stream", "user", user, "path", r.URL.Path, "err", err)
		http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=create, resource=nodes, subresource=proxy): %v", user, err), http.StatusInternalServerError)
		return
	}
	if reason != "" {
		a.o.Log.Info("kubelet API: stream refused", "user", user, "path", r.URL.Path, "reason", reason)
		http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=create, resource=nodes, subresource(s)=[proxy]): %s", user, reason), http.StatusForbidden)
		return
	}
	next.ServeHTTP(w, r)
}
