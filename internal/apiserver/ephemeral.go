package apiserver

import (
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// serveEphemeralContainers serves pods/ephemeralcontainers: get reads the
// pod, as kube-apiserver does; update and patch (what `kubectl debug` sends)
// are refused as kube-apiserver refuses them for a static pod's mirror:
// 422 Invalid, "[]: Forbidden: static pods do not support ephemeral
// containers", here also naming the pod's manifest to edit instead. Every pod
// Ballast serves is a static pod's mirror, so none takes ephemeral containers.
func (s *Server) serveEphemeralContainers(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	o, err := s.getObject(r.Context(), rq.Kind, rq.Namespace, rq.Name)
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
	return ephemeralRefusal(o.(*corev1.Pod))
}

func ephemeralRefusal(p *corev1.Pod) error {
	where := fmt.Sprintf("its manifest in the pod manifest directory on node %s (by default %s)", p.Spec.NodeName, DefaultManifestDir)
	if f := p.Annotations[wellknown.AnnotationManifest]; f != "" {
		where = fmt.Sprintf("%s on node %s", f, p.Spec.NodeName)
	}
	msg := fmt.Sprintf("static pods do not support ephemeral containers: pod %s runs from %s; to debug it, add a container to that manifest (or use `kubectl exec`)", p.Name, where)
	return request.FromAPIErr(apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, p.Name,
		field.ErrorList{field.Forbidden(field.NewPath(""), msg)}))
}
