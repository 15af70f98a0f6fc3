package admission

import (
	"fmt"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/apiserver/resource"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/validation"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// ConfigMaps and Secrets: Ballast serves the mirrors of its nodes'
// node-local objects, as it serves mirror pods. Clients cannot create them
// (they live in manifest files, beside the pods that use them), nor change
// a mirror's data; a node creates, updates and deletes only its own mirrors
// (label ballast.dev/node), and anyone may delete one (its node makes it
// again). They are validated by internal/validation, as on the node.

// configMeta is what admission reads of a ConfigMap or Secret.
type configMeta struct {
	meta      *metav1.ObjectMeta
	kind      string // "configmap" or "secret"
	immutable bool
	// data is everything a mirror's node owns: data, binaryData, type.
	data any
}

func configOf(o kinds.Object) configMeta {
	switch t := o.(type) {
	case *corev1.ConfigMap:
		return configMeta{meta: &t.ObjectMeta, kind: "configmap", immutable: t.Immutable != nil && *t.Immutable,
			data: []any{t.Data, t.BinaryData}}
	case *corev1.Secret:
		validation.MergeStringData(t)
		return configMeta{meta: &t.ObjectMeta, kind: "secret", immutable: t.Immutable != nil && *t.Immutable,
			data: []any{t.Data, t.Type}}
	}
	return configMeta{}
}

// isMirrorConfig tells whether an object is the mirror of a node-local one.
func isMirrorConfig(m *metav1.ObjectMeta) bool {
	_, ok := m.Annotations[wellknown.AnnotationConfigMirror]
	return ok
}

// admitConfig is the admission of a write of a ConfigMap or Secret: old is
// nil for a create, next nil for a delete.
func admitConfig(u auth.User, info resource.Info, old, next kinds.Object) error {
	gr := corev1.Resource(info.Resource)
	var o, n configMeta
	if old != nil {
		o = configOf(old)
	}
	if next != nil {
		n = configOf(next)
	}
	if node := u.NodeName(); node != "" {
		for _, c := range []configMeta{o, n} {
			if c.meta != nil && c.meta.Labels[wellknown.LabelNode] != node {
				return request.Forbidden(gr, c.meta.Name, fmt.Sprintf("node %q may only write its own mirror %ss (label %s=%s)", node, info.Kind, wellknown.LabelNode, node))
			}
		}
		if old == nil && next != nil {
			if err := nodeMirrorShape(n.meta, node, info.Kind); err != "" {
				return request.Forbidden(gr, n.meta.Name, fmt.Sprintf("node %q cannot create this mirror %s: %s", node, info.Kind, err))
			}
		}
	}
	switch {
	case old == nil && next != nil && u.NodeName() == "":
		return request.Forbidden(gr, n.meta.Name, fmt.Sprintf(
			"Ballast serves node-local %[1]ss only: they are written in manifest files, beside the pods that use them, and cannot be created through the API. "+
				"To create %[2]q, write it into the pod manifest directory of the node whose pods use it (ballast node --pod-manifest-path, by default %[3]s), "+
				"e.g. %[3]s/%[2]s.yaml (a YAML file may hold the pod and its %[1]s as two documents); "+
				"the node publishes it here as the read-only %[4]s \"%[2]s-<node name>\"",
			info.Kind, n.meta.Name, DefaultManifestDir, strings.ToLower(info.Kind)))
	case old != nil && next != nil:
		if o.immutable && (!n.immutable || !jsonEqual(o.data, n.data)) {
			return request.FromAPIErr(apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind(info.Kind).GroupKind(), n.meta.Name, field.ErrorList{
				field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"),
			}))
		}
		if u.NodeName() == "" && isMirrorConfig(o.meta) {
			if what := mirrorConfigChange(o, n); what != "" {
				return mirrorConfigRefusal(o, info.Kind, what)
			}
		}
	}
	return nil
}

// nodeMirrorShape says what keeps a node's new object from being its
// mirror, or "".
func nodeMirrorShape(m *metav1.ObjectMeta, node, kind string) string {
	var problems []string
	if _, ok := m.Annotations[wellknown.AnnotationConfigMirror]; !ok {
		problems = append(problems, fmt.Sprintf("a mirror %s must carry the annotation %s", kind, wellknown.AnnotationConfigMirror))
	}
	owned := len(m.OwnerReferences) == 1 && m.OwnerReferences[0].APIVersion == "v1" && m.OwnerReferences[0].Kind == "Node" && m.OwnerReferences[0].Name == node
	if !owned {
		problems = append(problems, fmt.Sprintf("a mirror %s must have exactly one ownerReference, to its Node (apiVersion v1, kind Node, name %q)", kind, node))
	}
	return strings.Join(problems, "; ")
}

// mirrorConfigChange says what an update by someone else than its node
// changes of what the node owns in a mirror, or "".
func mirrorConfigChange(o, n configMeta) string {
	if !jsonEqual(o.data, n.data) || o.immutable != n.immutable {
		return "its data cannot be changed through the API"
	}
	owned := func(k string) bool {
		return strings.HasPrefix(k, wellknown.ConfigAnnotationPrefix) || strings.HasPrefix(k, "ballast.dev/")
	}
	for k := range unionKeys(o.meta.Annotations, n.meta.Annotations) {
		if owned(k) && o.meta.Annotations[k] != n.meta.Annotations[k] {
			return fmt.Sprintf("its annotation %s is set by the node and cannot be changed", k)
		}
	}
	if o.meta.Labels[wellknown.LabelNode] != n.meta.Labels[wellknown.LabelNode] {
		return fmt.Sprintf("its label %s is set by the node and cannot be changed", wellknown.LabelNode)
	}
	if !jsonEqual(o.meta.OwnerReferences, n.meta.OwnerReferences) {
		return "its ownerReferences are set by the node and cannot be changed"
	}
	return ""
}

func mirrorConfigRefusal(c configMeta, kind, what string) error {
	node := c.meta.Labels[wellknown.LabelNode]
	where := fmt.Sprintf("edit it in the pod manifest directory on node %s (by default %s) instead", node, DefaultManifestDir)
	if f := c.meta.Annotations[wellknown.AnnotationManifest]; f != "" {
		where = fmt.Sprintf("edit %s on node %s instead", f, node)
	}
	msg := fmt.Sprintf("%s %q is a mirror of a node-local %s on node %q: %s; %s", c.kind, c.meta.Name, kind, node, what, where)
	st := request.NewStatus(http.StatusForbidden, metav1.StatusReasonForbidden, msg)
	st.Status.Details = &metav1.StatusDetails{Name: c.meta.Name, Kind: c.kind + "s"}
	return st
}
