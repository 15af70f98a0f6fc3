// Package kinds is how the API server stores each resource it serves: the
// storage key layout ("/<prefix>/<namespace>/<name>"), the conversion
// between the stored and the served form (both event versions are stored as
// core/v1 Events), the fields a field selector may name, and what each kind
// has (a status subresource, a TTL, create-only reviews). The description
// shared with discovery, OpenAPI and tables is internal/apiserver/resource;
// the verbs over storage are internal/apiserver/rest.
package kinds

import (
	"context"
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
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ballast-dev/ballast/internal/apiserver/resource"
	"github.com/ballast-dev/ballast/internal/apiserver/tables"
	"github.com/ballast-dev/ballast/internal/storage"
)

// Object is what every served kind is: a typed k8s.io/api struct pointer.
type Object interface {
	runtime.Object
	metav1.Object
}

// Kind is how the REST core handles one served resource.
type Kind struct {
	Info resource.Info
	// Prefix is the first segment of the storage key: "/<prefix>/<ns>/<name>".
	// Both event versions share "events": objects are stored as core/v1.
	Prefix string
	NewObj func() Object
	// ToServed/ToStored convert between the stored (core) form and the
	// served one; nil for kinds stored as served.
	ToServed  func(stored Object) Object
	ToStored  func(served Object) Object
	NewStored func() Object
	// Fields returns the field-selector fields of an object.
	Fields func(o Object) fields.Set
	// Status: the kind has a status subresource; PUT/PATCH on the object
	// keeps the old status, on /status only the status changes.
	Status bool
	// TTL for created objects (events).
	TTL time.Duration
	// ReturnDeleted: DELETE answers with the object rather than a Status.
	ReturnDeleted bool
	// CreateOnly: the kind is not stored (reviews).
	CreateOnly bool
}

const eventTTL = time.Hour

var allVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

