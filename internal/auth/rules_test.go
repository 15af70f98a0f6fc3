package auth

import (
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
)

func ruleAllows(rules []authorizationv1.ResourceRule, a Attributes) bool {
	res := resourceString(a)
	for _, r := range rules {
		if (slices.Contains(r.Verbs, "*") || slices.Contains(r.Verbs, a.Verb)) &&
			(slices.Contains(r.APIGroups, "*") || slices.Contains(r.APIGroups, a.Group)) &&
			(slices.Contains(r.Resources, "*") || slices.Contains(r.Resources, res)) &&
			(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, a.Name)) {
			return true
		}
	}
	return false
}

func nonResourceAllows(rules []authorizationv1.NonResourceRule, verb, path string) bool {
	for _, r := range rules {
		if !slices.Contains(r.Verbs, "*") && !slices.Contains(r.Verbs, verb) {
			continue
		}
		for _, u := range r.NonResourceURLs {
			if u == "*" || u == path || (strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimSuffix(u, "*"))) {
				return true
			}
		}
	}
	return false
}

// TestRulesAgreeWithAuthorize checks Rules against Authorize for every
// user kind, verb, resource, subresource, name, namespace and path, so the
// rules `kubectl auth can-i --list` shows are the ones enforced.
func TestRulesAgreeWithAuthorize(t *testing.T) {
	users := []User{
		{Name: "ballast-admin", Groups: []string{GroupMasters, GroupAuthenticated}},
		{Name: "system:node:n1", Groups: []string{"system:nodes", GroupAuthenticated}},
		{Name: "alice", Groups: []string{GroupAuthenticated}},
		Anonymous,
	}
	type res struct {
		group, resource string
		namespaced      bool
	}
	resources := []res{
		{"", "pods", true}, {"", "nodes", false}, {"", "namespaces", false}, {"", "events", true}, {"", "secrets", true}, {"", "configmaps", true},
		{"events.k8s.io", "events", true}, {"coordination.k8s.io", "leases", true},
		{"authorization.k8s.io", "selfsubjectaccessreviews", false}, {"authorization.k8s.io", "selfsubjectrulesreviews", false},
		{"authorization.k8s.io", "subjectaccessreviews", false}, {"authentication.k8s.io", "tokenreviews", false},
		{"authentication.k8s.io", "selfsubjectreviews", false}, {"metrics.k8s.io", "nodes", false}, {"metrics.k8s.io", "pods", true},
		{"apps", "deployments", true}, {"", "services", true}, {"node.k8s.io", "runtimeclasses", false},
		{"storage.k8s.io", "csidrivers", false}, {"storage.k8s.io", "csinodes", false},
	}
	subs := []string{"", "status", "log", "proxy", "exec", "ephemeralcontainers"}
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	names := []string{"", "n1", "n2"}
	namespaces := []string{"default", NodeLeaseNamespace}
	checked := 0
	for _, u := range users {
		for _, ns := range namespaces {
			rules, nonRes := Rules(u, ns)
			for _, r := range resources {
				objNS := ""
				if r.namespaced {
					objNS = ns
				}
				for _, sub := range subs {
					for _, v := range verbs {
						for _, name := range names {
							a := Attributes{User: u, Verb: v, Group: r.group, Resource: r.resource, Subresource: sub, Namespace: objNS, Name: name}
							if got, want := ruleAllows(rules, a), Authorize(a).Allowed; got != want {
								t.Errorf("%s in %q: %s %s: rules say %v, Authorize says %v", u.Name, ns, v, resourceString(a)+" "+r.group+" "+name, got, want)
							}
							checked++
						}
					}
				}
			}
			for _, p := range []string{"/healthz", "/healthz/ping", "/livez", "/readyz", "/version", "/api", "/api/v1", "/apis", "/apis/apps/v1", "/openapi/v2", "/metrics", "/logs", "/"} {
				for _, v := range []string{"get", "head", "post", "put"} {
					a := Attributes{User: u, Verb: v, Path: p}
					if got, want := nonResourceAllows(nonRes, v, p), Authorize(a).Allowed; got != want {
						t.Errorf("%s: %s %s: rules say %v, Authorize says %v", u.Name, v, p, got, want)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d decisions agree", checked)
}
