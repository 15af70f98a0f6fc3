package auth

import (
	"strings"
	"testing"
)

func TestAuthorize(t *testing.T) {
	admin := User{Name: AdminUser, Groups: []string{GroupMasters, GroupAuthenticated}}
	nodeA := User{Name: "system:node:a", Groups: []string{GroupNodes, GroupAuthenticated}}
	// Named like a node but not in system:nodes: an ordinary user.
	fakeNode := User{Name: "system:node:a", Groups: []string{GroupAuthenticated}}
	alice := User{Name: "alice", Groups: []string{GroupAuthenticated}}
	anon := Anonymous
	// system:masters without system:authenticated was not made by the
	// Authenticator: not trusted.
	unauthMaster := User{Name: "x", Groups: []string{GroupMasters}}

	res := func(u User, verb, group, resource, sub, ns, name string) Attributes {
		return Attributes{User: u, Verb: verb, Group: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	path := func(u User, verb, p string) Attributes { return Attributes{User: u, Verb: verb, Path: p} }
	const coord = "coordination.k8s.io"

	tests := []struct {
		name  string
		attrs Attributes
		allow bool
		// substrings the denial reason must contain
		reason []string
	}{
		// admin
		{"admin deletes a node", res(admin, "delete", "", "nodes", "", "", "b"), true, nil},
		{"admin deletecollection pods", res(admin, "deletecollection", "", "pods", "", "default", ""), true, nil},
		{"admin posts to a path", path(admin, "post", "/anything"), true, nil},
		{"unauthenticated masters", res(unauthMaster, "get", "", "pods", "", "default", "p"), false, []string{"anonymous"}},

		// anonymous
		{"anon healthz", path(anon, "get", "/healthz"), true, nil},
		{"anon healthz subpath", path(anon, "get", "/healthz/etcd"), true, nil},
		{"anon livez", path(anon, "get", "/livez"), true, nil},
		{"anon readyz head", path(anon, "head", "/readyz"), true, nil},
		{"anon version", path(anon, "get", "/version"), true, nil},
		{"anon version slash", path(anon, "get", "/version/"), true, nil},
		{"anon healthzx", path(anon, "get", "/healthzx"), false, nil},
		{"anon post healthz", path(anon, "post", "/healthz"), false, nil},
		{"anon dotdot", path(anon, "get", "/healthz/../api/v1/pods"), false, []string{"not clean"}},
		{"anon double slash", path(anon, "get", "/healthz//x"), false, []string{"not clean"}},
		{"anon api", path(anon, "get", "/api"), false, []string{`User "system:anonymous" cannot get path "/api"`, "anonymous"}},
		{"anon openapi", path(anon, "get", "/openapi/v2"), false, nil},
		{"anon pods", res(anon, "list", "", "pods", "", "", ""), false, []string{`User "system:anonymous" cannot list resource "pods"`}},
		{"anon ssar", res(anon, "create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", ""), false, nil},
		{"empty attrs", Attributes{}, false, nil},

		// any authenticated user
		{"alice api", path(alice, "get", "/api"), true, nil},
		{"alice api v1", path(alice, "get", "/api/v1"), true, nil},
		{"alice apis group", path(alice, "get", "/apis/coordination.k8s.io/v1"), true, nil},
		{"alice openapi v3 group", path(alice, "get", "/openapi/v3/api/v1"), true, nil},
		{"alice version", path(alice, "get", "/version"), true, nil},
		{"alice post api", path(alice, "post", "/api"), false, []string{"system:masters"}},
		{"alice metrics", path(alice, "get", "/metrics"), false, nil},
		{"alice ssar", res(alice, "create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", ""), true, nil},
		{"alice ssrr", res(alice, "create", "authorization.k8s.io", "selfsubjectrulesreviews", "", "", ""), true, nil},
		{"alice whoami", res(alice, "create", "authentication.k8s.io", "selfsubjectreviews", "", "", ""), true, nil},
		{"alice sar", res(alice, "create", "authorization.k8s.io", "subjectaccessreviews", "", "", ""), false, nil},
		{"alice pods", res(alice, "get", "", "pods", "", "default", "p"), false, []string{`User "alice" cannot get resource "pods" "p" in namespace "default"`}},
		{"fake node gets pods", res(fakeNode, "get", "", "pods", "", "default", "p"), false, nil},

		// node reads
		{"node list pods", res(nodeA, "list", "", "pods", "", "", ""), true, nil},
		{"node watch pods", res(nodeA, "watch", "", "pods", "", "", ""), true, nil},
		{"node get other node", res(nodeA, "get", "", "nodes", "", "", "b"), true, nil},
		{"node get node status", res(nodeA, "get", "", "nodes", "status", "", "a"), true, nil},
		{"node list namespaces", res(nodeA, "list", "", "namespaces", "", "", ""), true, nil},
		{"node list events", res(nodeA, "list", "", "events", "", "", ""), true, nil},
		{"node list events.k8s.io", res(nodeA, "watch", "events.k8s.io", "events", "", "", ""), true, nil},
		{"node list leases", res(nodeA, "list", coord, "leases", "", "", ""), true, nil},
		{"node pods log", res(nodeA, "get", "", "pods", "log", "default", "p"), false, nil},
		{"node secrets", res(nodeA, "get", "", "secrets", "", "default", "s"), false, []string{`User "system:node:a" cannot get resource "secrets" "s"`}},
		{"node leases in other group", res(nodeA, "list", "other.io", "leases", "", "", ""), false, nil},

		// node's own Node
		{"node creates itself", res(nodeA, "create", "", "nodes", "", "", "a"), true, nil},
		{"node updates itself", res(nodeA, "update", "", "nodes", "", "", "a"), true, nil},
		{"node patches itself", res(nodeA, "patch", "", "nodes", "", "", "a"), true, nil},
		{"node deletes itself", res(nodeA, "delete", "", "nodes", "", "", "a"), true, nil},
		{"node patches its status", res(nodeA, "patch", "", "nodes", "status", "", "a"), true, nil},
		{"node updates its status", res(nodeA, "update", "", "nodes", "status", "", "a"), true, nil},
		{"node deletes other node", res(nodeA, "delete", "", "nodes", "", "", "b"), false,
			[]string{`User "system:node:a" cannot delete resource "nodes" "b": a node may only change its own Node`}},
		{"node patches other status", res(nodeA, "patch", "", "nodes", "status", "", "b"), false, []string{`resource "nodes/status" "b"`, "its own Node"}},
		{"node creates unnamed node", res(nodeA, "create", "", "nodes", "", "", ""), false, []string{"its own Node"}},
		{"node deletecollection nodes", res(nodeA, "deletecollection", "", "nodes", "", "", ""), false, nil},
		{"node deletes its status", res(nodeA, "delete", "", "nodes", "status", "", "a"), false, nil},
		{"node proxies to itself", res(nodeA, "get", "", "nodes", "proxy", "", "a"), false, nil},

		// node's own Lease
		{"node creates its lease", res(nodeA, "create", coord, "leases", "", NodeLeaseNamespace, "a"), true, nil},
		{"node updates its lease", res(nodeA, "update", coord, "leases", "", NodeLeaseNamespace, "a"), true, nil},
		{"node patches its lease", res(nodeA, "patch", coord, "leases", "", NodeLeaseNamespace, "a"), true, nil},
		{"node gets its lease", res(nodeA, "get", coord, "leases", "", NodeLeaseNamespace, "a"), true, nil},
		{"node updates other lease", res(nodeA, "update", coord, "leases", "", NodeLeaseNamespace, "b"), false, []string{"its own Lease"}},
		{"node lease other ns", res(nodeA, "create", coord, "leases", "", "default", "a"), false,
			[]string{`in API group "coordination.k8s.io" in namespace "default"`, "kube-node-lease"}},
		{"node deletes its lease", res(nodeA, "delete", coord, "leases", "", NodeLeaseNamespace, "a"), false, nil},

		// events
		{"node creates event", res(nodeA, "create", "", "events", "", "default", ""), true, nil},
		{"node patches event", res(nodeA, "patch", "", "events", "", "kube-system", "e"), true, nil},
		{"node updates events.k8s.io", res(nodeA, "update", "events.k8s.io", "events", "", "default", "e"), true, nil},
		{"node deletes event", res(nodeA, "delete", "", "events", "", "default", "e"), false, nil},

		// pods: verb level only
		{"node creates pod", res(nodeA, "create", "", "pods", "", "default", "p-a"), true, nil},
		{"node deletes pod", res(nodeA, "delete", "", "pods", "", "default", "p-a"), true, nil},
		{"node patches pod status", res(nodeA, "patch", "", "pods", "status", "default", "p-a"), true, nil},
		{"node updates pod status", res(nodeA, "update", "", "pods", "status", "default", "p-a"), true, nil},
		{"node deletecollection pods", res(nodeA, "deletecollection", "", "pods", "", "default", ""), false, nil},
		{"node evicts pod", res(nodeA, "create", "", "pods", "eviction", "default", "p"), false, nil},
		{"node exec", res(nodeA, "create", "", "pods", "exec", "default", "p"), false, []string{"never exec"}},
		{"node exec own pod", res(nodeA, "create", "", "pods", "exec", "default", "p-a"), false, []string{"not even its own"}},
		{"node attach", res(nodeA, "create", "", "pods", "attach", "default", "p-a"), false, []string{"never exec"}},
		{"node portforward", res(nodeA, "create", "", "pods", "portforward", "default", "p-a"), false, []string{"never exec"}},
		{"node get exec", res(nodeA, "get", "", "pods", "exec", "default", "p-a"), false, nil},

		// streaming into pods
		{"admin exec", res(admin, "create", "", "pods", "exec", "kube-system", "etcd-a"), true, nil},
		{"admin attach", res(admin, "create", "", "pods", "attach", "default", "p"), true, nil},
		{"admin portforward", res(admin, "create", "", "pods", "portforward", "default", "p"), true, nil},
		{"alice exec", res(alice, "create", "", "pods", "exec", "default", "p"), false,
			[]string{`User "alice" cannot create resource "pods/exec" "p" in namespace "default"`, "system:masters"}},
		{"alice portforward", res(alice, "create", "", "pods", "portforward", "default", "p"), false, []string{"forward ports"}},
		{"anon exec", res(anon, "create", "", "pods", "exec", "default", "p"), false, []string{"anonymous"}},
		{"fake node exec", res(fakeNode, "create", "", "pods", "exec", "default", "p-a"), false, []string{"system:masters"}},

		// namespaces
		{"node creates namespace", res(nodeA, "create", "", "namespaces", "", "", "x"), false, nil},

		// reviews for the node's HTTPS API
		{"node tokenreview", res(nodeA, "create", "authentication.k8s.io", "tokenreviews", "", "", ""), true, nil},
		{"node sar", res(nodeA, "create", "authorization.k8s.io", "subjectaccessreviews", "", "", ""), true, nil},
		{"node ssar", res(nodeA, "create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", ""), true, nil},

		// node non-resource
		{"node discovery", path(nodeA, "get", "/apis"), true, nil},
		{"node post path", path(nodeA, "post", "/apis"), false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Authorize(tc.attrs)
			if d.Allowed != tc.allow {
				t.Fatalf("Allowed = %v, want %v (reason %q)", d.Allowed, tc.allow, d.Reason)
			}
			if !d.Allowed && d.Reason == "" {
				t.Error("denied without a reason")
			}
			for _, want := range tc.reason {
				if !strings.Contains(d.Reason, want) {
					t.Errorf("reason %q lacks %q", d.Reason, want)
				}
			}
		})
	}
}

func TestAdmitNodePod(t *testing.T) {
	nodeA := User{Name: "system:node:a", Groups: []string{GroupNodes, GroupAuthenticated}}
	admin := User{Name: AdminUser, Groups: []string{GroupMasters, GroupAuthenticated}}
	tests := []struct {
		u        User
		nodeName string
		allow    bool
		reason   string
	}{
		{nodeA, "a", true, ""},
		{nodeA, "b", false, `User "system:node:a" cannot delete pod "p" in namespace "default": the pod is bound to node "b"`},
		{nodeA, "", false, "is not bound to any node"},
		{admin, "b", true, ""},
	}
	for _, tc := range tests {
		d := AdmitNodePod(tc.u, "delete", "default", "p", tc.nodeName)
		if d.Allowed != tc.allow || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("AdmitNodePod(%s, %q) = %+v", tc.u.Name, tc.nodeName, d)
		}
	}
}

