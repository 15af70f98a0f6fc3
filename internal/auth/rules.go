package auth

import (
	authorizationv1 "k8s.io/api/authorization/v1"
)

// Rules lists what Authorize lets u do in namespace, as a
// SelfSubjectRulesReview reports it (`kubectl auth can-i --list`). Authorize
// has no roles: these rules are written from the same decisions, and
// TestRulesAgreeWithAuthorize checks every verb, resource, name, namespace
// and path against Authorize so the two cannot drift apart. The object-level
// check of a node's pods (AdmitNodePod) is not a rule: it is listed as the
// verbs on pods, as the kubelet's role lists them.
func Rules(u User, namespace string) ([]authorizationv1.ResourceRule, []authorizationv1.NonResourceRule) {
	all := []string{"*"}
	read := []string{"get", "head"}
	nonRes := []authorizationv1.NonResourceRule{{Verbs: read, NonResourceURLs: withSubpaths(publicPaths)}}
	if !u.IsAuthenticated() {
		return nil, nonRes
	}
	if u.IsAdmin() {
		return []authorizationv1.ResourceRule{{Verbs: all, APIGroups: all, Resources: all}},
			[]authorizationv1.NonResourceRule{{Verbs: all, NonResourceURLs: all}}
	}
	nonRes = append(nonRes, authorizationv1.NonResourceRule{Verbs: read, NonResourceURLs: withSubpaths(discoveryPaths)})
	res := []authorizationv1.ResourceRule{
		{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews", "selfsubjectrulesreviews"}},
		{Verbs: []string{"create"}, APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}},
	}
	node := u.NodeName()
	if node == "" {
		return res, nonRes
	}
	res = append(res,
		authorizationv1.ResourceRule{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""},
			Resources: []string{"pods", "pods/status", "nodes", "nodes/status", "namespaces", "namespaces/status", "events", "events/status", "services", "services/status"}},
		authorizationv1.ResourceRule{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{"node.k8s.io"}, Resources: []string{"runtimeclasses", "runtimeclasses/status"}},
		authorizationv1.ResourceRule{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{"storage.k8s.io"}, Resources: []string{"csidrivers", "csidrivers/status", "csinodes", "csinodes/status"}},
		authorizationv1.ResourceRule{Verbs: []string{"create", "update", "patch", "delete"}, APIGroups: []string{"storage.k8s.io"}, Resources: []string{"csinodes"}, ResourceNames: []string{node}},
		authorizationv1.ResourceRule{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"configmaps"}},
		// The node's own mirrors, checked on the object; its mirror Secrets
		// are listed with labelSelector ballast.dev/node=NODE only, which a
		// rule cannot say: not listed.
		authorizationv1.ResourceRule{Verbs: []string{"create", "update", "patch", "delete"}, APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}},
		authorizationv1.ResourceRule{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{"events.k8s.io"}, Resources: []string{"events", "events/status"}},
		authorizationv1.ResourceRule{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases", "leases/status"}},
		authorizationv1.ResourceRule{Verbs: []string{"create", "update", "patch", "delete"}, APIGroups: []string{""}, Resources: []string{"nodes"}, ResourceNames: []string{node}},
		authorizationv1.ResourceRule{Verbs: []string{"update", "patch"}, APIGroups: []string{""}, Resources: []string{"nodes/status"}, ResourceNames: []string{node}},
		authorizationv1.ResourceRule{Verbs: []string{"create", "update", "patch"}, APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}},
		authorizationv1.ResourceRule{Verbs: []string{"create", "update", "patch", "delete"}, APIGroups: []string{""}, Resources: []string{"pods", "pods/status"}},
		authorizationv1.ResourceRule{Verbs: []string{"create"}, APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}},
		authorizationv1.ResourceRule{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}},
	)
	if namespace == NodeLeaseNamespace {
		res = append(res, authorizationv1.ResourceRule{Verbs: []string{"create", "update", "patch", "get"},
			APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{node}})
	}
	return res, nonRes
}

// withSubpaths lists each path and its subpaths ("/api", "/api/*").
func withSubpaths(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, p, p+"/*")
	}
	return out
}
