package apiserver

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// TestInformer: a client-go informer lists and watches pods, and sees a
// mirror pod created, changed and deleted; in JSON, and in protobuf as the
// kubelet and controllers ask for it (every list and watch answered in
// protobuf then).
func TestInformer(t *testing.T) {
	for _, tc := range []struct {
		name        string
		contentType string
	}{
		{"json", "application/json"},
		{"protobuf", "application/vnd.kubernetes.protobuf"}, // client-go's clientset default
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &contentTypes{rt: http.DefaultTransport}
			cfg := &rest.Config{Host: "", BearerToken: "admin", WrapTransport: func(rt http.RoundTripper) http.RoundTripper { rec.rt = rt; return rec }}
			cfg.ContentType = tc.contentType
			testInformer(t, cfg)
			want := tc.contentType
			seen := rec.seen()
			if len(seen) < 5 { // the informer's watch, a get, three lists
				t.Errorf("only %d reads recorded: %v", len(seen), seen)
			}
			for path, got := range seen {
				if !strings.HasPrefix(got, want) {
					t.Errorf("%s answered in %q, want %q", path, got, want)
				}
			}
		})
	}
}

// contentTypes records the Content-Type of every successful read (get,
// list, watch).
type contentTypes struct {
	rt http.RoundTripper
	mu sync.Mutex
	by map[string]string
}

func (c *contentTypes) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if err == nil && r.Method == http.MethodGet && resp.StatusCode == http.StatusOK {
		c.mu.Lock()
		if c.by == nil {
			c.by = map[string]string{}
		}
		c.by[r.URL.Path+"?"+r.URL.RawQuery] = resp.Header.Get("Content-Type")
		c.mu.Unlock()
	}
	return resp, err
}

func (c *contentTypes) seen() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.by)
}

func testInformer(t *testing.T, cfg *rest.Config) {
	e := newTestEnv(t)
	e.addNode("n1")
	cfg.Host = e.ts.URL
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := informers.NewSharedInformerFactory(cs, 0)
	inf := f.Core().V1().Pods().Informer()
	events := make(chan string, 100)
	record := func(s string) { events <- s }
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { record("add " + o.(*corev1.Pod).Name) },
		UpdateFunc: func(_, o any) { record("update " + o.(*corev1.Pod).Name + " " + o.(*corev1.Pod).Labels["tier"]) },
		DeleteFunc: func(o any) {
			if p, ok := o.(*corev1.Pod); ok {
				record("delete " + p.Name)
			}
		},
	})
	e.addMirror("before", "n1")
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	e.addMirror("web", "n1")
	// A read of one object, a list that etcd answers (a limit), and an
	// error, in the client's encoding.
	if p, err := cs.CoreV1().Pods("default").Get(ctx, "before-n1", metav1.GetOptions{}); err != nil || p.Spec.NodeName != "n1" {
		t.Errorf("get: %v %+v", err, p)
	}
	if l, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1}); err != nil || len(l.Items) != 1 || l.Continue == "" {
		t.Errorf("list with a limit: %v %+v", err, l)
	}
	// Lists the watch cache answers: any state, and the latest.
	for _, rv := range []string{"0", ""} {
		if l, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{ResourceVersion: rv}); err != nil || len(l.Items) != 2 || l.ResourceVersion == "" {
			t.Errorf("list at resourceVersion %q: %v %+v", rv, err, l)
		}
	}
	if _, err := cs.CoreV1().Pods("default").Get(ctx, "nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get of a missing pod: %v, want NotFound", err)
	}
	if _, err := cs.CoreV1().Pods("default").Patch(ctx, "web-n1", "application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"tier":"front"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// Deleted as a node finishes a graceful deletion: at once.
	if err := cs.CoreV1().Pods("default").Delete(ctx, "web-n1", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	want := []string{"add before-n1", "add web-n1", "update web-n1 front", "delete web-n1"}
	var got []string
	deadline := time.After(10 * time.Second)
	for !containsInOrder(got, want) {
		select {
		case ev := <-events:
			got = append(got, ev)
		case <-deadline:
			t.Fatalf("informer events %q, want %q in order", got, want)
		}
	}
}

func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