func TestAuthorizeKubeletStream(t *testing.T) {
	apiserver := User{Name: "kube-apiserver-kubelet-client", Groups: []string{GroupMasters}}
	ballastServer := User{Name: "system:kube-apiserver", Groups: []string{GroupMasters}}
	alice := User{Name: "alice"}
	for _, tc := range []struct {
		name   string
		u      User
		cert   bool
		want   KubeletStreamAction
		reason string
	}{
		{"kube-apiserver's client certificate", apiserver, true, KubeletStreamAllow, ""},
		{"ballast server's client certificate", ballastServer, true, KubeletStreamAllow, ""},
		{"another certificate from the trusted CA", alice, true, KubeletStreamAllow, ""},
		{"this node's certificate", User{Name: "system:node:n1", Groups: []string{GroupNodes}}, true, KubeletStreamDeny, "never exec"},
		{"another node's certificate", User{Name: "system:node:n2", Groups: []string{GroupNodes}}, true, KubeletStreamDeny, `User "system:node:n2" cannot create resource "nodes/proxy" "n1"`},
		{"a node's name without the group", User{Name: "system:node:n2"}, true, KubeletStreamDeny, "never exec"},
		{"the nodes group under another name", User{Name: "x", Groups: []string{GroupNodes}}, false, KubeletStreamDeny, "never exec"},
		{"another node's token", User{Name: "system:node:n2", Groups: []string{GroupNodes}}, false, KubeletStreamDeny, "never exec"},
		{"a token user", alice, false, KubeletStreamAskAPIServer, ""},
		{"an admin's token", User{Name: "admin", Groups: []string{GroupMasters}}, false, KubeletStreamAskAPIServer, ""},
	} {
		got, d := AuthorizeKubeletStream(tc.u, tc.cert, "n1")
		if got != tc.want || !strings.Contains(d.Reason, tc.reason) || (got == KubeletStreamDeny && d.Reason == "") {
			t.Errorf("%s: %v %+v, want %v with %q", tc.name, got, d, tc.want, tc.reason)
		}
	}
	for p, want := range map[string]bool{
		"/exec/default/p/c": true, "/attach/default/p/c": true, "/portForward/default/p": true, "/run/default/p/c": true,
		"/exec": true, "/executor": false, "/pods": false, "/containerLogs/default/p/c": false, "/healthz": false,
	} {
		if IsKubeletStreamPath(p) != want {
			t.Errorf("IsKubeletStreamPath(%q) = %v", p, !want)
		}
	}
	if a := KubeletStreamAttributes(alice, "n1"); a.Verb != "create" || a.Resource != "nodes" || a.Subresource != "proxy" || a.Name != "n1" {
		t.Errorf("attributes %+v", a)
	}
}

