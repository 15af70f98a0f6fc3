package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/storage/etcd"
)

// The fuzz targets send what a client may send (create and update bodies,
// the three patch types, list options and selectors) to the real handler
// on embedded etcd. Whatever the input: no panic, no 500 (a client's
// mistake is a 4xx that says what is wrong), and a node never changes what
// is not its own. `make test` runs each for a few seconds (hack/test.sh
// fuzz); the seeds are in testdata/fuzz.

// fuzzServer is one API server for a whole fuzz run, holding node n1 with
// its mirror pod web-n1, node n2, a Lease and an event.
type fuzzServer struct {
	h http.Handler
}

func newFuzzServer(f *testing.F) *fuzzServer {
	f.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := etcd.Open(ctx, etcd.Config{DataDir: filepath.Join(f.TempDir(), "etcd"), ProgressInterval: time.Second})
	if err != nil {
		f.Fatalf("opening embedded etcd: %v", err)
	}
	f.Cleanup(func() { st.Close() })
	srv, err := New(Config{Store: st, Authenticate: testAuthenticate, Authorize: auth.Authorize})
	if err != nil {
		f.Fatal(err)
	}
	s := &fuzzServer{h: srv.Handler()}
	for _, n := range []string{"n1", "n2"} {
		s.must(f, "POST", "/api/v1/nodes", "node:"+n, "", &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, 201)
	}
	s.must(f, "POST", "/api/v1/namespaces/default/pods", "node:n1", "", apitest.MirrorPod("web", "n1"), 201)
	s.must(f, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", "node:n1", "",
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1", Namespace: "kube-node-lease"}}, 201)
	s.must(f, "POST", "/api/v1/namespaces/default/events", "node:n1", "", &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web-n1.1", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-n1"},
		Reason:         "Started", Source: corev1.EventSource{Component: "kubelet", Host: "n1"},
	}, 201)
	return s
}

// do serves one request; a watch is ended after a moment (a request whose
// client went away answers what it likes: it is reported as 499).
func (s *fuzzServer) do(method, target, token, contentType string, body []byte) (int, string) {
	path, query, _ := strings.Cut(target, "?")
	wait := 5 * time.Second
	if strings.Contains(query, "watch") {
		wait = 20 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	u := &url.URL{Scheme: "http", Host: "ballast", Path: path, RawQuery: query}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return http.StatusBadRequest, err.Error() // no client could send it
	}
	r.RequestURI = u.RequestURI()
	r.Header.Set("Authorization", "Bearer "+token)
	if contentType == "" {
		contentType = "application/json"
	}
	r.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.h.ServeHTTP(w, r)
	}()
	select {
	case <-done:
	case <-time.After(wait + 10*time.Second):
		return http.StatusGatewayTimeout, "the request was still served 10s after its context ended"
	}
	if w.Code >= 500 && ctx.Err() != nil {
		return 499, "client gone: " + w.Body.String()
	}
	return w.Code, w.Body.String()
}

func (s *fuzzServer) must(f *testing.F, method, target, token, contentType string, obj any, want int) {
	f.Helper()
	b, _ := json.Marshal(obj)
	if code, body := s.do(method, target, token, contentType, b); code != want {
		f.Fatalf("%s %s: %d, want %d: %s", method, target, code, want, body)
	}
}

// noServerError fails on a 5xx: a client's input is never the server's fault.
func noServerError(t *testing.T, what string, code int, body string) {
	t.Helper()
	if code >= 500 {
		t.Fatalf("%s: %d: %s", what, code, body)
	}
}

// Where fuzzed bodies go: every stored resource, by create and by update.
var fuzzCollections = []string{
	"/api/v1/namespaces/default/pods",
	"/api/v1/namespaces/default/events",
	"/apis/events.k8s.io/v1/namespaces/default/events",
	"/api/v1/nodes",
	"/api/v1/namespaces",
	"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
}

var fuzzObjects = []string{
	"/api/v1/namespaces/default/pods/web-n1",
	"/api/v1/namespaces/default/pods/web-n1/status",
	"/api/v1/namespaces/default/events/web-n1.1",
	"/api/v1/nodes/n1",
	"/api/v1/nodes/n1/status",
	"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
}

func FuzzCreateUpdateBody(f *testing.F) {
	s := newFuzzServer(f)
	for _, seed := range []string{
		`{"metadata":{"name":"x"}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"c","image":"i"}]}}`,
		`{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1","resourceVersion":"1"},"status":{"conditions":[{"type":"Ready","status":"True"}]}}`,
		`{"metadata":{"generateName":"ev-"},"involvedObject":{"kind":"Node","name":"n1"},"source":{"host":"n1"}}`,
		`{"spec":{"holderIdentity":"n1","leaseDurationSeconds":40}}`,
		`{"metadata":{"name":"x","labels":{"a":"b"},"annotations":{"kubernetes.io/config.mirror":"h"}}}`,
		`[1,2,3]`, `null`, `{"metadata":null}`, `{"kind":"Status"}`,
	} {
		f.Add(uint8(0), []byte(seed), "Strict", "admin")
		f.Add(uint8(7), []byte(seed), "", "node:n1")
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte, validation, token string) {
		if token != "admin" {
			token = "node:n1"
		}
		q := ""
		if validation != "" {
			q = "?fieldValidation=" + url.QueryEscape(validation)
		}
		i := int(which)
		if i%2 == 0 {
			target := fuzzCollections[(i/2)%len(fuzzCollections)]
			code, out := s.do("POST", target+q, token, "", body)
			noServerError(t, "POST "+target, code, out)
			return
		}
		target := fuzzObjects[(i/2)%len(fuzzObjects)]
		code, out := s.do("PUT", target+q, token, "", body)
		noServerError(t, "PUT "+target, code, out)
	})
}

