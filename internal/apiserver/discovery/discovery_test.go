package discovery

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	"github.com/ballast-dev/ballast/internal/apiserver/resource"
)

// kubectlAccept is what kubectl 1.32 sends for /api and /apis.
const kubectlAccept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"

func TestNegotiate(t *testing.T) {
	for accept, want := range map[string]Negotiated{
		"":                                      Legacy,
		"application/json":                      Legacy,
		"application/json, */*":                 Legacy,
		kubectlAccept:                           AggregatedV2Form,
		AggregatedV2Beta1 + ",application/json": AggregatedV2Beta1Form,
		"application/json;as=Table;v=v1;g=meta.k8s.io": NotAcceptable,
		"application/vnd.kubernetes.protobuf":          NotAcceptable,
		"*/*":                                          Legacy,
	} {
		if got := Negotiate(accept); got != want {
			t.Errorf("Negotiate(%q) = %v, want %v", accept, got, want)
		}
	}
}

func get(t *testing.T, h http.Handler, path, accept string, into any) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if into != nil {
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), into); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, rec.Body)
		}
	}
	return rec
}

func TestAggregated(t *testing.T) {
	h := Handler(resource.Served())
	var core apidiscoveryv2.APIGroupDiscoveryList
	rec := get(t, h, "/api", kubectlAccept, &core)
	if ct := rec.Header().Get("Content-Type"); ct != AggregatedV2 {
		t.Errorf("Content-Type = %q, want %q", ct, AggregatedV2)
	}
	if core.APIVersion != "apidiscovery.k8s.io/v2" || core.Kind != "APIGroupDiscoveryList" {
		t.Errorf("type = %s %s", core.APIVersion, core.Kind)
	}
	if len(core.Items) != 1 || core.Items[0].Name != "" || len(core.Items[0].Versions) != 1 {
		t.Fatalf("core discovery: %+v", core.Items)
	}
	v := core.Items[0].Versions[0]
	if v.Version != "v1" || v.Freshness != apidiscoveryv2.DiscoveryFreshnessCurrent {
		t.Errorf("version %+v", v)
	}
	var names []string
	for _, r := range v.Resources {
		names = append(names, r.Resource)
		if r.Resource != "pods" {
			continue
		}
		if r.Scope != apidiscoveryv2.ScopeNamespace || r.SingularResource != "pod" ||
			!slices.Equal(r.ShortNames, []string{"po"}) || !slices.Equal(r.Categories, []string{"all"}) ||
			r.ResponseKind == nil || r.ResponseKind.Kind != "Pod" {
			t.Errorf("pods: %+v", r)
		}
		if len(r.Subresources) != 7 || r.Subresources[0].Subresource != "status" || r.Subresources[1].Subresource != "log" ||
			!slices.Equal(r.Subresources[1].Verbs, []string{"get"}) ||
			r.Subresources[5].Subresource != "ephemeralcontainers" || !slices.Equal(r.Subresources[5].Verbs, []string{"get", "patch", "update"}) ||
			r.Subresources[6].Subresource != "proxy" {
			t.Errorf("pods subresources: %+v", r.Subresources)
		}
		// The streams, as kube-apiserver lists them.
		for i, want := range []string{"exec", "attach", "portforward"} {
			sr := r.Subresources[2+i]
			if sr.Subresource != want || !slices.Equal(sr.Verbs, []string{"create", "get"}) || sr.ResponseKind == nil ||
				sr.ResponseKind.Kind != resource.SubresourceKind("Pod", want) {
				t.Errorf("pods/%s: %+v", want, sr)
			}
		}
	}
	if !slices.Equal(names, []string{"namespaces", "nodes", "pods", "configmaps", "secrets", "events", "services"}) {
		t.Errorf("core resources %v", names)
	}

	var groups apidiscoveryv2.APIGroupDiscoveryList
	get(t, h, "/apis", kubectlAccept, &groups)
	var gnames []string
	for _, g := range groups.Items {
		gnames = append(gnames, g.Name)
	}
	if !slices.Equal(gnames, []string{"events.k8s.io", "coordination.k8s.io", "authorization.k8s.io", "authentication.k8s.io", "node.k8s.io", "storage.k8s.io"}) {
		t.Errorf("groups %v", gnames)
	}
	ssar := groups.Items[2].Versions[0].Resources[0]
	if ssar.Resource != "selfsubjectaccessreviews" || !slices.Equal(ssar.Verbs, []string{"create"}) || ssar.Scope != apidiscoveryv2.ScopeCluster {
		t.Errorf("ssar %+v", ssar)
	}

	rec = get(t, h, "/apis", AggregatedV2Beta1, nil)
	if rec.Header().Get("Content-Type") != AggregatedV2Beta1 {
		t.Errorf("v2beta1 Content-Type %q", rec.Header().Get("Content-Type"))
	}
	rec = get(t, h, "/apis", "application/vnd.kubernetes.protobuf", nil)
	if rec.Code != http.StatusNotAcceptable {
		t.Errorf("protobuf-only Accept: %d", rec.Code)
	}
}

