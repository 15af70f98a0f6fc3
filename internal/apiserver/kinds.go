package apiserver

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	nodev1 "k8s.io/api/node/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	sigsjson "sigs.k8s.io/json"

	"github.com/ballast-dev/ballast/internal/apiserver/resource"
	"github.com/ballast-dev/ballast/internal/apiserver/tables"
	"github.com/ballast-dev/ballast/internal/podstatus"
	"github.com/ballast-dev/ballast/internal/validation"
)

// object is what every served kind is: a typed k8s.io/api struct pointer.
type object interface {
	runtime.Object
	metav1.Object
}

// kind is how the REST core handles one served resource.
type kind struct {
	info resource.Info
	// prefix is the first segment of the storage key: "/<prefix>/<ns>/<name>".
	// Both event versions share "events": objects are stored as core/v1.
	prefix string
	newObj func() object
	// toServed/toStored convert between the stored (core) form and the
	// served one; nil for kinds stored as served.
	toServed  func(stored object) object
	toStored  func(served object) object
	newStored func() object
	// fields returns the field-selector fields of an object.
	fields func(o object) fields.Set
	// status: the kind has a status subresource; PUT/PATCH on the object
	// keeps the old status, on /status only the status changes.
	status bool
	// ttl for created objects (events).
	ttl time.Duration
	// returnDeleted: DELETE answers with the object rather than a Status.
	returnDeleted bool
	// createOnly: the kind is not stored (reviews).
	createOnly bool
}

const eventTTL = time.Hour

var allVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