var patchTypes = []string{"application/merge-patch+json", "application/strategic-merge-patch+json", "application/json-patch+json"}

func FuzzPatch(f *testing.F) {
	s := newFuzzServer(f)
	for _, seed := range []struct {
		pt    uint8
		patch string
	}{
		{0, `{"metadata":{"labels":{"x":"y"}}}`},
		{0, `{"spec":{"nodeName":"n2"}}`},
		{1, `{"spec":{"containers":[{"name":"web","image":"other"}]}}`},
		{1, `{"metadata":{"$patch":"replace"}}`},
		{1, `{"status":{"conditions":[{"type":"Ready","$patch":"delete"}]}}`},
		{2, `[{"op":"replace","path":"/spec/nodeName","value":"n2"}]`},
		{2, `[{"op":"add","path":"/metadata/labels/a","value":"b"}]`},
		{2, `[{"op":"move","from":"/spec","path":"/metadata"}]`},
		{2, `[{"op":"test","path":"/metadata/name","value":"web-n1"}]`},
	} {
		for obj := range uint8(len(fuzzObjects)) {
			f.Add(seed.pt, obj, []byte(seed.patch))
		}
	}
	f.Fuzz(func(t *testing.T, pt, obj uint8, patch []byte) {
		ct := patchTypes[int(pt)%len(patchTypes)]
		target := fuzzObjects[int(obj)%len(fuzzObjects)]
		// Another node's credentials never change node n1's objects.
		code, out := s.do("PATCH", target, "node:n2", ct, patch)
		noServerError(t, "PATCH "+target+" as n2", code, out)
		if code < 300 {
			t.Fatalf("node n2 patched %s (%s): %d %s", target, ct, code, out)
		}
		code, out = s.do("PATCH", target, "admin", ct, patch)
		noServerError(t, "PATCH "+target+" as admin", code, out)
		code, out = s.do("PATCH", target, "node:n1", ct, patch)
		noServerError(t, "PATCH "+target+" as n1", code, out)
	})
}

func FuzzListOptions(f *testing.F) {
	s := newFuzzServer(f)
	for _, seed := range []string{
		"labelSelector=app%3Dweb&limit=1",
		"fieldSelector=spec.nodeName%3Dn1,status.phase!%3DRunning",
		"fieldSelector=metadata.name%3D%3Dweb-n1&resourceVersion=0&resourceVersionMatch=NotOlderThan",
		"limit=2&continue=bogus",
		"resourceVersion=1&resourceVersionMatch=Exact",
		"labelSelector=a+in+(b,c),!d,e!%3Df",
		"watch=true&timeoutSeconds=1&allowWatchBookmarks=true",
		"sendInitialEvents=true&watch=1&resourceVersionMatch=NotOlderThan",
		"fieldSelector=involvedObject.kind%3DPod&limit=-1",
		"includeObject=Object", "pretty=true&fieldSelector=%3D%3D",
	} {
		f.Add(uint8(0), seed)
		f.Add(uint8(2), seed)
	}
	lists := append([]string{"/api/v1/pods"}, fuzzCollections...)
	f.Fuzz(func(t *testing.T, which uint8, query string) {
		target := lists[int(which)%len(lists)] + "?" + query
		code, out := s.do("GET", target, "admin", "", nil)
		noServerError(t, "GET "+target, code, out)
		code, out = s.do("GET", target, "node:n1", "", nil)
		noServerError(t, "GET "+target+" as n1", code, out)
	})
}

func FuzzSelectors(f *testing.F) {
	for _, seed := range [][2]string{
		{"app=web", "spec.nodeName=n1"},
		{"a in (b,c),!d", "metadata.name!=x,status.phase=Running"},
		{"x notin (), y", "=="},
		{"a==b,a!=b", `metadata.name=\,`},
		{"!", "spec.nodeName="},
	} {
		f.Add(seed[0], seed[1])
	}
	ks := kinds.All()
	pod := apitest.MirrorPod("web", "n1")
	pod.Labels = map[string]string{"app": "web"}
	f.Fuzz(func(t *testing.T, label, field string) {
		q := url.Values{"labelSelector": {label}, "fieldSelector": {field}}
		for _, k := range ks {
			if k.CreateOnly {
				continue
			}
			sel, err := request.ParseSelectors(k, q)
			if err != nil {
				if se, ok := err.(*request.Error); !ok || se.Status.Code != http.StatusBadRequest || !strings.Contains(se.Status.Message, "Selector") && !strings.Contains(se.Status.Message, "field selector") {
					t.Fatalf("%s: a bad selector is not a 400 that names it: %v", k.Info.Resource, err)
				}
				continue
			}
			if k.Info.Resource == "pods" && k.Info.Group == "" {
				sel.Matches(k, pod)
			} else {
				sel.Matches(k, k.NewObj())
			}
		}
	})
}
