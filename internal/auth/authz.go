package auth

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

// NodeLeaseNamespace is where nodes keep their Leases.
const NodeLeaseNamespace = "kube-node-lease"

// Non-resource paths anyone may read (and their subpaths, e.g. /livez/ping).
var publicPaths = []string{"/healthz", "/livez", "/readyz", "/version"}

// Non-resource paths any authenticated user may read: discovery and OpenAPI.
var discoveryPaths = []string{"/api", "/apis", "/openapi"}

// Authorize decides one request, by these rules (there are no roles to
// configure):
//
//   - system:masters (authenticated): everything.
//   - anyone, anonymous too: get (or head) /healthz, /livez, /readyz,
//     /version and their subpaths. Nothing else is open to anonymous.
//   - any authenticated user: get /api, /apis, /openapi and their subpaths
//     (discovery, OpenAPI); create selfsubjectaccessreviews and
//     selfsubjectrulesreviews (authorization.k8s.io, for `kubectl auth
//     can-i`) and selfsubjectreviews (authentication.k8s.io, `kubectl auth
//     whoami`).
//   - a node (User.NodeName() != ""):
//     get/list/watch pods, nodes, namespaces, events (core and
//     events.k8s.io), leases, services, runtimeclasses, csidrivers and
//     csinodes (what a kubelet reads), and their status;
//     create/update/patch/delete its own CSINode (Name must be the node's);
//     create/update/patch/delete its own Node and get/update/patch its
//     nodes/status (Name must be the node's);
//     create/update/patch/get its own Lease in kube-node-lease;
//     create/update/patch events in any namespace;
//     create/update/patch/delete pods and pods/status — at verb level only:
//     whether the pod is the node's own is known from the object, so the API
//     server must check it (spec.nodeName) in admission, with AdmitNodePod;
//     get/list/watch configmaps; create/update/patch/delete configmaps and
//     secrets, likewise at verb level (the API server's admission lets a node
//     write only its own mirrors, labelled ballast.dev/node=NODE); list and
//     watch secrets only with that label selector (SelectsNode), never get
//     one: a node reads no other node's Secrets;
//     create tokenreviews and subjectaccessreviews, so the node's HTTPS API
//     (issue 5) can check bearer tokens and permissions against the server,
//     as the kubelet does with its system:node role;
//     never pods/exec, pods/attach or pods/portforward, not even on its own
//     pods: a node's credentials open no shell anywhere.
//   - streaming into pods (create pods/exec, pods/attach, pods/portforward;
//     the API server authorizes both GET and POST as create, as
//     kube-apiserver 1.32 does for WebSocket upgrades): system:masters only.
//   - everything else is denied, with a reason naming user, verb and resource.
//
// For create, the request URL has no name: the server must set Name to the
// new object's metadata.name before authorizing creates of nodes and leases
// (an empty Name is not the node's own, so it is denied).
//
// Non-resource requests have Resource == "" and Path set; the path must be
// clean (no "..", ".", "//"). Verbs are lower case; for non-resource
// requests they are the HTTP method (get, head, post, ...).
func Authorize(a Attributes) Decision {
	u := a.User
	verb := strings.ToLower(a.Verb)
	if u.IsAdmin() && u.IsAuthenticated() {
		return allow()
	}
	if a.Resource == "" {
		return authorizePath(u, verb, a.Path)
	}
	if !u.IsAuthenticated() {
		return deny(a, "anonymous requests may only read /healthz, /livez, /readyz and /version; use a client certificate or bearer token (the admin kubeconfig is in the server's data dir)")
	}
	if verb == "create" && a.Subresource == "" &&
		((a.Group == "authorization.k8s.io" && (a.Resource == "selfsubjectaccessreviews" || a.Resource == "selfsubjectrulesreviews")) ||
			(a.Group == "authentication.k8s.io" && a.Resource == "selfsubjectreviews")) {
		return allow()
	}
	if node := u.NodeName(); node != "" {
		return authorizeNode(a, verb, node)
	}
	if a.Group == "" && a.Resource == "pods" && IsStreamingSubresource(a.Subresource) {
		return deny(a, "only members of system:masters may exec into, attach to or forward ports of pods")
	}
	return deny(a, "only members of system:masters may use this API beyond discovery")
}

// IsStreamingSubresource tells whether a pod subresource opens a stream into
// the pod: exec, attach, portforward.
func IsStreamingSubresource(sub string) bool {
	return sub == "exec" || sub == "attach" || sub == "portforward"
}

// KubeletStreamAction is how a node's kubelet API decides a request that
// opens a stream into a pod.
type KubeletStreamAction int