// All returns the resources the REST core serves.
func All() []*Kind {
	return []*Kind{
		{
			Info: resource.Info{Version: "v1", Kind: "Namespace", ListKind: "NamespaceList", Resource: "namespaces",
				Singular: "namespace", ShortNames: []string{"ns"}, Verbs: []string{"create", "delete", "get", "list", "patch", "update", "watch"},
				Subresources: []string{"status"}, New: func() any { return &corev1.Namespace{} }},
			Prefix: "namespaces", NewObj: func() Object { return &corev1.Namespace{} }, Status: true, ReturnDeleted: true,
			Fields: func(o Object) fields.Set {
				return fields.Set{"metadata.name": o.GetName(), "status.phase": string(o.(*corev1.Namespace).Status.Phase)}
			},
		},
		{
			Info: resource.Info{Version: "v1", Kind: "Node", ListKind: "NodeList", Resource: "nodes",
				Singular: "node", ShortNames: []string{"no"}, Verbs: allVerbs,
				Subresources: []string{"status"}, New: func() any { return &corev1.Node{} }},
			Prefix: "nodes", NewObj: func() Object { return &corev1.Node{} }, Status: true,
			Fields: func(o Object) fields.Set {
				return fields.Set{"metadata.name": o.GetName(),
					"spec.unschedulable": strconv.FormatBool(o.(*corev1.Node).Spec.Unschedulable)}
			},
		},
		{
			Info: resource.Info{Version: "v1", Kind: "Pod", ListKind: "PodList", Resource: "pods",
				Singular: "pod", ShortNames: []string{"po"}, Namespaced: true, Verbs: allVerbs,
				Subresources: []string{"status", "log"}, Categories: []string{"all"}, New: func() any { return &corev1.Pod{} }},
			Prefix: "pods", NewObj: func() Object { return &corev1.Pod{} }, Status: true, ReturnDeleted: true,
			Fields: podFields,
		},
		configMapKind(),
		secretKind(),
		{
			Info: resource.Info{Version: "v1", Kind: "Event", ListKind: "EventList", Resource: "events",
				Singular: "event", ShortNames: []string{"ev"}, Namespaced: true, Verbs: allVerbs,
				New: func() any { return &corev1.Event{} }},
			Prefix: "events", NewObj: func() Object { return &corev1.Event{} }, TTL: eventTTL,
			Fields: func(o Object) fields.Set { return coreEventFields(o.(*corev1.Event)) },
		},
		{
			Info: resource.Info{Group: "events.k8s.io", Version: "v1", Kind: "Event", ListKind: "EventList", Resource: "events",
				Singular: "event", ShortNames: []string{"ev"}, Namespaced: true, Verbs: allVerbs,
				New: func() any { return &eventsv1.Event{} }},
			Prefix: "events", NewObj: func() Object { return &eventsv1.Event{} }, TTL: eventTTL,
			NewStored: func() Object { return &corev1.Event{} },
			ToServed:  func(o Object) Object { return CoreToEventsV1(o.(*corev1.Event)) },
			ToStored:  func(o Object) Object { return EventsV1ToCore(o.(*eventsv1.Event)) },
			Fields: func(o Object) fields.Set {
				f := coreEventFields(EventsV1ToCore(o.(*eventsv1.Event)))
				for _, k := range []string{"kind", "name", "namespace", "uid", "apiVersion", "resourceVersion", "fieldPath"} {
					f["regarding."+k] = f["involvedObject."+k]
				}
				return f
			},
		},
		{
			Info: resource.Info{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease", ListKind: "LeaseList", Resource: "leases",
				Singular: "lease", Namespaced: true, Verbs: allVerbs, New: func() any { return &coordinationv1.Lease{} }},
			Prefix: "leases", NewObj: func() Object { return &coordinationv1.Lease{} }, Fields: namespacedFields,
		},
		{
			Info: resource.Info{Version: "v1", Kind: "Service", ListKind: "ServiceList", Resource: "services",
				Singular: "service", Namespaced: true, New: func() any { return &corev1.Service{} }},
			Prefix: "services", NewObj: func() Object { return &corev1.Service{} },
			Fields: func(o Object) fields.Set {
				svc := o.(*corev1.Service)
				return fields.Set{"metadata.name": svc.Name, "metadata.namespace": svc.Namespace,
					"spec.clusterIP": svc.Spec.ClusterIP, "spec.type": string(svc.Spec.Type)}
			},
		},
		{
			Info: resource.Info{Group: "node.k8s.io", Version: "v1", Kind: "RuntimeClass", ListKind: "RuntimeClassList",
				Resource: "runtimeclasses", Singular: "runtimeclass", New: func() any { return &nodev1.RuntimeClass{} }},
			Prefix: "runtimeclasses", NewObj: func() Object { return &nodev1.RuntimeClass{} }, Fields: namespacedFields,
		},
		{
			Info: resource.Info{Group: "storage.k8s.io", Version: "v1", Kind: "CSIDriver", ListKind: "CSIDriverList",
				Resource: "csidrivers", Singular: "csidriver", New: func() any { return &storagev1.CSIDriver{} }},
			Prefix: "csidrivers", NewObj: func() Object { return &storagev1.CSIDriver{} }, Fields: namespacedFields,
		},
		{
			Info: resource.Info{Group: "storage.k8s.io", Version: "v1", Kind: "CSINode", ListKind: "CSINodeList",
				Resource: "csinodes", Singular: "csinode", New: func() any { return &storagev1.CSINode{} }},
			Prefix: "csinodes", NewObj: func() Object { return &storagev1.CSINode{} }, Fields: namespacedFields,
		},
		{
			Info: resource.Info{Group: "authorization.k8s.io", Version: "v1", Kind: "SelfSubjectAccessReview",
				Resource: "selfsubjectaccessreviews", Singular: "selfsubjectaccessreview", Verbs: []string{"create"},
				New: func() any { return &authorizationv1.SelfSubjectAccessReview{} }},
			Prefix: "selfsubjectaccessreviews", NewObj: func() Object { return &authorizationv1.SelfSubjectAccessReview{} },
			CreateOnly: true, Fields: namespacedFields,
		},
		{
			Info: resource.Info{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenReview",
				Resource: "tokenreviews", Singular: "tokenreview", Verbs: []string{"create"},
				New: func() any { return &authenticationv1.TokenReview{} }},
			Prefix: "tokenreviews", NewObj: func() Object { return &authenticationv1.TokenReview{} },
			CreateOnly: true, Fields: namespacedFields,
		},
		{
			Info: resource.Info{Group: "authentication.k8s.io", Version: "v1", Kind: "SelfSubjectReview",
				Resource: "selfsubjectreviews", Singular: "selfsubjectreview", Verbs: []string{"create"},
				New: func() any { return &authenticationv1.SelfSubjectReview{} }},
			Prefix: "selfsubjectreviews", NewObj: func() Object { return &authenticationv1.SelfSubjectReview{} },
			CreateOnly: true, Fields: namespacedFields,
		},
		{
			Info: resource.Info{Group: "authorization.k8s.io", Version: "v1", Kind: "SelfSubjectRulesReview",
				Resource: "selfsubjectrulesreviews", Singular: "selfsubjectrulesreview", Verbs: []string{"create"},
				New: func() any { return &authorizationv1.SelfSubjectRulesReview{} }},
			Prefix: "selfsubjectrulesreviews", NewObj: func() Object { return &authorizationv1.SelfSubjectRulesReview{} },
			CreateOnly: true, Fields: namespacedFields,
		},
	}
}

