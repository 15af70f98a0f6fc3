package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/lifecycle"
	"github.com/ballast-dev/ballast/internal/storage/etcd"
)

type rawEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watch opens a watch and returns a function that reads the next event (or fails after 5 s).
func (e *testEnv) watch(path string) func() rawEvent {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		e.t.Fatalf("watch %s: status %d", path, resp.StatusCode)
	}
	ch := make(chan rawEvent, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev rawEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				ch <- ev
			}
		}
	}()
	return func() rawEvent {
		e.t.Helper()
		select {
		case ev, ok := <-ch:
			if !ok {
				e.t.Fatalf("watch %s ended", path)
			}
			return ev
		case <-time.After(5 * time.Second):
			e.t.Fatalf("watch %s: no event within 5s", path)
		}
		return rawEvent{}
	}
}

func objMeta(t *testing.T, raw json.RawMessage) metav1.ObjectMeta {
	var o struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	return o.Metadata
}

func TestREST(t *testing.T) {
	e := newTestEnv(t)
	e.addNode("n1")
	e.addNode("n2")
	p := e.addMirror("web", "n1")
	e.addMirror("db", "n1")
	e.addMirror("cache", "n2")
	pods := "/api/v1/namespaces/default/pods"

	{ // update with a stale resourceVersion
		code, body := e.do("PATCH", pods+"/web-n1", "admin", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"n":"1"}}}`), nil)
		e.must(code, body, 200)
		stale := p.DeepCopy()
		stale.Labels["x"] = "y"
		code, body = e.do("PUT", pods+"/web-n1", "admin", "", stale, nil)
		e.must(code, body, 409)
		if !strings.Contains(body, `Operation cannot be fulfilled on pods \"web-n1\": the object has been modified; please apply your changes to the latest version and try again`) {
			t.Fatal(body)
		}
	}
	{ // errors
		code, body := e.do("GET", pods+"/nope", "admin", "", nil, nil)
		e.must(code, body, 404)
		if !strings.Contains(body, `"reason":"NotFound"`) || !strings.Contains(body, `pods \"nope\" not found`) {
			t.Fatal(body)
		}
		code, body = e.do("GET", "/api/v1/widgets", "admin", "", nil, nil)
		e.must(code, body, 404)
		code, body = e.do("GET", "/nope", "admin", "", nil, nil)
		e.must(code, body, 404)
		code, body = e.do("GET", pods, "bad", "", nil, nil)
		e.must(code, body, 401)
		code, body = e.do("DELETE", "/api/v1/nodes/n1", "node:n2", "", nil, nil)
		e.must(code, body, 403)
		code, body = e.do("DELETE", pods+"/web-n1", "node:n2", "", nil, nil)
		e.must(code, body, 403)
		code, body = e.do("PATCH", pods+"/web-n1", "admin", "application/apply-patch+yaml", []byte("{}"), nil)
		e.must(code, body, 415)
		if !strings.Contains(body, "server-side apply is not supported") {
			t.Fatal(body)
		}
		code, body = e.do("DELETE", "/api/v1/namespaces/kube-system", "admin", "", nil, nil)
		e.must(code, body, 403)
		orphan := apitest.MirrorPod("x", "n1")
		orphan.Namespace = ""
		code, body = e.do("POST", "/api/v1/namespaces/nope/pods", "node:n1", "", orphan, nil)
		e.must(code, body, 404)
	}
	{ // list with limit, continue and selectors
		var l corev1.PodList
		code, body := e.do("GET", pods+"?limit=2", "admin", "", nil, &l)
		e.must(code, body, 200)
		if len(l.Items) != 2 || l.Continue == "" || l.RemainingItemCount == nil || *l.RemainingItemCount != 1 {
			t.Fatalf("first page: %d items, continue %q", len(l.Items), l.Continue)
		}
		var l2 corev1.PodList
		code, body = e.do("GET", pods+"?limit=2&continue="+l.Continue, "admin", "", nil, &l2)
		e.must(code, body, 200)
		if len(l2.Items) != 1 || l2.Continue != "" || l2.ResourceVersion != l.ResourceVersion {
			t.Fatalf("second page: %+v", l2.ListMeta)
		}
		code, body = e.do("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&limit=1", "admin", "", nil, &l)
		e.must(code, body, 200)
		if len(l.Items) != 1 || l.Items[0].Spec.NodeName != "n1" || l.Continue == "" {
			t.Fatalf("selector page: %+v", l)
		}
		code, body = e.do("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&limit=1&continue="+l.Continue, "admin", "", nil, &l2)
		e.must(code, body, 200)
		if len(l2.Items) != 1 || l2.Items[0].Spec.NodeName != "n1" || l2.Items[0].Name == l.Items[0].Name {
			t.Fatalf("selector page 2: %+v", l2)
		}
		code, body = e.do("GET", pods+"?resourceVersion="+l.ResourceVersion+"&resourceVersionMatch=Exact", "admin", "", nil, &l)
		e.must(code, body, 200)
	}
	{ // create: generateName, dryRun, strict
		ev := map[string]any{"metadata": map[string]any{"generateName": "ev-"}, "involvedObject": map[string]any{"kind": "Node", "name": "n1"}, "reason": "R",
			"source": map[string]any{"component": "kubelet", "host": "n1"}}
		var out corev1.Event
		code, body := e.do("POST", "/api/v1/namespaces/default/events", "node:n1", "", ev, &out)
		e.must(code, body, 201)
		if !strings.HasPrefix(out.Name, "ev-") || len(out.Name) != 8 || out.UID == "" || out.ResourceVersion == "" || out.CreationTimestamp.IsZero() {
			t.Fatalf("created %+v", out.ObjectMeta)
		}
		code, body = e.do("GET", "/apis/events.k8s.io/v1/namespaces/default/events/"+out.Name, "admin", "", nil, nil)
		e.must(code, body, 200)
		if !strings.Contains(body, `"regarding":{"kind":"Node","name":"n1"}`) {
			t.Fatal(body)
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}
		code, body = e.do("POST", "/api/v1/namespaces?dryRun=All", "admin", "", ns, nil)
		e.must(code, body, 201)
		code, body = e.do("GET", "/api/v1/namespaces/dry", "admin", "", nil, nil)
		e.must(code, body, 404)
		code, body = e.do("POST", "/api/v1/namespaces?fieldValidation=Strict", "admin", "", []byte(`{"metadata":{"name":"s"},"spec":{"bogus":1}}`), nil)
		e.must(code, body, 400)
	}
	{ // delete preconditions
		opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: new(p.UID + "x")}}
		code, body := e.do("DELETE", pods+"/web-n1", "admin", "", opts, nil)
		e.must(code, body, 409)
	}
	{ // self subject access review
		ssar := map[string]any{"spec": map[string]any{"resourceAttributes": map[string]any{"verb": "delete", "resource": "nodes", "name": "n1"}}}
		code, body := e.do("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "node:n2", "", ssar, nil)
		e.must(code, body, 201)
		if !strings.Contains(body, `"allowed":false`) {
			t.Fatal(body)
		}
	}
}