const (
	// KubeletStreamDeny refuses the request (Decision.Reason says why).
	KubeletStreamDeny KubeletStreamAction = iota
	// KubeletStreamAllow lets it through.
	KubeletStreamAllow
	// KubeletStreamAskAPIServer: the API server decides, with a
	// SubjectAccessReview of KubeletStreamAttributes.
	KubeletStreamAskAPIServer
)

// IsKubeletStreamPath tells whether a path of the kubelet API opens a stream
// into a pod: /exec/, /attach/, /portForward/ and /run/ (the kubelet
// authorizes them all as nodes/proxy).
func IsKubeletStreamPath(p string) bool {
	return underAny(p, []string{"/exec", "/attach", "/portForward", "/run"})
}

// KubeletStreamAttributes is what the kubelet asks the API server about a
// stream into a pod on node: create nodes/proxy NODE. Create whatever the
// method: a WebSocket upgrade is a GET, and must not need less permission
// than SPDY's POST.
func KubeletStreamAttributes(u User, node string) Attributes {
	return Attributes{User: u, Verb: "create", Resource: "nodes", Subresource: "proxy", Name: node}
}

// AuthorizeKubeletStream decides a stream into a pod (IsKubeletStreamPath)
// on a node's kubelet API, for u authenticated by a client certificate the
// node trusts (--client-ca-file: the API servers' kubelet client
// certificates) or by a TokenReview:
//
//   - a node's identity (system:node:*, or group system:nodes), never, not
//     even this node's: a node's credentials open no shell anywhere;
//   - another client certificate from the trusted CA: allowed, as the API
//     server's own kubelet client is;
//   - a token user: the API server decides (KubeletStreamAskAPIServer) with a
//     SubjectAccessReview for create nodes/proxy on this node, as the
//     kubelet's webhook authorization does.
func AuthorizeKubeletStream(u User, viaClientCert bool, node string) (KubeletStreamAction, Decision) {
	if strings.HasPrefix(u.Name, NodeUserPrefix) || slices.Contains(u.Groups, GroupNodes) {
		return KubeletStreamDeny, deny(KubeletStreamAttributes(u, node), "a node's credentials may never exec into, attach to or forward ports of pods")
	}
	if viaClientCert {
		return KubeletStreamAllow, allow()
	}
	return KubeletStreamAskAPIServer, Decision{}
}

func authorizePath(u User, verb, p string) Decision {
	reason := func(why string) Decision {
		return Decision{Reason: fmt.Sprintf("User %q cannot %s path %q: %s", u.Name, verb, p, why)}
	}
	if !cleanPath(p) {
		return reason("the path is not clean")
	}
	read := verb == "get" || verb == "head"
	if read && underAny(p, publicPaths) {
		return allow()
	}
	if !u.IsAuthenticated() {
		return reason("anonymous requests may only read /healthz, /livez, /readyz and /version; use a client certificate or bearer token (the admin kubeconfig is in the server's data dir)")
	}
	if read && underAny(p, discoveryPaths) {
		return allow()
	}
	if u.IsAdmin() {
		return allow()
	}
	return reason("only members of system:masters may use this path")
}

// cleanPath accepts an absolute path with no ".", ".." or empty segments (a
// trailing slash is allowed).
func cleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	trimmed := p
	if len(p) > 1 {
		trimmed = strings.TrimSuffix(p, "/")
	}
	return path.Clean(trimmed) == trimmed
}

