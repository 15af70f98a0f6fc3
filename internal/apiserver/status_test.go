package apiserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
)

// TestErrorStatusShape walks every error path of the REST layer and checks
// that each answer is a Status with every field kube-apiserver writes
// (kind, apiVersion, metadata, status, message, reason, details, code), that
// code matches the HTTP status, and that client mistakes are 4xx.
func TestErrorStatusShape(t *testing.T) {
	e := newTestEnv(t)
	e.addNode("n1")
	e.addNode("n2")
	p := e.addMirror("web", "n1")
	pods := "/api/v1/namespaces/default/pods"
	pod := pods + "/" + p.Name
	jsonBody := func(o any) []byte { b, _ := json.Marshal(o); return b }
	stale := p.DeepCopy()
	stale.ResourceVersion = "1"
	stale.Labels = map[string]string{"x": "y"}
	client := &http.Client{Timeout: 20 * time.Second}
	hugeEvent := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "huge"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: p.Name, Namespace: "default"},
		Message: strings.Repeat("x", 2<<20)}

	for _, tc := range []struct {
		name        string
		method      string
		path        string
		token       string
		contentType string
		body        []byte
		code        int
		reason      metav1.StatusReason
		detailsName string // expected details.name, if any
	}{
		// Routing.
		{"unknown resource", "GET", "/api/v1/foos", "admin", "", nil, 404, metav1.StatusReasonNotFound, ""},
		{"unknown group", "GET", "/apis/apps/v1/deployments", "admin", "", nil, 404, metav1.StatusReasonNotFound, ""},
		{"unknown subresource", "GET", pod + "/foo", "admin", "", nil, 404, metav1.StatusReasonNotFound, ""},
		{"namespaced path for a cluster resource", "GET", "/api/v1/namespaces/default/nodes/n1", "admin", "", nil, 404, metav1.StatusReasonNotFound, ""},
		{"empty path segment", "GET", pods + "//log", "admin", "", nil, 404, metav1.StatusReasonNotFound, ""},
		{"too many segments", "GET", pod + "/log/x/y", "admin", "", nil, 404, metav1.StatusReasonNotFound, ""},
		{"unknown non-resource path", "GET", "/nothing-here", "admin", "", nil, 404, metav1.StatusReasonNotFound, ""},
		{"watch path with POST", "POST", "/api/v1/watch/namespaces/default/pods", "admin", "", []byte("{}"), 404, metav1.StatusReasonNotFound, ""},
		// Authentication and authorization.
		{"bad token", "GET", pods, "bad", "", nil, 401, metav1.StatusReasonUnauthorized, ""},
		{"node deletes another node", "DELETE", "/api/v1/nodes/n2", "node:n1", "", nil, 403, metav1.StatusReasonForbidden, "n2"},
		{"node reads a subresource it may not", "GET", pod + "/ephemeralcontainers", "node:n1", "", nil, 403, metav1.StatusReasonForbidden, p.Name},
		{"node lists a path it may not", "GET", "/metrics-nope", "node:n1", "", nil, 403, metav1.StatusReasonForbidden, ""},
		// Verbs.
		{"POST to an object", "POST", pod, "admin", "", []byte("{}"), 405, metav1.StatusReasonMethodNotAllowed, ""},
		{"DELETE on pods/log", "DELETE", pod + "/log", "admin", "", nil, 405, metav1.StatusReasonMethodNotAllowed, ""},
		{"POST on a review's object", "GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "admin", "", nil, 405, metav1.StatusReasonMethodNotAllowed, ""},
		// Reads.
		{"get missing", "GET", pods + "/nope", "admin", "", nil, 404, metav1.StatusReasonNotFound, "nope"},
		{"bad label selector", "GET", pods + "?labelSelector=a%20in", "admin", "", nil, 400, metav1.StatusReasonBadRequest, ""},
		{"bad field selector", "GET", pods + "?fieldSelector=x", "admin", "", nil, 400, metav1.StatusReasonBadRequest, ""},
		{"unknown field selector", "GET", pods + "?fieldSelector=spec.foo=1", "admin", "", nil, 400, metav1.StatusReasonBadRequest, ""},
		{"bad resourceVersion", "GET", pods + "?resourceVersion=abc", "admin", "", nil, 400, metav1.StatusReasonBadRequest, ""},
		{"bad resourceVersion on watch", "GET", pods + "?watch=true&resourceVersion=abc", "admin", "", nil, 400, metav1.StatusReasonBadRequest, ""},
		// Writes: bodies.
		{"create: bad JSON", "POST", "/api/v1/namespaces", "admin", "", []byte("{"), 400, metav1.StatusReasonBadRequest, ""},
		{"create: text/plain", "POST", "/api/v1/namespaces", "admin", "text/plain", []byte(`{"metadata":{"name":"x"}}`), 415, metav1.StatusReasonUnsupportedMediaType, ""},
		{"create: XML", "POST", "/api/v1/namespaces", "admin", "application/xml", []byte(`<ns/>`), 415, metav1.StatusReasonUnsupportedMediaType, ""},
		{"create: unparsable Content-Type", "POST", "/api/v1/namespaces", "admin", "a/b; =", []byte(`{}`), 415, metav1.StatusReasonUnsupportedMediaType, ""},
		{"create: bad YAML", "POST", "/api/v1/namespaces", "admin", "application/yaml", []byte("a: [b"), 400, metav1.StatusReasonBadRequest, ""},
		{"create: bad protobuf", "POST", "/api/v1/namespaces", "admin", request.ProtobufType, []byte("nope"), 400, metav1.StatusReasonBadRequest, ""},
		{"create: body over 3 MiB", "POST", "/api/v1/namespaces", "admin", "", bytes.Repeat([]byte(" "), 3<<20+10), 413, metav1.StatusReasonRequestEntityTooLarge, ""},
		{"create: object too large to store (2 MB)", "POST", "/api/v1/namespaces/default/events", "admin", "", jsonBody(hugeEvent), 413, metav1.StatusReasonRequestEntityTooLarge, ""},
		{"create: wrong apiVersion", "POST", "/api/v1/namespaces", "admin", "", []byte(`{"apiVersion":"v2","kind":"Namespace","metadata":{"name":"x"}}`), 400, metav1.StatusReasonBadRequest, ""},
		{"create: wrong kind", "POST", "/api/v1/namespaces", "admin", "", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}`), 400, metav1.StatusReasonBadRequest, ""},
		{"create: strict decoding", "POST", "/api/v1/namespaces?fieldValidation=Strict", "admin", "", []byte(`{"metadata":{"name":"x"},"bogus":1}`), 400, metav1.StatusReasonBadRequest, ""},
		{"create: bad fieldValidation", "POST", "/api/v1/namespaces?fieldValidation=Maybe", "admin", "", []byte(`{"metadata":{"name":"x"}}`), 400, metav1.StatusReasonBadRequest, ""},
		{"create: bad dryRun", "POST", "/api/v1/namespaces?dryRun=Some", "admin", "", []byte(`{"metadata":{"name":"x"}}`), 400, metav1.StatusReasonBadRequest, ""},
		{"create: long fieldManager", "POST", "/api/v1/namespaces?fieldManager=" + strings.Repeat("m", 130), "admin", "", []byte(`{"metadata":{"name":"x"}}`), 400, metav1.StatusReasonBadRequest, ""},
		{"create: namespace mismatch", "POST", "/api/v1/namespaces/default/events", "admin", "", []byte(`{"metadata":{"name":"e","namespace":"other"}}`), 400, metav1.StatusReasonBadRequest, ""},
		{"create: missing namespace", "POST", "/api/v1/namespaces/nope/events", "admin", "", []byte(`{"metadata":{"name":"e"},"involvedObject":{"name":"x"}}`), 404, metav1.StatusReasonNotFound, "nope"},
		{"create: invalid name", "POST", "/api/v1/namespaces", "admin", "", []byte(`{"metadata":{"name":"Not_Valid"}}`), 422, metav1.StatusReasonInvalid, "Not_Valid"},
		{"create: exists", "POST", "/api/v1/namespaces", "admin", "", []byte(`{"metadata":{"name":"default"}}`), 409, metav1.StatusReasonAlreadyExists, "default"},
		{"create: pod through the API", "POST", pods, "admin", "", jsonBody(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}), 403, metav1.StatusReasonForbidden, ""},
		{"create: review without attributes", "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "admin", "", []byte(`{"spec":{}}`), 422, metav1.StatusReasonInvalid, ""},
		{"create: token review without token", "POST", "/apis/authentication.k8s.io/v1/tokenreviews", "admin", "", []byte(`{"spec":{}}`), 422, metav1.StatusReasonInvalid, ""},
		// Updates and patches.
		{"update: stale resourceVersion", "PUT", pod, "node:n1", "", jsonBody(stale), 409, metav1.StatusReasonConflict, p.Name},
		{"update: name mismatch", "PUT", pods + "/other", "admin", "", jsonBody(p), 400, metav1.StatusReasonBadRequest, ""},
		{"update: bad resourceVersion", "PUT", "/api/v1/namespaces/default", "admin", "", []byte(`{"metadata":{"name":"default","resourceVersion":"x"}}`), 422, metav1.StatusReasonInvalid, "default"},
		{"update: missing object", "PUT", "/api/v1/namespaces/nope", "admin", "", []byte(`{"metadata":{"name":"nope"}}`), 404, metav1.StatusReasonNotFound, "nope"},
		{"update: mirror pod spec", "PATCH", pod, "admin", "application/strategic-merge-patch+json", []byte(`{"spec":{"containers":[{"name":"web","image":"img:2"}]}}`), 403, metav1.StatusReasonForbidden, p.Name},
		{"patch: unknown patch type", "PATCH", pod, "admin", "text/plain", []byte(`{}`), 415, metav1.StatusReasonUnsupportedMediaType, ""},
		{"patch: server-side apply", "PATCH", pod, "admin", "application/apply-patch+yaml", []byte(`{}`), 415, metav1.StatusReasonUnsupportedMediaType, ""},
		{"patch: bad JSON patch", "PATCH", pod, "admin", "application/json-patch+json", []byte(`{`), 400, metav1.StatusReasonBadRequest, ""},
		{"patch: JSON patch that does not apply", "PATCH", pod, "admin", "application/json-patch+json", []byte(`[{"op":"remove","path":"/nope"}]`), 422, metav1.StatusReasonInvalid, p.Name},
		{"patch: bad merge patch", "PATCH", pod, "admin", "application/merge-patch+json", []byte(`{`), 400, metav1.StatusReasonBadRequest, ""},
		{"patch: renames", "PATCH", pod, "admin", "application/merge-patch+json", []byte(`{"metadata":{"name":"other"}}`), 422, metav1.StatusReasonInvalid, p.Name},
		{"patch: missing object", "PATCH", pods + "/nope", "admin", "application/merge-patch+json", []byte(`{}`), 404, metav1.StatusReasonNotFound, "nope"},
		// kubectl debug: refused as kube-apiserver refuses it for static pods.
		{"ephemeral containers of a static pod", "PATCH", pod + "/ephemeralcontainers", "admin", "application/strategic-merge-patch+json", []byte(`{"spec":{"ephemeralContainers":[{"name":"d","image":"busybox"}]}}`), 422, metav1.StatusReasonInvalid, p.Name},
		{"ephemeral containers: DELETE", "DELETE", pod + "/ephemeralcontainers", "admin", "", nil, 405, metav1.StatusReasonMethodNotAllowed, ""},
		// Deletes.
		{"delete: missing", "DELETE", pods + "/nope", "admin", "", nil, 404, metav1.StatusReasonNotFound, "nope"},
		{"delete: system namespace", "DELETE", "/api/v1/namespaces/kube-system", "admin", "", nil, 403, metav1.StatusReasonForbidden, "kube-system"},
		{"delete: bad options", "DELETE", pod, "admin", "", []byte(`{`), 400, metav1.StatusReasonBadRequest, ""},
		{"delete: bad grace period", "DELETE", pod + "?gracePeriodSeconds=x", "admin", "", nil, 400, metav1.StatusReasonBadRequest, ""},
		{"delete: bad propagation", "DELETE", pod + "?propagationPolicy=Maybe", "admin", "", nil, 400, metav1.StatusReasonBadRequest, ""},
		{"delete: UID precondition", "DELETE", pod, "admin", "", []byte(`{"preconditions":{"uid":"other"}}`), 409, metav1.StatusReasonConflict, p.Name},
		{"delete: text/plain options", "DELETE", pod, "admin", "text/plain", []byte(`{}`), 415, metav1.StatusReasonUnsupportedMediaType, ""},
		{"deletecollection: bad selector", "DELETE", "/api/v1/namespaces/default/events?labelSelector=a%20in", "admin", "", nil, 400, metav1.StatusReasonBadRequest, ""},
		// Logs (no node dialer in this server).
		{"log: no container named", "GET", pod + "/log?container=nope", "admin", "", nil, 400, metav1.StatusReasonBadRequest, ""},
		{"log: node unreachable", "GET", pod + "/log", "admin", "", nil, 503, metav1.StatusReasonServiceUnavailable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rd io.Reader
			if tc.body != nil {
				rd = bytes.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, e.ts.URL+tc.path, rd)
			req.Header.Set("Authorization", "Bearer "+tc.token)
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("%s %s: HTTP %d, want %d: %s", tc.method, tc.path, resp.StatusCode, tc.code, data)
			}
			apitest.CheckStatusShape(t, data, tc.code, tc.reason, tc.detailsName)
		})
	}
}