func podFields(o Object) fields.Set {
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

func CoreToEventsV1(e *corev1.Event) *eventsv1.Event {
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

func EventsV1ToCore(e *eventsv1.Event) *corev1.Event {
	out := tables.CoreEvent(e)
	out.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Event"}
	return out
}

// Key is the storage key of an object.
func (k *Kind) Key(ns, name string) string {
	if k.Info.Namespaced {
		return "/" + k.Prefix + "/" + ns + "/" + name
	}
	return "/" + k.Prefix + "/" + name
}

// ListPrefix is the storage prefix of a list in ns ("" for all namespaces).
func (k *Kind) ListPrefix(ns string) string {
	if k.Info.Namespaced && ns != "" {
		return "/" + k.Prefix + "/" + ns + "/"
	}
	return "/" + k.Prefix + "/"
}

func (k *Kind) SetTypeMeta(o Object) {
	o.GetObjectKind().SetGroupVersionKind(k.Info.GVK())
}

// DecodeStored turns stored bytes at revision rev into the served object.
func (k *Kind) DecodeStored(value []byte, rev int64) (Object, error) {
	var o Object
	if k.NewStored != nil {
		o = k.NewStored()
	} else {
		o = k.NewObj()
	}
	if err := json.Unmarshal(value, o); err != nil {
		return nil, fmt.Errorf("decoding stored %s: %w", k.Info.Resource, err)
	}
	if k.ToServed != nil {
		o = k.ToServed(o)
	}
	k.SetTypeMeta(o)
	if rev > 0 {
		o.SetResourceVersion(strconv.FormatInt(rev, 10))
	}
	return o, nil
}

// Get reads one object from store, as served; errors are the store's.
func (k *Kind) Get(ctx context.Context, store storage.Store, ns, name string) (Object, error) {
	so, err := store.Get(ctx, k.Key(ns, name))
	if err != nil {
		return nil, err
	}
	return k.DecodeStored(so.Value, so.Revision)
}

// EncodeStored turns a served object into the bytes stored (no resourceVersion).
func (k *Kind) EncodeStored(o Object) ([]byte, error) {
	s := o
	if k.ToStored != nil {
		s = k.ToStored(o)
	}
	rv := s.GetResourceVersion()
	s.SetResourceVersion("")
	defer s.SetResourceVersion(rv)
	return json.Marshal(s)
}

// ConfigMaps and Secrets are the mirrors of nodes' node-local objects;
// internal/apiserver/admission says who may write them.
func configMapKind() *Kind {
	return &Kind{
		Info: resource.Info{Version: "v1", Kind: "ConfigMap", ListKind: "ConfigMapList", Resource: "configmaps",
			Singular: "configmap", ShortNames: []string{"cm"}, Namespaced: true, Verbs: allVerbs,
			New: func() any { return &corev1.ConfigMap{} }},
		Prefix: "configmaps", NewObj: func() Object { return &corev1.ConfigMap{} }, Fields: namespacedFields,
	}
}

func secretKind() *Kind {
	return &Kind{
		Info: resource.Info{Version: "v1", Kind: "Secret", ListKind: "SecretList", Resource: "secrets",
			Singular: "secret", Namespaced: true, Verbs: allVerbs,
			New: func() any { return &corev1.Secret{} }},
		Prefix: "secrets", NewObj: func() Object { return &corev1.Secret{} },
		Fields: func(o Object) fields.Set {
			f := namespacedFields(o)
			f["type"] = string(o.(*corev1.Secret).Type)
			return f
		},
	}
}

// namespacedFields are the fields every kind selects on.
func namespacedFields(o Object) fields.Set {
	return fields.Set{"metadata.name": o.GetName(), "metadata.namespace": o.GetNamespace()}
}

// GroupResource is the kind's group and resource, as errors name it.
func (k *Kind) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: k.Info.Group, Resource: k.Info.Resource}
}