// kinds returns the resources the REST core serves.
func kinds() []*kind {
	nsFields := func(o object) fields.Set {
		return fields.Set{"metadata.name": o.GetName(), "metadata.namespace": o.GetNamespace()}
	}
	return []*kind{
		{
			info: resource.Info{Version: "v1", Kind: "Namespace", ListKind: "NamespaceList", Resource: "namespaces",
				Singular: "namespace", ShortNames: []string{"ns"}, Verbs: []string{"create", "delete", "get", "list", "patch", "update", "watch"},
				Subresources: []string{"status"}, New: func() any { return &corev1.Namespace{} }},
			prefix: "namespaces", newObj: func() object { return &corev1.Namespace{} }, status: true, returnDeleted: true,
			fields: func(o object) fields.Set {
				return fields.Set{"metadata.name": o.GetName(), "status.phase": string(o.(*corev1.Namespace).Status.Phase)}
			},
		},
		{
			info: resource.Info{Version: "v1", Kind: "Node", ListKind: "NodeList", Resource: "nodes",
				Singular: "node", ShortNames: []string{"no"}, Verbs: allVerbs,
				Subresources: []string{"status"}, New: func() any { return &corev1.Node{} }},
			prefix: "nodes", newObj: func() object { return &corev1.Node{} }, status: true,
			fields: func(o object) fields.Set {
				return fields.Set{"metadata.name": o.GetName(),
					"spec.unschedulable": strconv.FormatBool(o.(*corev1.Node).Spec.Unschedulable)}
			},
		},
		{
			info: resource.Info{Version: "v1", Kind: "Pod", ListKind: "PodList", Resource: "pods",
				Singular: "pod", ShortNames: []string{"po"}, Namespaced: true, Verbs: allVerbs,
				Subresources: []string{"status", "log"}, Categories: []string{"all"}, New: func() any { return &corev1.Pod{} }},
			prefix: "pods", newObj: func() object { return &corev1.Pod{} }, status: true, returnDeleted: true,
			fields: podFields,
		},
		configMapKind(),
		secretKind(),
		{
			info: resource.Info{Version: "v1", Kind: "Event", ListKind: "EventList", Resource: "events",
				Singular: "event", ShortNames: []string{"ev"}, Namespaced: true, Verbs: allVerbs,
				New: func() any { return &corev1.Event{} }},
			prefix: "events", newObj: func() object { return &corev1.Event{} }, ttl: eventTTL,
			fields: func(o object) fields.Set { return coreEventFields(o.(*corev1.Event)) },
		},
		{
			info: resource.Info{Group: "events.k8s.io", Version: "v1", Kind: "Event", ListKind: "EventList", Resource: "events",
				Singular: "event", ShortNames: []string{"ev"}, Namespaced: true, Verbs: allVerbs,
				New: func() any { return &eventsv1.Event{} }},
			prefix: "events", newObj: func() object { return &eventsv1.Event{} }, ttl: eventTTL,
			newStored: func() object { return &corev1.Event{} },
			toServed:  func(o object) object { return coreToEventsV1(o.(*corev1.Event)) },
			toStored:  func(o object) object { return eventsV1ToCore(o.(*eventsv1.Event)) },
			fields: func(o object) fields.Set {
				f := coreEventFields(eventsV1ToCore(o.(*eventsv1.Event)))
				for _, k := range []string{"kind", "name", "namespace", "uid", "apiVersion", "resourceVersion", "fieldPath"} {
					f["regarding."+k] = f["involvedObject."+k]
				}
				return f
			},
		},
		{
			info: resource.Info{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease", ListKind: "LeaseList", Resource: "leases",
				Singular: "lease", Namespaced: true, Verbs: allVerbs, New: func() any { return &coordinationv1.Lease{} }},
			prefix: "leases", newObj: func() object { return &coordinationv1.Lease{} }, fields: nsFields,
		},
		{
			info: resource.Info{Version: "v1", Kind: "Service", ListKind: "ServiceList", Resource: "services",
				Singular: "service", Namespaced: true, New: func() any { return &corev1.Service{} }},
			prefix: "services", newObj: func() object { return &corev1.Service{} },
			fields: func(o object) fields.Set {
				svc := o.(*corev1.Service)
				return fields.Set{"metadata.name": svc.Name, "metadata.namespace": svc.Namespace,
					"spec.clusterIP": svc.Spec.ClusterIP, "spec.type": string(svc.Spec.Type)}
			},
		},
		{
			info: resource.Info{Group: "node.k8s.io", Version: "v1", Kind: "RuntimeClass", ListKind: "RuntimeClassList",
				Resource: "runtimeclasses", Singular: "runtimeclass", New: func() any { return &nodev1.RuntimeClass{} }},
			prefix: "runtimeclasses", newObj: func() object { return &nodev1.RuntimeClass{} }, fields: nsFields,
		},
		{
			info: resource.Info{Group: "storage.k8s.io", Version: "v1", Kind: "CSIDriver", ListKind: "CSIDriverList",
				Resource: "csidrivers", Singular: "csidriver", New: func() any { return &storagev1.CSIDriver{} }},
			prefix: "csidrivers", newObj: func() object { return &storagev1.CSIDriver{} }, fields: nsFields,
		},
		{
			info: resource.Info{Group: "storage.k8s.io", Version: "v1", Kind: "CSINode", ListKind: "CSINodeList",
				Resource: "csinodes", Singular: "csinode", New: func() any { return &storagev1.CSINode{} }},
			prefix: "csinodes", newObj: func() object { return &storagev1.CSINode{} }, fields: nsFields,
		},
		{
			info: resource.Info{Group: "authorization.k8s.io", Version: "v1", Kind: "SelfSubjectAccessReview",
				Resource: "selfsubjectaccessreviews", Singular: "selfsubjectaccessreview", Verbs: []string{"create"},
				New: func() any { return &authorizationv1.SelfSubjectAccessReview{} }},
			prefix: "selfsubjectaccessreviews", newObj: func() object { return &authorizationv1.SelfSubjectAccessReview{} },
			createOnly: true, fields: nsFields,
		},
		{
			info: resource.Info{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenReview",
				Resource: "tokenreviews", Singular: "tokenreview", Verbs: []string{"create"},
				New: func() any { return &authenticationv1.TokenReview{} }},
			prefix: "tokenreviews", newObj: func() object { return &authenticationv1.TokenReview{} },
			createOnly: true, fields: nsFields,
		},
		{
			info: resource.Info{Group: "authentication.k8s.io", Version: "v1", Kind: "SelfSubjectReview",
				Resource: "selfsubjectreviews", Singular: "selfsubjectreview", Verbs: []string{"create"},
				New: func() any { return &authenticationv1.SelfSubjectReview{} }},
			prefix: "selfsubjectreviews", newObj: func() object { return &authenticationv1.SelfSubjectReview{} },
			createOnly: true, fields: nsFields,
		},
		{
			info: resource.Info{Group: "authorization.k8s.io", Version: "v1", Kind: "SelfSubjectRulesReview",
				Resource: "selfsubjectrulesreviews", Singular: "selfsubjectrulesreview", Verbs: []string{"create"},
				New: func() any { return &authorizationv1.SelfSubjectRulesReview{} }},
			prefix: "selfsubjectrulesreviews", newObj: func() object { return &authorizationv1.SelfSubjectRulesReview{} },
			createOnly: true, fields: nsFields,
		},
	}
}

