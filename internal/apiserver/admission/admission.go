// Package admission decides who may write what through the API, after
// authorization: a node writes only its own mirror pods, mirror ConfigMaps
// and Secrets and events; nobody else creates pods, ConfigMaps or Secrets
// (they come from manifest files on the nodes) or changes what a node owns
// in its mirrors, and static pods take no ephemeral containers. Every
// refusal says which file on which node to edit instead. The decisions are
// pure functions of the caller and the objects; only a node's event about a
// pod reads that pod.
package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/storage"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// DefaultManifestDir is where nodes read static pod manifests by default.
const DefaultManifestDir = "/etc/kubernetes/manifests"

// Admission admits the writes of the REST verbs.
type Admission struct {
	store storage.Store
	pods  *kinds.Kind
}

// New returns the admission of writes to store; pods is the kind events'
// pods are read as.
func New(store storage.Store, pods *kinds.Kind) *Admission {
	return &Admission{store: store, pods: pods}
}

// Admit runs admission for a write: old is nil for a create, next nil for
// a delete.
func (a *Admission) Admit(ctx context.Context, rq *request.Request, old, next kinds.Object) error {
	if rq.Kind.Info.Resource == "events" && (rq.Kind.Info.Group == "" || rq.Kind.Info.Group == "events.k8s.io") {
		return a.admitEvent(ctx, rq, old, next)
	}
	if rq.Kind.Info.Group == "" && (rq.Kind.Info.Resource == "configmaps" || rq.Kind.Info.Resource == "secrets") {
		return admitConfig(rq.User, rq.Kind.Info, old, next)
	}
	if rq.Kind.Info.Group != "" || rq.Kind.Info.Resource != "pods" {
		return nil
	}
	var oldPod, newPod *corev1.Pod
	if old != nil {
		oldPod = old.(*corev1.Pod)
	}
	if next != nil {
		newPod = next.(*corev1.Pod)
	}
	return admitPod(rq.User, rq.Verb, rq.Subresource, oldPod, newPod)
}

// admitEvent lets a node write only its own events (auth.AdmitNodeEvent):
// about itself or its pods, reported by itself; both the old and the new
// object of an update. Other users are not restricted here.
func (a *Admission) admitEvent(ctx context.Context, rq *request.Request, old, next kinds.Object) error {
	if rq.User.NodeName() == "" {
		return nil
	}
	for _, o := range []kinds.Object{old, next} {
		if o == nil {
			continue
		}
		var ev *corev1.Event
		switch e := o.(type) {
		case *corev1.Event:
			ev = e
		case *eventsv1.Event:
			ev = kinds.EventsV1ToCore(e)
		default:
			return request.InternalError(fmt.Errorf("admitting an event: unexpected %T", o))
		}
		facts := auth.NodeEvent{Namespace: ev.Namespace, Name: ev.Name,
			InvolvedKind: ev.InvolvedObject.Kind, InvolvedNamespace: ev.InvolvedObject.Namespace, InvolvedName: ev.InvolvedObject.Name,
			SourceHost: ev.Source.Host, ReportingInstance: ev.ReportingInstance}
		if facts.InvolvedKind == "Pod" {
			p, err := a.pods.Get(ctx, a.store, facts.InvolvedNamespace, facts.InvolvedName)
			switch {
			case err == nil:
				facts.PodFound, facts.PodNode = true, p.(*corev1.Pod).Spec.NodeName
			case errors.Is(err, storage.ErrNotFound):
			default:
				return request.StorageError(err, a.pods.GroupResource(), facts.InvolvedName)
			}
		}
		if d := auth.AdmitNodeEvent(rq.User, rq.Verb, facts); !d.Allowed {
			return request.Forbidden(schema.GroupResource{Group: rq.Kind.Info.Group, Resource: "events"}, ev.Name, d.Reason)
		}
	}
	return nil
}

