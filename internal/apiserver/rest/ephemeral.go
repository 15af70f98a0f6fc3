package rest

import (
	"net/http"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/admission"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
)

// serveEphemeralContainers serves pods/ephemeralcontainers: get reads the
// pod, as kube-apiserver does; update and patch (what `kubectl debug` sends)
// are refused as kube-apiserver refuses them for a static pod's mirror:
// 422 Invalid, "[]: Forbidden: static pods do not support ephemeral
// containers", here also naming the pod's manifest to edit instead. Every pod
// Ballast serves is a static pod's mirror, so none takes ephemeral containers.
func (s *Server) serveEphemeralContainers(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	o, err := request.Get(r.Context(), s.store, rq.Kind, rq.Namespace, rq.Name)
	if err != nil {
		return err
	}
	if rq.Verb == "get" {
		return request.WriteObject(w, r, rq, http.StatusOK, o, s.now())
	}
	// Drain the body: the answer does not depend on it.
	if _, _, err := request.ReadBody(r, rq.Kind, true); err != nil {
		return err
	}
	return admission.RefuseEphemeralContainers(o.(*corev1.Pod))
}