func podFields(o object) fields.Set {
	p := o.(*corev1.Pod)
	return fields.Set{
		"metadata.name":            p.Name,
		"metadata.namespace":       p.Namespace,
		"spec.nodeName":            p.Spec.NodeName,
		"spec.restartPolicy":       string(p.Spec.RestartPolicy),
		"spec.schedulerName":       p.Spec.SchedulerName,
		"spec.serviceAccountName":  p.Spec.ServiceAccountName,
		"spec.hostNetwork":         strconv.FormatBool(p.Spec.HostNetwork),
		"status.phase":             string(p.Status.Phase),
		"status.podIP":             p.Status.PodIP,
		"status.nominatedNodeName": p.Status.NominatedNodeName,
	}
}

func coreEventFields(e *corev1.Event) fields.Set {
	src := e.ReportingController
	if src == "" {
		src = e.Source.Component
	}
	return fields.Set{
		"metadata.name":                  e.Name,
		"metadata.namespace":             e.Namespace,
		"involvedObject.kind":            e.InvolvedObject.Kind,
		"involvedObject.namespace":       e.InvolvedObject.Namespace,
		"involvedObject.name":            e.InvolvedObject.Name,
		"involvedObject.uid":             string(e.InvolvedObject.UID),
		"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
		"reason":                         e.Reason,
		"reportingComponent":             src,
		"source":                         e.Source.Component,
		"type":                           e.Type,
	}
}

func coreToEventsV1(e *corev1.Event) *eventsv1.Event {
	out := &eventsv1.Event{
		TypeMeta:                 metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "Event"},
		ObjectMeta:               e.ObjectMeta,
		EventTime:                e.EventTime,
		ReportingController:      e.ReportingController,
		ReportingInstance:        e.ReportingInstance,
		Action:                   e.Action,
		Reason:                   e.Reason,
		Regarding:                e.InvolvedObject,
		Related:                  e.Related,
		Note:                     e.Message,
		Type:                     e.Type,
		DeprecatedSource:         e.Source,
		DeprecatedFirstTimestamp: e.FirstTimestamp,
		DeprecatedLastTimestamp:  e.LastTimestamp,
		DeprecatedCount:          e.Count,
	}
	if e.Series != nil {
		out.Series = &eventsv1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return out
}

func eventsV1ToCore(e *eventsv1.Event) *corev1.Event {
	out := tables.CoreEvent(e)
	out.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Event"}
	return out
}

// key is the storage key of an object.
func (k *kind) key(ns, name string) string {
	if k.info.Namespaced {
		return "/" + k.prefix + "/" + ns + "/" + name
	}
	return "/" + k.prefix + "/" + name
}

