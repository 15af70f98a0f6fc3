package apiserver

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/auth"
)

// serveResource serves one request on a served resource.
func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, rq *request.Request) {
	if rq.Delegated {
		s.serveDelegate(w, r, rq, s.delegates[rq.GVR()])
		return
	}
	if rq.Kind == nil {
		if rq.Verb == "" {
			rq.Verb = strings.ToLower(r.Method)
		}
		// Do not tell an unauthorized caller what exists.
		if d := s.cfg.Authorize(rq.Attributes()); !d.Allowed && rq.User.Name == auth.AnonymousUser {
			request.Deny(w, rq.User, d, d.Reason)
			return
		}
		request.WriteStatus(w, request.NewStatus(http.StatusNotFound, metav1.StatusReasonNotFound,
			fmt.Sprintf("the server could not find the requested resource (%s %s): %s", r.Method, r.URL.Path, rq.NotFound)).Status)
		return
	}
	if rq.Resource == "pods" && auth.IsStreamingSubresource(rq.Subresource) {
		s.connect.ServeStream(w, r, rq)
		return
	}
	if err := s.checkVerb(rq); err != nil {
		request.WriteError(w, err)
		return
	}
	// Creates are authorized once the object's name is known (nodes and
	// leases are authorized by name).
	if rq.Verb != "create" {
		if !request.Authorize(w, rq, s.cfg.Authorize) {
			return
		}
	}
	var err error
	switch rq.Subresource {
	case "log":
		err = s.connect.ServeLog(w, r, rq)
	case "proxy":
		err = s.connect.ServeProxy(w, r, rq)
	default:
		err = s.rest.Serve(w, r, rq)
	}
	if err != nil {
		if se := request.ToStatus(err); se.Code >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "user", rq.User.Name, "err", err)
		}
		request.WriteError(w, err)
	}
}

// checkVerb refuses a verb the resource or subresource does not take.
func (s *Server) checkVerb(rq *request.Request) error {
	ok := false
	switch rq.Subresource {
	case "":
		ok = slices.Contains(rq.Kind.Info.Verbs, rq.Verb)
	case "status":
		ok = rq.Verb == "get" || rq.Verb == "update" || rq.Verb == "patch"
	case "log":
		ok = rq.Verb == "get"
	case "ephemeralcontainers":
		ok = rq.Verb == "get" || rq.Verb == "update" || rq.Verb == "patch"
	case "proxy":
		ok = rq.Verb != ""
	}
	if !ok {
		what := rq.Resource
		if rq.Subresource != "" {
			what += "/" + rq.Subresource
		}
		return request.MethodNotAllowed(fmt.Sprintf("%s is not supported on %s (supported: %s)", rq.Verb, what, s.verbList(rq)))
	}
	if rq.Kind.CreateOnly {
		return nil
	}
	if rq.Verb == "create" && rq.Name != "" {
		return request.MethodNotAllowed(fmt.Sprintf("create (POST) goes to the collection, not to %s %q", rq.Resource, rq.Name))
	}
	return nil
}

// verbList names the verbs the request's (sub)resource takes.
func (s *Server) verbList(rq *request.Request) string {
	switch rq.Subresource {
	case "status":
		return "get, update, patch"
	case "log":
		return "get"
	case "ephemeralcontainers":
		return "get, update, patch"
	case "proxy":
		return "GET, POST, PUT, PATCH, DELETE"
	}
	return strings.Join(rq.Kind.Info.Verbs, ", ")
}
