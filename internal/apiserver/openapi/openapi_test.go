package openapi

import (
	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	"mime"

	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	served "github.com/ballast-dev/ballast/internal/apiserver/resource"
)

type localType struct{}

func TestModelName(t *testing.T) {
	for typ, want := range map[reflect.Type]string{
		reflect.TypeFor[corev1.Pod]():         "io.k8s.api.core.v1.Pod",
		reflect.TypeFor[*metav1.ObjectMeta](): "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
		reflect.TypeFor[resource.Quantity]():  "io.k8s.apimachinery.pkg.api.resource.Quantity",
		reflect.TypeFor[intstr.IntOrString](): "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
		reflect.TypeFor[localType]():          "com.github.ballast-dev.ballast.internal.apiserver.openapi.localType",
	} {
		if got := ModelName(typ); got != want {
			t.Errorf("ModelName(%v) = %q, want %q", typ, got, want)
		}
	}
}

// doc fetches one document from the handler as generic JSON.
func doc(t *testing.T, h http.Handler, url string) map[string]any {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, rec.Code, rec.Body)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at walks a JSON value along keys.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func TestV3(t *testing.T) {
	s, err := New(served.Served())
	if err != nil {
		t.Fatal(err)
	}
	index := doc(t, s, "/openapi/v3")
	paths := at(index, "paths").(map[string]any)
	var keys []string
	for k := range paths {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"api/v1", "apis/authentication.k8s.io/v1", "apis/authorization.k8s.io/v1", "apis/coordination.k8s.io/v1", "apis/events.k8s.io/v1", "apis/node.k8s.io/v1", "apis/storage.k8s.io/v1"}
	if !slices.Equal(keys, want) {
		t.Fatalf("index paths %v, want %v", keys, want)
	}
	url := at(paths, "api/v1", "serverRelativeURL").(string)
	_, hash, _ := s.V3("api/v1")
	if url != "/openapi/v3/api/v1?hash="+hash {
		t.Errorf("serverRelativeURL %q", url)
	}

	core := doc(t, s, url)
	schemas := at(core, "components", "schemas").(map[string]any)
	pod := schemas["io.k8s.api.core.v1.Pod"]
	if gvk := at(pod, "x-kubernetes-group-version-kind"); !reflect.DeepEqual(gvk, []any{map[string]any{"group": "", "version": "v1", "kind": "Pod"}}) {
		t.Errorf("Pod GVK %v", gvk)
	}
	if d, _ := at(pod, "description").(string); !strings.HasPrefix(d, "Pod is a collection of containers") {
		t.Errorf("Pod description %q", d)
	}
	spec := at(pod, "properties", "spec")
	if ref := at(spec, "allOf").([]any)[0]; at(ref, "$ref") != "#/components/schemas/io.k8s.api.core.v1.PodSpec" {
		t.Errorf("Pod.spec %v", spec)
	}
	if req := at(schemas["io.k8s.api.core.v1.PodSpec"], "required"); !reflect.DeepEqual(req, []any{"containers"}) {
		t.Errorf("PodSpec required %v", req)
	}
	if req := at(schemas["io.k8s.api.core.v1.Container"], "required"); !reflect.DeepEqual(req, []any{"name"}) {
		t.Errorf("Container required %v", req)
	}
	if c := at(schemas["io.k8s.api.core.v1.PodSpec"], "properties", "containers"); at(c, "x-kubernetes-patch-merge-key") != "name" ||
		at(c, "x-kubernetes-patch-strategy") != "merge" || at(c, "type") != "array" {
		t.Errorf("PodSpec.containers %v", c)
	}
	if tm := schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]; at(tm, "type") != "string" || at(tm, "format") != "date-time" {
		t.Errorf("Time %v", tm)
	}
	if is := schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]; at(is, "x-kubernetes-int-or-string") != true || at(is, "format") != "int-or-string" {
		t.Errorf("IntOrString %v", is)
	}
	if q := schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]; q == nil || at(q, "oneOf") == nil {
		t.Errorf("Quantity %v", q)
	}
	if gvk := at(schemas["io.k8s.api.core.v1.PodList"], "x-kubernetes-group-version-kind"); gvk == nil {
		t.Errorf("PodList has no GVK")
	}
	if schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"] == nil || schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Status"] == nil {
		t.Errorf("meta types missing")
	}
	if schemas["io.k8s.api.coordination.v1.Lease"] != nil {
		t.Errorf("api/v1 holds Lease")
	}

	// Paths kubectl relies on: the PATCH operation carries the GVK and the
	// fieldValidation parameter (its server-side validation probe).
	patch := at(core, "paths", "/api/v1/namespaces/{namespace}/pods/{name}", "patch")
	if at(patch, "x-kubernetes-action") != "patch" || at(patch, "operationId") != "patchCoreV1NamespacedPod" {
		t.Errorf("pod patch %v", patch)
	}
	var names []string
	for _, p := range at(patch, "parameters").([]any) {
		names = append(names, at(p, "name").(string))
	}
	if !slices.Contains(names, "fieldValidation") || !slices.Contains(names, "dryRun") {
		t.Errorf("pod patch parameters %v", names)
	}
	for _, p := range []string{
		"/api/v1/namespaces/{namespace}/pods", "/api/v1/pods", "/api/v1/namespaces/{namespace}/pods/{name}/status",
		"/api/v1/namespaces/{namespace}/pods/{name}/log", "/api/v1/nodes/{name}/status", "/api/v1/namespaces/{name}",
	} {
		if at(core, "paths", p) == nil {
			t.Errorf("path %s missing", p)
		}
	}
	if at(core, "paths", "/api/v1/namespaces") == nil || at(core, "paths", "/api/v1/namespaces", "delete") != nil {
		t.Errorf("namespaces collection: %v", at(core, "paths", "/api/v1/namespaces"))
	}
	if id := at(core, "paths", "/api/v1/namespaces/{namespace}/pods/{name}/log", "get", "operationId"); id != "readCoreV1NamespacedPodLog" {
		t.Errorf("log operationId %v", id)
	}

	lease := doc(t, s, "/openapi/v3/apis/coordination.k8s.io/v1")
	if at(lease, "components", "schemas", "io.k8s.api.coordination.v1.Lease", "x-kubernetes-group-version-kind") == nil {
		t.Errorf("Lease GVK missing")
	}
	ssar := doc(t, s, "/openapi/v3/apis/authorization.k8s.io/v1")
	if p := at(ssar, "paths", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"); at(p, "post") == nil || at(p, "get") != nil {
		t.Errorf("ssar path %v", p)
	}
}