// listPrefix is the storage prefix of a list in ns ("" for all namespaces).
func (k *kind) listPrefix(ns string) string {
	if k.info.Namespaced && ns != "" {
		return "/" + k.prefix + "/" + ns + "/"
	}
	return "/" + k.prefix + "/"
}

func (k *kind) setTypeMeta(o object) {
	o.GetObjectKind().SetGroupVersionKind(k.info.GVK())
}

// decodeStored turns stored bytes at revision rev into the served object.
func (k *kind) decodeStored(value []byte, rev int64) (object, error) {
	var o object
	if k.newStored != nil {
		o = k.newStored()
	} else {
		o = k.newObj()
	}
	if err := json.Unmarshal(value, o); err != nil {
		return nil, fmt.Errorf("decoding stored %s: %w", k.info.Resource, err)
	}
	if k.toServed != nil {
		o = k.toServed(o)
	}
	k.setTypeMeta(o)
	if rev > 0 {
		o.SetResourceVersion(strconv.FormatInt(rev, 10))
	}
	return o, nil
}

// encodeStored turns a served object into the bytes stored (no resourceVersion).
func (k *kind) encodeStored(o object) ([]byte, error) {
	s := o
	if k.toStored != nil {
		s = k.toStored(o)
	}
	rv := s.GetResourceVersion()
	s.SetResourceVersion("")
	defer s.SetResourceVersion(rv)
	return json.Marshal(s)
}

// decodeBody decodes a request body into the served kind. strict reports unknown fields.
func (k *kind) decodeBody(body []byte, strict bool) (object, []string, error) {
	o := k.newObj()
	var warnings []string
	strictErrs, err := sigsjson.UnmarshalStrict(body, o)
	if err != nil {
		return nil, nil, badRequest("the request body is not a valid %s: %v", k.info.Kind, err)
	}
	for _, e := range strictErrs {
		warnings = append(warnings, e.Error())
	}
	if strict && len(warnings) > 0 {
		return nil, nil, badRequest("strict decoding error: %v", joinErr(warnings))
	}
	return o, warnings, nil
}

func joinErr(s []string) string {
	out := ""
	for i, e := range s {
		if i > 0 {
			out += ", "
		}
		out += e
	}
	return out
}

// prepareCreate sets what the server owns on a new object.
func prepareCreate(o object) {
	switch t := o.(type) {
	case *corev1.Secret:
		validation.MergeStringData(t)
	case *corev1.Pod:
		// The node's defaults: one implementation for files and the API.
		validation.SetDefaults(t)
		t.Generation = 1
		t.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: podstatus.QOSClass(t)}
	case *corev1.Namespace:
		if len(t.Spec.Finalizers) == 0 {
			t.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
		}
		t.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	case *corev1.Node:
		// Dynamic kubelet config is gone; kube-apiserver drops the field too.
		//lint:ignore SA1019 clearing the removed field is the point
		t.Spec.ConfigSource = nil
	}
}

// keepStatus copies src's status into dst (PUT on the object keeps the old status).
func keepStatus(dst, src object) {
	switch d := dst.(type) {
	case *corev1.Pod:
		d.Status = src.(*corev1.Pod).Status
	case *corev1.Node:
		d.Status = src.(*corev1.Node).Status
	case *corev1.Namespace:
		d.Status = src.(*corev1.Namespace).Status
	}
}

// onlyStatus returns old with new's status (an update of the status subresource).
func onlyStatus(k *kind, oldObj, newObj object) object {
	out := k.newObj()
	raw, _ := json.Marshal(oldObj)
	_ = json.Unmarshal(raw, out)
	keepStatus(out, newObj)
	return out
}

// specChanged reports whether an update changes the object's spec (pods bump generation).
func bumpGeneration(oldObj, newObj object) {
	op, ok1 := oldObj.(*corev1.Pod)
	np, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 {
		return
	}
	a, _ := json.Marshal(op.Spec)
	b, _ := json.Marshal(np.Spec)
	if string(a) != string(b) {
		np.Generation = op.Generation + 1
	}
}
