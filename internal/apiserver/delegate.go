package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ballast-dev/ballast/internal/apiserver/request"
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

func (s *Server) serveDelegate(w http.ResponseWriter, r *http.Request, rq *request.Request, d *Delegate) {
	if !slices.Contains(d.Info.Verbs, rq.Verb) || rq.Subresource != "" {
		request.WriteError(w, request.MethodNotAllowed(fmt.Sprintf("%s is not supported on %s (supported: %v)", rq.Verb, rq.Resource, d.Info.Verbs)))
		return
	}
	if !request.Authorize(w, rq, s.cfg.Authorize) {
		return
	}
	var o runtime.Object
	var err error
	switch rq.Verb {
	case "get":
		o, err = d.Get(r.Context(), rq.Namespace, rq.Name)
	case "list":
		var sel labels.Selector
		sel, err = labels.Parse(rq.Query.Get("labelSelector"))
		if err != nil {
			err = request.BadRequest("labelSelector %q is invalid: %v", rq.Query.Get("labelSelector"), err)
			break
		}
		o, err = d.List(r.Context(), rq.Namespace, sel)
	}
	if err != nil {
		var ae *apierrors.StatusError
		if errors.As(err, &ae) {
			err = request.FromAPIErr(ae)
		}
		if st := request.ToStatus(err); st.Code >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "user", rq.User.Name, "err", err)
		}
		request.WriteError(w, err)
		return
	}
	request.WriteJSON(w, http.StatusOK, "application/json", o)
}
