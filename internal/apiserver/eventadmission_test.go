package apiserver

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A node writes only its own events: about its Node or its pods, reported
// by itself. Node b's credentials can neither create events about node a
// and its pods nor change the events node a wrote (issue 12, point 6).
func TestNodeEventsAreTheNodesOwn(t *testing.T) {
	e := newTestEnv(t)
	e.addNode("a")
	e.addNode("b")
	e.addMirror("web", "a")
	e.addMirror("db", "b")
	events := "/api/v1/namespaces/default/events"
	event := func(name, kind, about, host string) *corev1.Event {
		ns := "default"
		if kind == "Node" {
			ns = ""
		}
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			InvolvedObject: corev1.ObjectReference{Kind: kind, APIVersion: "v1", Namespace: ns, Name: about},
			Reason:         "Started", Message: "m", Type: corev1.EventTypeNormal, Count: 1,
			Source: corev1.EventSource{Component: "kubelet", Host: host}, ReportingController: "kubelet", ReportingInstance: host}
	}
	refused := func(code int, body string, want ...string) {
		t.Helper()
		e.must(code, body, 403)
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("refusal lacks %q: %s", w, body)
			}
		}
	}

	// Node a writes its own events: about its pod, about itself, about a
	// static pod of its own that is gone.
	var webEv corev1.Event
	code, body := e.do("POST", events, "node:a", "", event("web-a.1", "Pod", "web-a", "a"), &webEv)
	e.must(code, body, 201)
	code, body = e.do("POST", events, "node:a", "", event("a.1", "Node", "a", "a"), nil)
	e.must(code, body, 201)
	code, body = e.do("POST", events, "node:a", "", event("gone-a.1", "Pod", "gone-a", "a"), nil)
	e.must(code, body, 201)

	// Node b creates events about node a's pod, node a, and as node a.
	code, body = e.do("POST", events, "node:b", "", event("web-a.2", "Pod", "web-a", "b"), nil)
	refused(code, body, `User \"system:node:b\" cannot create event \"web-a.2\"`, `it is about pod default/web-a, bound to node \"a\"`)
	code, body = e.do("POST", events, "node:b", "", event("a.2", "Node", "a", "b"), nil)
	refused(code, body, `it is about Node \"a\"`)
	code, body = e.do("POST", events, "node:b", "", event("db-b.1", "Pod", "db-b", "a"), nil)
	refused(code, body, `its source.host is \"a\"`)
	code, body = e.do("POST", events, "node:b", "", event("gone.1", "Pod", "gone-a", "b"), nil)
	refused(code, body, `which does not exist and is not named as a static pod of this node`)
	code, body = e.do("POST", events, "node:b", "", event("ns.1", "Namespace", "default", "b"), nil)
	refused(code, body, `it is about a Namespace`)
	// Through events.k8s.io too.
	v1ev := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web-a.3", Namespace: "default"},
		EventTime: metav1.NewMicroTime(webEv.CreationTimestamp.Time), ReportingController: "kubelet", ReportingInstance: "b",
		Action: "Started", Reason: "Started", Type: "Normal", Note: "m",
		Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-a"}, DeprecatedSource: corev1.EventSource{Host: "b"}}
	code, body = e.do("POST", "/apis/events.k8s.io/v1/namespaces/default/events", "node:b", "", v1ev, nil)
	refused(code, body, `bound to node \"a\"`)
	// Its own events, through events.k8s.io, pass.
	v1ev.Name, v1ev.Regarding.Name = "db-b.2", "db-b"
	code, body = e.do("POST", "/apis/events.k8s.io/v1/namespaces/default/events", "node:b", "", v1ev, nil)
	e.must(code, body, 201)

	// Node b changes node a's event: update, and the three patch types.
	upd := webEv.DeepCopy()
	upd.Count = 99
	code, body = e.do("PUT", events+"/web-a.1", "node:b", "", upd, nil)
	refused(code, body, `cannot update event \"web-a.1\"`, `bound to node \"a\"`)
	for _, p := range []struct{ ct, body string }{
		{"application/merge-patch+json", `{"count":99}`},
		{"application/strategic-merge-patch+json", `{"count":99}`},
		{"application/json-patch+json", `[{"op":"replace","path":"/count","value":99}]`},
	} {
		code, body = e.do("PATCH", events+"/web-a.1", "node:b", p.ct, []byte(p.body), nil)
		refused(code, body, `cannot patch event \"web-a.1\"`)
	}
	// Nor can it make one of its own events about node a.
	var dbEv corev1.Event
	code, body = e.do("POST", events, "node:b", "", event("db-b.3", "Pod", "db-b", "b"), &dbEv)
	e.must(code, body, 201)
	code, body = e.do("PATCH", events+"/db-b.3", "node:b", "application/merge-patch+json", []byte(`{"involvedObject":{"name":"web-a"}}`), nil)
	refused(code, body, `bound to node \"a\"`)

	// Node a updates its own event; the admin may write any.
	code, body = e.do("PATCH", events+"/web-a.1", "node:a", "application/merge-patch+json", []byte(`{"count":2}`), nil)
	e.must(code, body, 200)
	code, body = e.do("PATCH", events+"/web-a.1", "admin", "application/merge-patch+json", []byte(`{"count":3}`), nil)
	e.must(code, body, 200)
	var got corev1.Event
	code, body = e.do("GET", events+"/web-a.1", "admin", "", nil, &got)
	e.must(code, body, 200)
	if got.Count != 3 {
		t.Errorf("count %d, want 3", got.Count)
	}
}
