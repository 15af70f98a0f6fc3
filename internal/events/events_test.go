package events

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAggregatesRepeats(t *testing.T) {
	r := New("n1", 3, nil)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "default", UID: "u"}, Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "init"}}}}
	changed := r.Changed()
	r.Event(PodRef(pod, "app"), corev1.EventTypeWarning, "BackOff", "back-off")
	r.Event(PodRef(pod, "app"), corev1.EventTypeWarning, "BackOff", "back-off")
	select {
	case <-changed:
	default:
		t.Fatal("Changed not signalled")
	}
	evs := r.List()
	if len(evs) != 1 || evs[0].Count != 2 || evs[0].InvolvedObject.FieldPath != "spec.containers{app}" || evs[0].Source.Host != "n1" {
		t.Fatalf("events %+v", evs)
	}
	r.Event(PodRef(pod, "init"), corev1.EventTypeNormal, "Started", "Started container init")
	if got := r.List()[1].InvolvedObject.FieldPath; got != "spec.initContainers{init}" {
		t.Errorf("field path %q", got)
	}
	// The ring is bounded; the oldest goes first.
	r.Event(PodRef(pod, ""), corev1.EventTypeNormal, "A", "a")
	r.Event(PodRef(pod, ""), corev1.EventTypeNormal, "B", "b")
	evs = r.List()
	if len(evs) != 3 || evs[0].Reason != "Started" || evs[2].Reason != "B" {
		t.Errorf("ring %v", evs)
	}
	// An evicted event is not aggregated into.
	r.Event(PodRef(pod, "app"), corev1.EventTypeWarning, "BackOff", "back-off")
	if evs := r.List(); evs[2].Reason != "BackOff" || evs[2].Count != 1 {
		t.Errorf("after eviction %v", evs[2])
	}
}

// As the kubelet's spam filter: a burst of 25 distinct events per object,
// then one per 5 minutes; repeats of one event only bump its count.
func TestRateLimitPerObject(t *testing.T) {
	r := New("n1", 1000, nil)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u"}}
	for i := 0; i < 40; i++ {
		r.Event(PodRef(pod, ""), corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("probe failed %d", i))
	}
	if n := len(r.List()); n != 25 {
		t.Fatalf("%d events kept, want the burst of 25", n)
	}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "default", UID: "v"}}
	r.Event(PodRef(other, ""), corev1.EventTypeNormal, "Started", "x")
	if n := len(r.List()); n != 26 {
		t.Errorf("another object is limited too: %d", n)
	}
	now = now.Add(5 * time.Minute)
	r.Event(PodRef(pod, ""), corev1.EventTypeWarning, "Unhealthy", "later")
	if n := len(r.List()); n != 27 {
		t.Errorf("no token after 5 minutes: %d", n)
	}
}