func TestWatch(t *testing.T) {
	// A window of 4 events: the last part watches from before it.
	e := newTestEnv(t, func(c *Config) { c.WatchCache.Window = 4 })
	e.addNode("n1")
	p := e.addMirror("web", "n1")
	pods := "/api/v1/namespaces/default/pods"

	// resourceVersion "" : the current state as ADDED, then changes.
	all := e.watch(pods + "?watch=true")
	if ev := all(); ev.Type != "ADDED" || objMeta(t, ev.Object).Name != "web-n1" {
		t.Fatalf("first event %s", ev.Type)
	}
	// A selector: an object that stops matching arrives as DELETED.
	sel := e.watch(pods + "?watch=true&labelSelector=app%3Dweb&resourceVersion=" + p.ResourceVersion)
	bm := e.watch(pods + "?watch=true&allowWatchBookmarks=true&resourceVersion=" + p.ResourceVersion)
	wl := e.watch(pods + "?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
	code, body := e.do("PATCH", pods+"/web-n1", "admin", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"app":"other"}}}`), nil)
	e.must(code, body, 200)
	if ev := all(); ev.Type != "MODIFIED" {
		t.Fatalf("unfiltered watch: %s", ev.Type)
	}
	if ev := sel(); ev.Type != "DELETED" {
		t.Fatalf("selector watch: %s, want DELETED", ev.Type)
	}
	if ev := bm(); ev.Type != "MODIFIED" {
		t.Fatalf("bookmark watch: %s", ev.Type)
	}
	if ev := bm(); ev.Type != "BOOKMARK" {
		t.Fatalf("bookmark watch: %s, want BOOKMARK", ev.Type)
	}
	if ev := wl(); ev.Type != "ADDED" {
		t.Fatalf("watch list: %s", ev.Type)
	}
	for {
		ev := wl()
		if ev.Type == "BOOKMARK" {
			if objMeta(t, ev.Object).Annotations[metav1.InitialEventsAnnotationKey] != "true" {
				t.Fatalf("watch list bookmark %s", ev.Object)
			}
			break
		}
	}
	// A pod on a node is deleted gracefully: first marked, then, when its
	// node deletes it with a grace period of 0, removed.
	code, body = e.do("DELETE", pods+"/web-n1", "admin", "", nil, nil)
	e.must(code, body, 200)
	if ev := all(); ev.Type != "MODIFIED" || objMeta(t, ev.Object).DeletionTimestamp == nil ||
		*objMeta(t, ev.Object).DeletionGracePeriodSeconds != 30 {
		t.Fatalf("graceful delete: %s %s, want MODIFIED with deletionTimestamp and a grace period of 30", ev.Type, ev.Object)
	}
	code, body = e.do("DELETE", pods+"/web-n1?gracePeriodSeconds=0", "admin", "", nil, nil)
	e.must(code, body, 200)
	if ev := all(); ev.Type != "DELETED" {
		t.Fatalf("unfiltered watch: %s", ev.Type)
	}

	// Too old (before the watch cache's window; etcd's compaction alone
	// does not matter to the cache): an ERROR event with a 410 Status.
	cur, err := e.store.Revision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.(*etcd.Store).Client().Compact(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	old := e.watch(fmt.Sprintf("%s?watch=true&resourceVersion=%d", pods, 2))
	ev := old()
	var st metav1.Status
	_ = json.Unmarshal(ev.Object, &st)
	if ev.Type != "ERROR" || st.Code != 410 || st.Reason != metav1.StatusReasonExpired || !strings.HasPrefix(st.Message, "too old resource version: 2 (") {
		t.Fatalf("too old watch: %s %s", ev.Type, ev.Object)
	}
}

func TestNodeLifecycle(t *testing.T) {
	e := lostNode(t)
	var n corev1.Node
	e.do("GET", "/api/v1/nodes/n1", "admin", "", nil, &n)
	if c := n.Status.Conditions[0]; c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusUnknown" {
		t.Fatalf("node condition %+v", c)
	}
	var p corev1.Pod
	e.do("GET", "/api/v1/namespaces/default/pods/web-n1", "admin", "", nil, &p)
	if p.Status.Conditions[0].Status != corev1.ConditionFalse || p.Status.ContainerStatuses[0].Ready || p.Status.Reason != lifecycle.NodeLostReason {
		t.Fatalf("pod status %+v", p.Status)
	}
}

// lostNode is a server whose node n1, with mirror pod web-n1, stopped
// renewing its lease for longer than lifecycle.NodeGracePeriod.
func lostNode(t *testing.T) *testEnv {
	e := newTestEnv(t)
	e.addNode("n1")
	e.addMirror("web", "n1")
	ctx := context.Background()
	t0 := time.Now()
	e.now = func() time.Time { return t0 }
	if err := e.srv.lifecycle.CheckNodes(ctx); err != nil {
		t.Fatal(err)
	}
	e.now = func() time.Time { return t0.Add(lifecycle.NodeGracePeriod + time.Second) }
	if err := e.srv.lifecycle.CheckNodes(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}
