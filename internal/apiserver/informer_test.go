package apiserver

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// TestInformer: a client-go informer lists and watches pods, and sees a
// mirror pod created, changed and deleted.
func TestInformer(t *testing.T) {
	e := newTestEnv(t)
	e.addNode("n1")
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: e.ts.URL, BearerToken: "admin"})
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