func TestServing(t *testing.T) {
	h, err := Handler(served.Served())
	if err != nil {
		t.Fatal(err)
	}
	s := h.(*Spec)
	_, hash, _ := s.V3("api/v1")
	serve := func(url string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := serve("/openapi/v3/api/v1?hash=" + hash)
	if rec.Code != 200 || rec.Header().Get("Cache-Control") != "public, immutable" || rec.Header().Get("ETag") != `"`+hash+`"` {
		t.Errorf("hashed GET: %d %v", rec.Code, rec.Header())
	}
	rec = serve("/openapi/v3/api/v1?hash=OLD")
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/openapi/v3/api/v1?hash="+hash {
		t.Errorf("stale hash: %d %v", rec.Code, rec.Header())
	}
	if rec = serve("/openapi/v3/api/v1", "If-None-Match", `"`+hash+`"`); rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", rec.Code)
	}
	if rec = serve("/openapi/v3/apis/apps/v1"); rec.Code != http.StatusNotFound {
		t.Errorf("unknown gv: %d", rec.Code)
	}
	// What client-go's discovery (kubectl, helm) asks for: gnostic's protobuf.
	rec = serve("/openapi/v2", "Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != MediaTypeV2Protobuf {
		t.Fatalf("v2 protobuf: %d %v", rec.Code, rec.Header())
	}
	var pb openapi_v2.Document
	if err := proto.Unmarshal(rec.Body.Bytes(), &pb); err != nil {
		t.Fatalf("v2 protobuf does not decode: %v", err)
	}
	found := false
	for _, d := range pb.GetDefinitions().GetAdditionalProperties() {
		if d.GetName() == "io.k8s.api.core.v1.Pod" {
			found = len(d.GetValue().GetProperties().GetAdditionalProperties()) > 0
		}
	}
	if pb.GetSwagger() != "2.0" || !found {
		t.Errorf("v2 protobuf: swagger %q, Pod definition with properties found: %v", pb.GetSwagger(), found)
	}
	if rec = serve("/openapi/v3", "Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"); rec.Code != http.StatusNotAcceptable {
		t.Errorf("v3 asked as v2 protobuf: %d", rec.Code)
	}
	for accept, want := range map[string]string{
		MediaTypeV2Protobuf: MediaTypeV2Protobuf,
		"application/json, " + MediaTypeV2ProtobufDeprecated:        "application/json",
		MediaTypeV2ProtobufDeprecated + ", application/json":        MediaTypeV2Protobuf,
		MediaTypeV2ProtobufDeprecated + "; q=0.5, application/json": "application/json",
		"": "application/json",
	} {
		if got := serve("/openapi/v2", "Accept", accept).Header().Get("Content-Type"); got != want {
			t.Errorf("Accept %q: Content-Type %q, want %q", accept, got, want)
		}
		if _, _, err := mime.ParseMediaType(want); err != nil {
			t.Errorf("answered media type %q does not parse: %v", want, err)
		}
	}
	v2 := doc(t, h, "/openapi/v2")
	if v2["swagger"] != "2.0" {
		t.Errorf("v2 swagger %v", v2["swagger"])
	}
	defs := at(v2, "definitions").(map[string]any)
	for _, name := range []string{"io.k8s.api.core.v1.Pod", "io.k8s.api.events.v1.Event", "io.k8s.api.core.v1.Event", "io.k8s.api.coordination.v1.Lease"} {
		if at(defs, name, "x-kubernetes-group-version-kind") == nil {
			t.Errorf("v2 %s lacks GVK", name)
		}
	}
	if ref := at(defs, "io.k8s.api.core.v1.Pod", "properties", "metadata", "$ref"); ref != "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" {
		t.Errorf("v2 Pod.metadata ref %v", ref)
	}
	if is := at(defs, "io.k8s.apimachinery.pkg.util.intstr.IntOrString"); at(is, "type") != "string" || at(is, "format") != "int-or-string" {
		t.Errorf("v2 IntOrString %v", is)
	}
	if body := at(v2, "paths", "/api/v1/namespaces/{namespace}/pods", "post", "parameters"); !strings.Contains(mustJSON(body), `"in":"body"`) {
		t.Errorf("v2 create pod parameters %v", body)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
