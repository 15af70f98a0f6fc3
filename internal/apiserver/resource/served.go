package resource

import (
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	nodev1 "k8s.io/api/node/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// Verb sets as kube-apiserver lists them in discovery.
var (
	// crudVerbs is what a plain stored resource supports.
	crudVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	// namespaceVerbs: kube-apiserver does not offer deletecollection on namespaces.
	namespaceVerbs = []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	// readVerbs: resources a kubelet reads that Ballast never has any of
	// (it routes no Services, selects no runtime classes, runs no CSI
	// drivers): always empty, creation refused.
	readVerbs = []string{"get", "list", "watch"}
)

// Served lists the resources Ballast's API server serves, in discovery
// order. Each call returns fresh slices, so callers may modify the result.
func Served() []Info {
	return []Info{
		{
			Group: "", Version: "v1", Kind: "Namespace", ListKind: "NamespaceList",
			Resource: "namespaces", Singular: "namespace", ShortNames: []string{"ns"},
			Namespaced: false, Verbs: clone(namespaceVerbs),
			New: func() any { return &corev1.Namespace{} },
		},
		{
			Group: "", Version: "v1", Kind: "Node", ListKind: "NodeList",
			Resource: "nodes", Singular: "node", ShortNames: []string{"no"},
			Namespaced: false, Verbs: clone(crudVerbs), Subresources: []string{"status",
				"proxy", // the node's kubelet API
			},
			New: func() any { return &corev1.Node{} },
		},
		{
			Group: "", Version: "v1", Kind: "Pod", ListKind: "PodList",
			Resource: "pods", Singular: "pod", ShortNames: []string{"po"},
			Namespaced: true, Verbs: clone(crudVerbs), Subresources: []string{"status", "log",
				"exec", "attach", "portforward", // streams, proxied to the pod's node
				"ephemeralcontainers", // refused for static pods, as kube-apiserver does
				"proxy",               // to the pod's IP
			},
			Categories: []string{"all"},
			New:        func() any { return &corev1.Pod{} },
		},
		{
			// Mirrors of the nodes' ConfigMaps (configmaps.go): created only
			// by their nodes, read-only for everyone else.
			Group: "", Version: "v1", Kind: "ConfigMap", ListKind: "ConfigMapList",
			Resource: "configmaps", Singular: "configmap", ShortNames: []string{"cm"},
			Namespaced: true, Verbs: clone(crudVerbs),
			New: func() any { return &corev1.ConfigMap{} },
		},
		{
			// Mirrors of the nodes' Secrets, without their values unless a
			// node publishes them.
			Group: "", Version: "v1", Kind: "Secret", ListKind: "SecretList",
			Resource: "secrets", Singular: "secret",
			Namespaced: true, Verbs: clone(crudVerbs),
			New: func() any { return &corev1.Secret{} },
		},
		{
			Group: "", Version: "v1", Kind: "Event", ListKind: "EventList",
			Resource: "events", Singular: "event", ShortNames: []string{"ev"},
			Namespaced: true, Verbs: clone(crudVerbs),
			New: func() any { return &corev1.Event{} },
		},
		{
			Group: "events.k8s.io", Version: "v1", Kind: "Event", ListKind: "EventList",
			Resource: "events", Singular: "event", ShortNames: []string{"ev"},
			Namespaced: true, Verbs: clone(crudVerbs),
			New: func() any { return &eventsv1.Event{} },
		},
		{
			Group: "coordination.k8s.io", Version: "v1", Kind: "Lease", ListKind: "LeaseList",
			Resource: "leases", Singular: "lease",
			Namespaced: true, Verbs: clone(crudVerbs),
			New: func() any { return &coordinationv1.Lease{} },
		},
		{
			// Read by every kubelet (service environment variables); none exist.
			Group: "", Version: "v1", Kind: "Service", ListKind: "ServiceList",
			Resource: "services", Singular: "service", ShortNames: []string{"svc"},
			Namespaced: true, Verbs: clone(readVerbs),
			New: func() any { return &corev1.Service{} },
		},
		{
			// Only so `kubectl auth can-i` works: created, never stored.
			Group: "authorization.k8s.io", Version: "v1", Kind: "SelfSubjectAccessReview",
			Resource: "selfsubjectaccessreviews", Singular: "selfsubjectaccessreview",
			Namespaced: false, Verbs: []string{"create"},
			New: func() any { return &authorizationv1.SelfSubjectAccessReview{} },
		},
		{
			// Only so `kubectl auth can-i --list` works: created, never stored.
			Group: "authorization.k8s.io", Version: "v1", Kind: "SelfSubjectRulesReview",
			Resource: "selfsubjectrulesreviews", Singular: "selfsubjectrulesreview",
			Namespaced: false, Verbs: []string{"create"},
			New: func() any { return &authorizationv1.SelfSubjectRulesReview{} },
		},
		{
			// So that a node's kubelet API can check bearer tokens: created, never stored.
			Group: "authentication.k8s.io", Version: "v1", Kind: "TokenReview",
			Resource: "tokenreviews", Singular: "tokenreview",
			Namespaced: false, Verbs: []string{"create"},
			New: func() any { return &authenticationv1.TokenReview{} },
		},
		{
			// Only so `kubectl auth whoami` works: created, never stored.
			Group: "authentication.k8s.io", Version: "v1", Kind: "SelfSubjectReview",
			Resource: "selfsubjectreviews", Singular: "selfsubjectreview",
			Namespaced: false, Verbs: []string{"create"},
			New: func() any { return &authenticationv1.SelfSubjectReview{} },
		},
		{
			// Read by every kubelet; none exist.
			Group: "node.k8s.io", Version: "v1", Kind: "RuntimeClass", ListKind: "RuntimeClassList",
			Resource: "runtimeclasses", Singular: "runtimeclass",
			Namespaced: false, Verbs: clone(readVerbs),
			New: func() any { return &nodev1.RuntimeClass{} },
		},
		{
			// Read by every kubelet; none exist.
			Group: "storage.k8s.io", Version: "v1", Kind: "CSIDriver", ListKind: "CSIDriverList",
			Resource: "csidrivers", Singular: "csidriver",
			Namespaced: false, Verbs: clone(readVerbs),
			New: func() any { return &storagev1.CSIDriver{} },
		},
		{
			// Each kubelet keeps its node's (it will not report Ready without it).
			Group: "storage.k8s.io", Version: "v1", Kind: "CSINode", ListKind: "CSINodeList",
			Resource: "csinodes", Singular: "csinode",
			Namespaced: false, Verbs: clone(crudVerbs),
			New: func() any { return &storagev1.CSINode{} },
		},
	}
}

// SubresourceVerbs are the verbs kube-apiserver offers on a subresource:
// status is read and written like the object, log is only read, and the
// streams (exec, attach, portforward) are created or got.
func SubresourceVerbs(sub string) []string {
	switch sub {
	case "status":
		return []string{"get", "patch", "update"}
	case "log":
		return []string{"get"}
	case "ephemeralcontainers":
		return []string{"get", "patch", "update"}
	case "proxy":
		return []string{"create", "delete", "get", "patch", "update"}
	case "exec", "attach", "portforward":
		// Connect subresources: kubectl POSTs (SPDY) or GETs (WebSocket).
		return []string{"create", "get"}
	}
	return []string{"get"}
}

// SubresourceKind is the kind discovery names for a subresource of a
// resource of kind: the options kind of a connect subresource, as
// kube-apiserver lists them (pods/exec is PodExecOptions).
func SubresourceKind(kind, sub string) string {
	switch sub {
	case "exec":
		return kind + "ExecOptions"
	case "attach":
		return kind + "AttachOptions"
	case "portforward":
		return kind + "PortForwardOptions"
	}
	return kind
}

// Lookup finds the served resource of a group, version and resource.
func Lookup(infos []Info, group, version, resource string) (Info, bool) {
	for _, in := range infos {
		if in.Group == group && in.Version == version && in.Resource == resource {
			return in, true
		}
	}
	return Info{}, false
}

// HasVerb reports whether the resource supports verb.
func (i Info) HasVerb(verb string) bool {
	for _, v := range i.Verbs {
		if v == verb {
			return true
		}
	}
	return false
}

func clone(s []string) []string { return append([]string(nil), s...) }
