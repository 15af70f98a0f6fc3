package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ballast-dev/ballast/internal/apiserver/resource"
)

// A Delegate serves a read-only resource that is not stored, whose objects
// are computed on request (metrics.k8s.io's NodeMetrics and PodMetrics).
// The REST core routes, authenticates and authorizes its requests as any
// other, lists it in discovery and OpenAPI, then calls Get or List.
// Errors that are *apierrors.StatusError are answered as they say.
type Delegate struct {
	Info resource.Info // Verbs must be a subset of get, list
	Get  func(ctx context.Context, namespace, name string) (runtime.Object, error)
	// List returns the objects of namespace ("" for all) matching sel.
	List func(ctx context.Context, namespace string, sel labels.Selector) (runtime.Object, error)
}

func (s *Server) serveDelegate(w http.ResponseWriter, r *http.Request, rq *request, d *Delegate) {
	if !contains(d.Info.Verbs, rq.verb) || rq.subresource != "" {
		writeError(w, methodNotAllowed(fmt.Sprintf("%s is not supported on %s (supported: %v)", rq.verb, rq.resource, d.Info.Verbs)))
		return
	}
	if !s.authorize(w, rq) {
		return
	}
	var o runtime.Object
	var err error
	switch rq.verb {
	case "get":
		o, err = d.Get(r.Context(), rq.namespace, rq.name)
	case "list":
		var sel labels.Selector
		sel, err = labels.Parse(rq.query.Get("labelSelector"))
		if err != nil {
			err = badRequest("labelSelector %q is invalid: %v", rq.query.Get("labelSelector"), err)
			break
		}
		o, err = d.List(r.Context(), rq.namespace, sel)
	}
	if err != nil {
		var ae *apierrors.StatusError
		if errors.As(err, &ae) {
			err = fromAPIErr(ae)
		}
		if st := toStatus(err); st.Code >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "user", rq.user.Name, "err", err)
		}
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "application/json", o)
}