func TestLegacy(t *testing.T) {
	h := Handler(resource.Served())
	var versions metav1.APIVersions
	get(t, h, "/api", "application/json", &versions)
	if versions.Kind != "APIVersions" || !slices.Equal(versions.Versions, []string{"v1"}) {
		t.Errorf("/api: %+v", versions)
	}
	var groups metav1.APIGroupList
	get(t, h, "/apis", "", &groups)
	if len(groups.Groups) != 6 || groups.Groups[1].Name != "coordination.k8s.io" ||
		groups.Groups[1].PreferredVersion.GroupVersion != "coordination.k8s.io/v1" {
		t.Errorf("/apis: %+v", groups)
	}
	var group metav1.APIGroup
	get(t, h, "/apis/events.k8s.io", "", &group)
	if group.Kind != "APIGroup" || group.PreferredVersion.Version != "v1" {
		t.Errorf("/apis/events.k8s.io: %+v", group)
	}
	var list metav1.APIResourceList
	get(t, h, "/api/v1", "", &list)
	byName := map[string]metav1.APIResource{}
	for _, r := range list.APIResources {
		byName[r.Name] = r
	}
	if r := byName["pods/status"]; r.Kind != "Pod" || !slices.Equal(r.Verbs, []string{"get", "patch", "update"}) || !r.Namespaced {
		t.Errorf("pods/status: %+v", r)
	}
	if r := byName["pods/exec"]; r.Kind != "PodExecOptions" || !slices.Equal(r.Verbs, []string{"create", "get"}) {
		t.Errorf("pods/exec: %+v", r)
	}
	if r := byName["pods/log"]; r.Kind != "Pod" || !slices.Equal(r.Verbs, []string{"get"}) {
		t.Errorf("pods/log: %+v", r)
	}
	if r := byName["nodes/status"]; r.Namespaced {
		t.Errorf("nodes/status: %+v", r)
	}
	if r := byName["namespaces"]; r.Namespaced || slices.Contains(r.Verbs, "deletecollection") || r.StorageVersionHash == "" {
		t.Errorf("namespaces: %+v", r)
	}
	get(t, h, "/apis/coordination.k8s.io/v1", "", &list)
	if list.GroupVersion != "coordination.k8s.io/v1" || len(list.APIResources) != 1 || list.APIResources[0].Name != "leases" {
		t.Errorf("leases list: %+v", list)
	}
	for _, p := range []string{"/apis/apps", "/apis/apps/v1", "/api/v2", "/apis/events.k8s.io/v1beta1"} {
		if rec := get(t, h, p, "", nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, rec.Code)
		}
	}
	if got, want := len(Paths(resource.Served())), 3+1+6*2; got != want {
		t.Errorf("Paths: %d paths, want %d: %v", got, want, Paths(resource.Served()))
	}
}

func TestVersionAndETag(t *testing.T) {
	h := Handler(resource.Served())
	var v version.Info
	rec := get(t, h, "/version", "", &v)
	if v.Major != "1" || v.Minor != "32" || v.GitVersion != GitVersion {
		t.Errorf("version %+v", v)
	}
	req := httptest.NewRequest(http.MethodGet, "/version", nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec2 := httptest.NewRecorder()
	h.ServeHTTP(rec2, req)
	if rec2.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", rec2.Code)
	}
	req = httptest.NewRequest(http.MethodPost, "/api", nil)
	rec2 = httptest.NewRecorder()
	h.ServeHTTP(rec2, req)
	if rec2.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api: %d", rec2.Code)
	}
}