func underAny(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

func authorizeNode(a Attributes, verb, node string) Decision {
	res := a.Resource
	sub := a.Subresource
	isEvents := res == "events" && (a.Group == "" || a.Group == "events.k8s.io")
	isCore := a.Group == ""
	readable := (isCore && (res == "pods" || res == "nodes" || res == "namespaces" || res == "services")) || isEvents ||
		(a.Group == "coordination.k8s.io" && res == "leases") ||
		(a.Group == "node.k8s.io" && res == "runtimeclasses") ||
		(a.Group == "storage.k8s.io" && (res == "csidrivers" || res == "csinodes"))

	switch verb {
	case "get", "list", "watch":
		if readable && (sub == "" || sub == "status") {
			return allow()
		}
	}

	switch {
	case isCore && res == "nodes" && (sub == "" || sub == "status"):
		var ok bool
		if sub == "" {
			ok = verb == "create" || verb == "update" || verb == "patch" || verb == "delete"
		} else {
			ok = verb == "update" || verb == "patch"
		}
		if !ok {
			break
		}
		if a.Name != node {
			return deny(a, "a node may only change its own Node")
		}
		return allow()

	case a.Group == "coordination.k8s.io" && res == "leases" && sub == "":
		if verb != "create" && verb != "update" && verb != "patch" && verb != "get" {
			break
		}
		if a.Namespace != NodeLeaseNamespace || a.Name != node {
			return deny(a, fmt.Sprintf("a node may only write its own Lease (%q in namespace %q)", node, NodeLeaseNamespace))
		}
		return allow()

	case a.Group == "storage.k8s.io" && res == "csinodes" && sub == "":
		if verb != "create" && verb != "update" && verb != "patch" && verb != "delete" {
			break
		}
		if a.Name != node {
			return deny(a, "a node may only write its own CSINode")
		}
		return allow()

	case isEvents && sub == "":
		if verb == "create" || verb == "update" || verb == "patch" {
			return allow()
		}

	case isCore && res == "pods" && (sub == "" || sub == "status"):
		// The object decides whether the pod is the node's: see AdmitNodePod.
		if verb == "create" || verb == "update" || verb == "patch" || verb == "delete" {
			return allow()
		}

	case isCore && (res == "configmaps" || res == "secrets") && sub == "":
		switch verb {
		case "create", "update", "patch", "delete":
			// The object decides whether it is the node's mirror (admission).
			return allow()
		case "list", "watch":
			if res == "configmaps" || SelectsNode(a.LabelSelector, node) {
				return allow()
			}
			return deny(a, fmt.Sprintf("a node may list and watch only its own mirror Secrets: ask with labelSelector %s=%s", wellknown.LabelNode, node))
		case "get":
			if res == "configmaps" {
				return allow()
			}
			return deny(a, fmt.Sprintf("a node reads no Secret by name: it lists its own mirror Secrets (labelSelector %s=%s)", wellknown.LabelNode, node))
		}

	case isCore && res == "pods" && IsStreamingSubresource(sub):
		return deny(a, "a node's credentials may never exec into, attach to or forward ports of pods, not even its own")

	case verb == "create" && sub == "" &&
		((a.Group == "authentication.k8s.io" && res == "tokenreviews") ||
			(a.Group == "authorization.k8s.io" && res == "subjectaccessreviews")):
		return allow()
	}
	return deny(a, "a node may only read pods, nodes, namespaces, configmaps, events, leases, services, runtimeclasses, csidrivers and csinodes, and write its own Node, Lease, CSINode, mirror pods, mirror ConfigMaps and Secrets, and events")
}

// SelectsNode tells whether a label selector selects only objects labelled
// ballast.dev/node=node (it requires that label with that one value).
func SelectsNode(selector, node string) bool {
	sel, err := labels.Parse(selector)
	if err != nil {
		return false
	}
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		if r.Key() != wellknown.LabelNode {
			continue
		}
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			if v := r.Values(); v.Len() == 1 && v.Has(node) {
				return true
			}
		}
	}
	return false
}

// AdmitNodePod is the object-level half of a node's pod permissions, for the
// API server's admission of create, update, patch and delete of pods and
// pods/status: a node may only touch pods bound to it (podNodeName is the
// pod's spec.nodeName; for update and patch check both the old and the new
// object). Users that are not nodes are not restricted here.
func AdmitNodePod(u User, verb, namespace, name, podNodeName string) Decision {
	node := u.NodeName()
	if node == "" || podNodeName == node {
		return allow()
	}
	what := fmt.Sprintf("%q", name)
	if namespace != "" {
		what = fmt.Sprintf("%q in namespace %q", name, namespace)
	}
	bound := "is not bound to any node"
	if podNodeName != "" {
		bound = fmt.Sprintf("is bound to node %q", podNodeName)
	}
	return Decision{Reason: fmt.Sprintf("User %q cannot %s pod %s: the pod %s; a node may only change its own mirror pods (spec.nodeName %q)",
		u.Name, strings.ToLower(verb), what, bound, node)}
}

func allow() Decision { return Decision{Allowed: true} }

// deny builds kube-apiserver-like wording:
// User "system:node:a" cannot delete resource "nodes" "b": <why>
func deny(a Attributes, why string) Decision {
	var b strings.Builder
	fmt.Fprintf(&b, "User %q cannot %s resource %q", a.User.Name, strings.ToLower(a.Verb), resourceString(a))
	if a.Name != "" {
		fmt.Fprintf(&b, " %q", a.Name)
	}
	if a.Group != "" {
		fmt.Fprintf(&b, " in API group %q", a.Group)
	}
	if a.Namespace != "" {
		fmt.Fprintf(&b, " in namespace %q", a.Namespace)
	}
	b.WriteString(": ")
	b.WriteString(why)
	return Decision{Reason: b.String()}
}

func resourceString(a Attributes) string {
	if a.Subresource != "" {
		return a.Resource + "/" + a.Subresource
	}
	return a.Resource
}
