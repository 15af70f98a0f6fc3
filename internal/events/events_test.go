package events

import (
	"testing"

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