// A node lists and watches only its own mirror Secrets (by label), and gets
// none by name; ConfigMaps it may read; it writes both (admission checks
// the objects).
func TestNodeSecrets(t *testing.T) {
	node := User{Name: "system:node:n1", Groups: []string{"system:nodes", GroupAuthenticated}}
	for _, tt := range []struct {
		verb, resource, selector string
		allowed                  bool
	}{
		{"list", "secrets", "ballast.dev/node=n1", true},
		{"watch", "secrets", "ballast.dev/node in (n1)", true},
		{"watch", "secrets", "app=x,ballast.dev/node==n1", true},
		{"list", "secrets", "", false},
		{"list", "secrets", "ballast.dev/node=n2", false},
		{"list", "secrets", "ballast.dev/node in (n1,n2)", false},
		{"list", "secrets", "ballast.dev/node!=n2", false},
		{"list", "secrets", "ballast.dev/node", false},
		{"get", "secrets", "", false},
		{"create", "secrets", "", true},
		{"delete", "secrets", "", true},
		{"list", "configmaps", "", true},
		{"get", "configmaps", "", true},
		{"update", "configmaps", "", true},
	} {
		d := Authorize(Attributes{User: node, Verb: tt.verb, Resource: tt.resource, Namespace: "default", LabelSelector: tt.selector})
		if d.Allowed != tt.allowed {
			t.Errorf("%s %s %q: allowed=%v (%s), want %v", tt.verb, tt.resource, tt.selector, d.Allowed, d.Reason, tt.allowed)
		}
	}
	alice := User{Name: "alice", Groups: []string{GroupAuthenticated}}
	if Authorize(Attributes{User: alice, Verb: "list", Resource: "secrets", Namespace: "default", LabelSelector: "ballast.dev/node=n1"}).Allowed {
		t.Errorf("a user that is no node lists secrets by the node label")
	}
}
