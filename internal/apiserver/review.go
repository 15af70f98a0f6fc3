package apiserver

import (
	"net/http"

	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/ballast-dev/ballast/internal/auth"
)

// serveReview answers a SelfSubjectAccessReview from Authorize for the caller.
func (s *Server) serveReview(w http.ResponseWriter, r *http.Request, rq *request, o object) error {
	rev := o.(*authorizationv1.SelfSubjectAccessReview)
	a := auth.Attributes{User: rq.user}
	switch {
	case rev.Spec.ResourceAttributes != nil:
		ra := rev.Spec.ResourceAttributes
		a.Verb, a.Group, a.Resource, a.Subresource, a.Namespace, a.Name =
			ra.Verb, ra.Group, ra.Resource, ra.Subresource, ra.Namespace, ra.Name
	case rev.Spec.NonResourceAttributes != nil:
		a.Verb, a.Path = rev.Spec.NonResourceAttributes.Verb, rev.Spec.NonResourceAttributes.Path
	default:
		return invalid("SelfSubjectAccessReview", "", "spec", "exactly one of resourceAttributes and nonResourceAttributes must be set")
	}
	d := s.cfg.Authorize(a)
	rev.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: d.Allowed, Denied: !d.Allowed, Reason: d.Reason}
	if d.Allowed {
		rev.Status.Reason = ""
	}
	rq.kind.setTypeMeta(rev)
	writeJSON(w, http.StatusCreated, "application/json", rev)
	return nil
}
