// Package events owns the node agent's record of what happened to its pods:
// Kubernetes v1 Events (Pulling, Created, Started, Killing, BackOff,
// Unhealthy, ...), aggregated as the kubelet's recorder does (a repeat of the
// same event bumps its count), kept in a bounded in-memory ring, readable with
// no API server, and handed to whoever publishes them to one.
package events

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Recorder records events. It is safe for concurrent use.
type Recorder struct {
	node string
	log  *slog.Logger
	now  func() time.Time
	max  int

	mu sync.Mutex
	// ring holds events oldest first; byKey finds one to aggregate into.
	ring  []*corev1.Event
	byKey map[string]*corev1.Event
	// changed is closed and replaced whenever an event is recorded.
	changed chan struct{}
	// lastName is the last name time given out.
	lastName int64
	// buckets rate-limit new events per object, as the kubelet's spam
	// filter: a burst of 25, then one per 5 minutes.
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const (
	spamBurst  = 25
	spamRefill = 5 * time.Minute
)

// allowLocked takes a token for a new event about the object, if any.
func (r *Recorder) allowLocked(obj string, now time.Time) bool {
	b := r.buckets[obj]
	if b == nil {
		b = &bucket{tokens: spamBurst, last: now}
		r.buckets[obj] = b
	}
	b.tokens = min(spamBurst, b.tokens+float64(now.Sub(b.last))/float64(spamRefill))
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// New returns a recorder for node keeping at most max events.
func New(node string, max int, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{node: node, log: log, now: time.Now, max: max, byKey: map[string]*corev1.Event{}, changed: make(chan struct{}), buckets: map[string]*bucket{}}
}

// PodRef refers to a pod, or to one of its containers when container is set.
func PodRef(pod *corev1.Pod, container string) corev1.ObjectReference {
	ref := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
	if container != "" {
		ref.FieldPath = "spec.containers{" + container + "}"
		for _, c := range pod.Spec.InitContainers {
			if c.Name == container {
				ref.FieldPath = "spec.initContainers{" + container + "}"
			}
		}
	}
	return ref
}

// NodeRef refers to the node.
func (r *Recorder) NodeRef() corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: r.node, UID: "" /* the Node's UID is the API's */}
}

// Event records one event. eventType is corev1.EventTypeNormal or EventTypeWarning.
func (r *Recorder) Event(ref corev1.ObjectReference, eventType, reason, message string) {
	now := metav1.NewTime(r.now())
	key := string(ref.UID) + "/" + ref.Namespace + "/" + ref.Name + "/" + ref.FieldPath + "/" + eventType + "/" + reason + "/" + message
	if eventType == corev1.EventTypeWarning {
		r.log.Warn("event", "object", ref.Kind+" "+ref.Namespace+"/"+ref.Name, "reason", reason, "message", message)
	} else {
		r.log.Debug("event", "object", ref.Kind+" "+ref.Namespace+"/"+ref.Name, "reason", reason, "message", message)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev, ok := r.byKey[key]; ok {
		ev.Count++
		ev.LastTimestamp = now
		r.bumpLocked()
		return
	}
	obj := string(ref.UID) + "/" + ref.Namespace + "/" + ref.Name
	if !r.allowLocked(obj, now.Time) {
		return // logged above; too many distinct events about this object
	}
	if len(r.buckets) > 4*r.max {
		r.buckets = map[string]*bucket{} // forget idle objects now and then
	}
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	ev := &corev1.Event{
		TypeMeta:            metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", ref.Name, r.nameTime()), Namespace: ns, CreationTimestamp: now},
		InvolvedObject:      ref,
		Reason:              reason,
		Message:             message,
		Type:                eventType,
		Count:               1,
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Source:              corev1.EventSource{Component: "kubelet", Host: r.node},
		ReportingController: "kubelet",
		ReportingInstance:   r.node,
	}
	r.ring = append(r.ring, ev)
	r.byKey[key] = ev
	if len(r.ring) > r.max {
		old := r.ring[0]
		r.ring = r.ring[1:]
		for k, e := range r.byKey {
			if e == old {
				delete(r.byKey, k)
			}
		}
	}
	r.bumpLocked()
}

func (r *Recorder) bumpLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// List returns copies of the recorded events, oldest first.
func (r *Recorder) List() []corev1.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]corev1.Event, len(r.ring))
	for i, e := range r.ring {
		out[i] = *e.DeepCopy()
	}
	return out
}

// Changed returns a channel closed at the next recorded event.
func (r *Recorder) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// nameTime is a strictly increasing UnixNano for event names: as the
// kubelet's, names sort in the order events happened (kubectl describe
// orders same-second events by name).
func (r *Recorder) nameTime() int64 {
	t := r.now().UnixNano()
	if t <= r.lastName {
		t = r.lastName + 1
	}
	r.lastName = t
	return t
}