// admitPod is mirror-pod admission, a pure function of the caller and the
// objects: old is nil on create, next nil on delete.
func admitPod(u auth.User, verb, sub string, old, next *corev1.Pod) error {
	gr := corev1.Resource("pods")
	for _, p := range []*corev1.Pod{old, next} {
		if p == nil {
			continue
		}
		if d := auth.AdmitNodePod(u, verb, p.Namespace, p.Name, p.Spec.NodeName); !d.Allowed {
			return request.Forbidden(gr, p.Name, d.Reason)
		}
	}
	switch {
	case old == nil && next != nil:
		return admitPodCreate(u, next)
	case old != nil && next != nil:
		return admitPodUpdate(u, sub, old, next)
	}
	return nil // delete: allowed (the node brings a mirror pod back)
}

func admitPodCreate(u auth.User, pod *corev1.Pod) error {
	gr := corev1.Resource("pods")
	name := pod.Name
	if name == "" {
		name = pod.GenerateName
	}
	node := u.NodeName()
	if node == "" && IsMirrorPod(pod) && pod.Spec.NodeName != "" {
		// A node agent running with credentials that are not its node's
		// (the server's admin kubeconfig, say): tell it what to use.
		n := pod.Spec.NodeName
		return request.Forbidden(gr, name, fmt.Sprintf(
			"user %q is not a node, so it cannot create mirror pods: the node agent of node %q must use that node's credentials (user system:node:%s); "+
				"make them with \"ballast server token create --node %s\" and pass --server, --token and --certificate-authority to ballast node, or use ballast join; "+
				"the node runs its static pod %q regardless", u.Name, n, n, n, name))
	}
	if node == "" {
		base := strings.TrimSuffix(name, "-")
		return request.Forbidden(gr, name, fmt.Sprintf(
			"Ballast runs static pods only, so pods cannot be created through the API. "+
				"To run %q, write its manifest into the pod manifest directory of the node that should run it "+
				"(ballast node --pod-manifest-path, by default %s), e.g. %s/%s.yaml; "+
				"the node starts it and publishes it here as the mirror pod \"%s-<node name>\"",
			base, DefaultManifestDir, DefaultManifestDir, base, base))
	}
	var problems []string
	if pod.Spec.NodeName != node {
		problems = append(problems, fmt.Sprintf("spec.nodeName must be %q (the node creating it)", node))
	}
	if _, ok := pod.Annotations[wellknown.AnnotationConfigMirror]; !ok {
		problems = append(problems, fmt.Sprintf("a mirror pod must carry the annotation %s", wellknown.AnnotationConfigMirror))
	}
	owned := false
	for _, ref := range pod.OwnerReferences {
		if ref.APIVersion == "v1" && ref.Kind == "Node" && ref.Name == node {
			owned = true
		}
	}
	if !owned || len(pod.OwnerReferences) != 1 {
		problems = append(problems, fmt.Sprintf("a mirror pod must have exactly one ownerReference, to its Node (apiVersion v1, kind Node, name %q)", node))
	}
	problems = append(problems, forbiddenReferences(&pod.Spec)...)
	if len(problems) > 0 {
		return request.Forbidden(gr, name, fmt.Sprintf("node %q cannot create this mirror pod: %s", node, strings.Join(problems, "; ")))
	}
	return nil
}

