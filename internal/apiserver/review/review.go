// Package review answers the review kinds, which are created and never
// stored: SelfSubjectAccessReview (`kubectl auth can-i`),
// SelfSubjectRulesReview (`kubectl auth can-i --list`), SelfSubjectReview
// (`kubectl auth whoami`) and TokenReview (how a node's kubelet API
// authenticates the tokens it is given), from the server's own
// authentication and authorization.
package review

import (
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/auth"
)

// Server answers reviews.
type Server struct {
	authenticate func(*http.Request) (auth.User, bool, error)
	authorize    func(auth.Attributes) auth.Decision
}

// New returns the server of reviews that authenticates and authorizes as
// the API server does.
func New(authenticate func(*http.Request) (auth.User, bool, error), authorize func(auth.Attributes) auth.Decision) *Server {
	return &Server{authenticate: authenticate, authorize: authorize}
}

// Serve answers o, a review of rq's kind created by rq's caller: a
// SelfSubjectAccessReview from the authorizer for the caller, the others
// as below.
func (s *Server) Serve(w http.ResponseWriter, r *http.Request, rq *request.Request, o kinds.Object) error {
	if tr, ok := o.(*authenticationv1.TokenReview); ok {
		return s.serveTokenReview(w, r, rq, tr)
	}
	if sr, ok := o.(*authenticationv1.SelfSubjectReview); ok {
		// Who am I: the caller as this server authenticated it.
		sr.Status.UserInfo = authenticationv1.UserInfo{Username: rq.User.Name, Groups: rq.User.Groups}
		rq.Kind.SetTypeMeta(sr)
		request.WriteJSON(w, http.StatusCreated, "application/json", sr)
		return nil
	}
	if rr, ok := o.(*authorizationv1.SelfSubjectRulesReview); ok {
		return s.serveRulesReview(w, rq, rr)
	}
	rev := o.(*authorizationv1.SelfSubjectAccessReview)
	a := auth.Attributes{User: rq.User}
	switch {
	case rev.Spec.ResourceAttributes != nil:
		ra := rev.Spec.ResourceAttributes
		a.Verb, a.Group, a.Resource, a.Subresource, a.Namespace, a.Name =
			ra.Verb, ra.Group, ra.Resource, ra.Subresource, ra.Namespace, ra.Name
	case rev.Spec.NonResourceAttributes != nil:
		a.Verb, a.Path = rev.Spec.NonResourceAttributes.Verb, rev.Spec.NonResourceAttributes.Path
	default:
		return request.Invalid("SelfSubjectAccessReview", "", "spec", "exactly one of resourceAttributes and nonResourceAttributes must be set")
	}
	d := s.authorize(a)
	rev.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: d.Allowed, Denied: !d.Allowed, Reason: d.Reason}
	if d.Allowed {
		rev.Status.Reason = ""
	}
	rq.Kind.SetTypeMeta(rev)
	request.WriteJSON(w, http.StatusCreated, "application/json", rev)
	return nil
}

// serveTokenReview answers a TokenReview (authentication.k8s.io/v1) with
// the server's own authentication of spec.token, as a bearer token: how a
// node's kubelet API authenticates the tokens it is given.
func (s *Server) serveTokenReview(w http.ResponseWriter, r *http.Request, rq *request.Request, tr *authenticationv1.TokenReview) error {
	if tr.Spec.Token == "" {
		return request.Invalid("TokenReview", "", "spec.token", "required")
	}
	fake, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/", nil)
	if err != nil {
		return request.InternalError(err)
	}
	fake.Header.Set("Authorization", "Bearer "+tr.Spec.Token)
	u, ok, aerr := s.authenticate(fake)
	tr.Status = authenticationv1.TokenReviewStatus{}
	switch {
	case aerr != nil:
		tr.Status.Error = aerr.Error()
	case ok:
		tr.Status.Authenticated = true
		tr.Status.User = authenticationv1.UserInfo{Username: u.Name, Groups: u.Groups}
		tr.Status.Audiences = tr.Spec.Audiences
	default:
		tr.Status.Error = "no such token"
	}
	rq.Kind.SetTypeMeta(tr)
	request.WriteJSON(w, http.StatusCreated, "application/json", tr)
	return nil
}

// serveRulesReview answers a SelfSubjectRulesReview (`kubectl auth can-i
// --list`) with the caller's rules in spec.namespace, from auth.Rules,
// which is checked against Authorize.
func (s *Server) serveRulesReview(w http.ResponseWriter, rq *request.Request, rr *authorizationv1.SelfSubjectRulesReview) error {
	res, nonRes := auth.Rules(rq.User, rr.Spec.Namespace)
	rr.Status = authorizationv1.SubjectRulesReviewStatus{ResourceRules: res, NonResourceRules: nonRes}
	if rr.Status.ResourceRules == nil {
		rr.Status.ResourceRules = []authorizationv1.ResourceRule{}
	}
	rq.Kind.SetTypeMeta(rr)
	request.WriteJSON(w, http.StatusCreated, "application/json", rr)
	return nil
}