// forbiddenReferences lists what a mirror pod may not use: static pods run
// without the API, so service accounts, PersistentVolumeClaims and Secrets
// outside the pod's spec cannot be resolved. ConfigMaps and Secrets in
// volumes, projections and env are the node's own (node-local, mirrored
// beside the pod), so they are allowed.
func forbiddenReferences(spec *corev1.PodSpec) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if spec.ServiceAccountName != "" {
		add("spec.serviceAccountName %q: mirror pods may not use service accounts", spec.ServiceAccountName)
	}
	if spec.DeprecatedServiceAccount != "" && spec.DeprecatedServiceAccount != spec.ServiceAccountName {
		add("spec.serviceAccount %q: mirror pods may not use service accounts", spec.DeprecatedServiceAccount)
	}
	for _, s := range spec.ImagePullSecrets {
		add("spec.imagePullSecrets %q: mirror pods may not reference Secrets for image pulls", s.Name)
	}
	for _, v := range spec.Volumes {
		p := fmt.Sprintf("spec.volumes[%q]", v.Name)
		switch {
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken != nil {
					add("%s: mirror pods may not project service account tokens", p)
				}
				if src.ClusterTrustBundle != nil {
					add("%s: mirror pods may not project ClusterTrustBundles", p)
				}
			}
		case v.PersistentVolumeClaim != nil:
			add("%s: mirror pods may not use persistentVolumeClaim volumes", p)
		case v.Ephemeral != nil:
			add("%s: mirror pods may not use ephemeral volumes", p)
		case v.CSI != nil && v.CSI.NodePublishSecretRef != nil,
			v.FlexVolume != nil && v.FlexVolume.SecretRef != nil,
			v.ISCSI != nil && v.ISCSI.SecretRef != nil,
			v.RBD != nil && v.RBD.SecretRef != nil,
			v.CephFS != nil && v.CephFS.SecretRef != nil,
			v.Cinder != nil && v.Cinder.SecretRef != nil,
			v.ScaleIO != nil && v.ScaleIO.SecretRef != nil,
			v.StorageOS != nil && v.StorageOS.SecretRef != nil,
			v.AzureFile != nil:
			add("%s: mirror pods may not reference Secrets", p)
		}
	}
	for _, ec := range spec.EphemeralContainers {
		add("ephemeral container %q: mirror pods may not have ephemeral containers", ec.Name)
	}
	return out
}

// IsMirrorPod tells whether a pod is the mirror of a static pod.
func IsMirrorPod(p *corev1.Pod) bool {
	_, ok := p.Annotations[wellknown.AnnotationConfigMirror]
	return ok
}

func admitPodUpdate(u auth.User, sub string, old, next *corev1.Pod) error {
	if !IsMirrorPod(old) || sub == "status" {
		return nil
	}
	if u.NodeName() != "" && u.NodeName() == old.Spec.NodeName {
		return nil // the node owns its mirror pods
	}
	if !jsonEqual(old.Spec, next.Spec) {
		return mirrorRefusal(old, "its spec cannot be changed through the API")
	}
	for k := range unionKeys(old.Annotations, next.Annotations) {
		if strings.HasPrefix(k, wellknown.ConfigAnnotationPrefix) && old.Annotations[k] != next.Annotations[k] {
			return mirrorRefusal(old, fmt.Sprintf("its annotation %s is set by the node and cannot be changed", k))
		}
	}
	if !jsonEqual(old.OwnerReferences, next.OwnerReferences) {
		return mirrorRefusal(old, "its ownerReferences are set by the node and cannot be changed")
	}
	return nil
}

func mirrorRefusal(p *corev1.Pod, what string) error {
	where := fmt.Sprintf("edit its manifest in the pod manifest directory on node %s (by default %s) instead", p.Spec.NodeName, DefaultManifestDir)
	if f := p.Annotations[wellknown.AnnotationManifest]; f != "" {
		where = fmt.Sprintf("edit %s on node %s instead", f, p.Spec.NodeName)
	}
	msg := fmt.Sprintf("pod %q is a mirror of a static pod on node %q: %s; %s", p.Name, p.Spec.NodeName, what, where)
	st := request.NewStatus(http.StatusForbidden, metav1.StatusReasonForbidden, msg)
	st.Status.Details = &metav1.StatusDetails{Name: p.Name, Kind: "pods"}
	return st
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func unionKeys(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// RefuseEphemeralContainers answers an update of pods/ephemeralcontainers
// as kube-apiserver answers it for a static pod's mirror: 422 Invalid,
// "[]: Forbidden: static pods do not support ephemeral containers", here
// also naming the pod's manifest to edit instead.
func RefuseEphemeralContainers(p *corev1.Pod) error {
	where := fmt.Sprintf("its manifest in the pod manifest directory on node %s (by default %s)", p.Spec.NodeName, DefaultManifestDir)
	if f := p.Annotations[wellknown.AnnotationManifest]; f != "" {
		where = fmt.Sprintf("%s on node %s", f, p.Spec.NodeName)
	}
	msg := fmt.Sprintf("static pods do not support ephemeral containers: pod %s runs from %s; to debug it, add a container to that manifest (or use `kubectl exec`)", p.Name, where)
	return request.FromAPIErr(apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, p.Name,
		field.ErrorList{field.Forbidden(field.NewPath(""), msg)}))
}
