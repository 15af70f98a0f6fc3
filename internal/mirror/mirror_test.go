package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/ballast-dev/ballast/internal/testutil"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// fakeSource is the agent as the sync sees it.
type fakeSource struct {
	mu      sync.Mutex
	pods    []corev1.Pod
	events  []corev1.Event
	changed chan struct{}
	evCh    chan struct{}
	// rounds counts the sync loop's rounds: it asks for Changed at the top
	// of each, before syncing. round gets a value (when it has room) then.
	rounds int
	round  chan struct{}
}

func newSource(pods ...corev1.Pod) *fakeSource {
	return &fakeSource{pods: pods, changed: make(chan struct{}), evCh: make(chan struct{}), round: make(chan struct{}, 1)}
}

func (f *fakeSource) Pods() []corev1.Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]corev1.Pod, len(f.pods))
	for i := range f.pods {
		out[i] = *f.pods[i].DeepCopy()
	}
	return out
}

func (f *fakeSource) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rounds++
	select {
	case f.round <- struct{}{}:
	default:
	}
	return f.changed
}

func (f *fakeSource) roundsSoFar() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rounds
}

func (f *fakeSource) Events() []corev1.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]corev1.Event(nil), f.events...)
}

func (f *fakeSource) EventsChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.evCh
}

// setEvents replaces the events and signals it.
func (f *fakeSource) setEvents(evs []corev1.Event) {
	f.mu.Lock()
	f.events = evs
	close(f.evCh)
	f.evCh = make(chan struct{})
	f.mu.Unlock()
}

// set replaces the pods and signals a change (nil: signal only).
func (f *fakeSource) set(pods []corev1.Pod) {
	f.mu.Lock()
	if pods != nil {
		f.pods = pods
	}
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

type recorded struct {
	ref                     corev1.ObjectReference
	eventType, reason, text string
}

type fakeRecorder struct {
	mu     sync.Mutex
	events []recorded
}

func (r *fakeRecorder) Event(ref corev1.ObjectReference, eventType, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, recorded{ref, eventType, reason, message})
}

func (r *fakeRecorder) list() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.events...)
}

const testNode = "n1"

// staticPod is a static pod as the agent reports it: running, with the
// container's start time in ns as the runtime gives it.
func staticPod(name, hash string, started time.Time) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-" + testNode, Namespace: "default", UID: types.UID("static-" + name),
			Labels:      map[string]string{"app": name},
			Annotations: map[string]string{wellknown.AnnotationConfigHash: hash, wellknown.AnnotationManifest: "/etc/manifests/" + name + ".yaml"},
		},
		Spec: corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "app", Image: "hello:1"}}},
		Status: corev1.PodStatus{
			Phase:     corev1.PodRunning,
			StartTime: &metav1.Time{Time: started.Truncate(time.Second)},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
				LastTransitionTime: metav1.NewTime(started.Truncate(time.Second))}},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "app", Ready: true, Image: "hello:1", ContainerID: "containerd://abc",
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}},
			}},
		},
	}
}

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	src    *fakeSource
	rec    *fakeRecorder
	mu     sync.Mutex
	uids   int
	rv     int
	rvs    map[string]string  // resource/namespace/name -> resourceVersion stored
	done   map[string]int     // "update pods/status", "delete pods", ... -> writes the API applied
	lags   chan time.Duration // ObserveSyncLag's observations
}

// start runs the sync against a fake API that behaves as a real one where
// it matters here: it gives every object a UID and a resourceVersion,
// refuses an update from a stale copy with a Conflict, and stores objects
// as JSON (times at second precision).
func start(t *testing.T, pods ...corev1.Pod) *fixture {
	return startWith(t, 0, pods...)
}

// startWith starts the sync with a Lease duration (0: the default).
func startWith(t *testing.T, leaseDuration time.Duration, pods ...corev1.Pod) *fixture {
	return startTweaked(t, func(_ *fixture, o *Options) { o.LeaseDuration = leaseDuration }, pods...)
}

// startTweaked starts the sync after setup has seen the fixture (to add
// reactors to its fake API) and changed the options.
func startTweaked(t *testing.T, setup func(*fixture, *Options), pods ...corev1.Pod) *fixture {
	f := &fixture{t: t, client: fake.NewClientset(), src: newSource(pods...), rec: &fakeRecorder{},
		rvs: map[string]string{}, done: map[string]int{}, lags: make(chan time.Duration, 100)}
	key := func(a k8stesting.Action, ns, name string) string {
		return a.GetResource().Resource + "/" + ns + "/" + name
	}
	f.client.PrependReactor("create", "*", func(a k8stesting.Action) (bool, k8sruntime.Object, error) {
		o := a.(k8stesting.CreateAction).GetObject()
		if m, err := meta.Accessor(o); err == nil {
			if m.GetName() != "" {
				if _, err := f.client.Tracker().Get(a.GetResource(), m.GetNamespace(), m.GetName()); err == nil {
					return false, nil, nil // refused as it exists: nothing stored
				}
			}
			f.mu.Lock()
			if m.GetUID() == "" {
				f.uids++
				m.SetUID(types.UID(fmt.Sprintf("uid-%d", f.uids)))
			}
			f.rv++
			m.SetResourceVersion(fmt.Sprint(f.rv))
			f.rvs[key(a, m.GetNamespace(), m.GetName())] = m.GetResourceVersion()
			f.done["create "+a.GetResource().Resource]++
			f.mu.Unlock()
		}
		roundTrip(o)
		return false, nil, nil
	})
	f.client.PrependReactor("update", "*", func(a k8stesting.Action) (bool, k8sruntime.Object, error) {
		o := a.(k8stesting.UpdateAction).GetObject()
		if m, err := meta.Accessor(o); err == nil {
			f.mu.Lock()
			k := key(a, m.GetNamespace(), m.GetName())
			if rv := m.GetResourceVersion(); rv != "" && rv != f.rvs[k] {
				f.mu.Unlock()
				return true, nil, apierrors.NewConflict(a.GetResource().GroupResource(), m.GetName(),
					fmt.Errorf("the object has been modified; resourceVersion %s, stored %s", rv, f.rvs[k]))
			}
			f.rv++
			m.SetResourceVersion(fmt.Sprint(f.rv))
			f.rvs[k] = m.GetResourceVersion()
			f.done["update "+a.GetResource().Resource+"/"+a.GetSubresource()]++
			f.mu.Unlock()
		}
		roundTrip(o)
		return false, nil, nil
	})
	f.client.PrependReactor("delete", "*", func(a k8stesting.Action) (bool, k8sruntime.Object, error) {
		d := a.(k8stesting.DeleteAction)
		if _, err := f.client.Tracker().Get(d.GetResource(), d.GetNamespace(), d.GetName()); err == nil {
			f.mu.Lock()
			delete(f.rvs, key(a, d.GetNamespace(), d.GetName()))
			f.done["delete "+a.GetResource().Resource]++
			f.mu.Unlock()
		}
		return false, nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	o := Options{Client: f.client, NodeName: testNode, HostIP: "10.0.0.1", Source: f.src, Recorder: f.rec,
		ObserveSyncLag: func(d time.Duration) {
			select {
			case f.lags <- d:
			default:
			}
		},
		Log: slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if setup != nil {
		setup(f, &o)
	}
	go func() {
		defer close(done)
		_ = Run(ctx, o)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// roundTrip makes o what an API server would store: decoded from its JSON.
func roundTrip(o k8sruntime.Object) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	b, _ := json.Marshal(p)
	var out corev1.Pod
	if json.Unmarshal(b, &out) == nil {
		*p = out
	}
}

func (f *fixture) eventually(what string, check func() error) {
	f.t.Helper()
	if err := testutil.Poll(10*time.Second, check); err != nil {
		f.t.Fatalf("%s: %v", what, err)
	}
}

// nextRound signals a change (pods unchanged) and waits until the sync
// loop has begun a round after it.
func (f *fixture) nextRound() {
	f.t.Helper()
	n := f.src.roundsSoFar()
	f.src.set(nil)
	for f.src.roundsSoFar() <= n {
		select {
		case <-f.src.round:
		case <-time.After(10 * time.Second):
			f.t.Fatal("the sync loop does not go round")
		}
	}
}

// settled returns once the sync has finished a whole round that began
// after everything the test did before: a round begins after one signal,
// and the next round only after it ended.
func (f *fixture) settled() {
	f.t.Helper()
	f.nextRound()
	f.nextRound()
}

func (f *fixture) get(name string) (*corev1.Pod, error) {
	return f.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
}

// mirror waits for the mirror of name with status phase Running and returns it.
func (f *fixture) mirror(name string, ok func(*corev1.Pod) error) *corev1.Pod {
	f.t.Helper()
	var p *corev1.Pod
	f.eventually("mirror pod "+name, func() error {
		var err error
		p, err = f.get(name)
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %q", p.Status.Phase)
		}
		if ok != nil {
			return ok(p)
		}
		return nil
	})
	return p
}

// statusUpdates counts the pod status updates the API applied so far.
func (f *fixture) statusUpdates() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done["update pods/status"]
}

// countOf counts the requests of verb on resource (not its subresources).
func (f *fixture) countOf(verb, resource string) int {
	n := 0
	for _, a := range f.client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource && a.GetSubresource() == "" {
			n++
		}
	}
	return n
}

// deletes counts the pod deletes the API applied so far.
func (f *fixture) deletes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done["delete pods"]
}

func TestMirrorCreated(t *testing.T) {
	f := start(t, staticPod("web", "h1", time.Now()))
	p := f.mirror("web-n1", nil)
	if p.Annotations[wellknown.AnnotationConfigMirror] != "h1" {
		t.Errorf("config.mirror annotation %q, want the hash h1", p.Annotations[wellknown.AnnotationConfigMirror])
	}
	node, err := f.client.CoreV1().Nodes().Get(context.Background(), testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.OwnerReferences) != 1 {
		t.Fatalf("ownerReferences %+v", p.OwnerReferences)
	}
	o := p.OwnerReferences[0]
	if o.Kind != "Node" || o.APIVersion != "v1" || o.Name != testNode || o.UID != node.UID || node.UID == "" {
		t.Errorf("ownerReference %+v, want Node %s uid %s", o, testNode, node.UID)
	}
	if p.Spec.NodeName != testNode || p.Labels["app"] != "web" {
		t.Errorf("spec.nodeName %q labels %v", p.Spec.NodeName, p.Labels)
	}
}

func TestMirrorStatusUpdatedOnlyOnChange(t *testing.T) {
	started := time.Now() // ns precision, as from the runtime
	sp := staticPod("web", "h1", started)
	f := start(t, sp)
	f.mirror("web-n1", func(p *corev1.Pod) error {
		if len(p.Status.ContainerStatuses) == 0 {
			return fmt.Errorf("no container status yet")
		}
		return nil
	})
	f.settled()
	base := f.statusUpdates()
	if base != 1 {
		t.Errorf("%d status updates for one new mirror, want 1", base)
	}
	// The agent signals changes that leave the status as it is: no update.
	for range 5 {
		f.nextRound()
	}
	f.settled()
	if n := f.statusUpdates(); n != base {
		t.Fatalf("%d status updates after 5 signals with no status change, want none", n-base)
	}
	// A real change: exactly one update. (A copy: the source's pods share
	// their slices with sp, and the sync reads them concurrently.)
	sp = *sp.DeepCopy()
	sp.Status.ContainerStatuses[0].Ready = false
	sp.Status.Conditions[0].Status = corev1.ConditionFalse
	f.src.set([]corev1.Pod{sp})
	f.mirror("web-n1", func(p *corev1.Pod) error {
		if p.Status.ContainerStatuses[0].Ready {
			return fmt.Errorf("still ready")
		}
		return nil
	})
	f.settled()
	if n := f.statusUpdates(); n != base+1 {
		t.Errorf("%d status updates for one status change, want 1", n-base)
	}
}

// A status someone else wrote through the API is put back to the node's,
// however often the node synced the pod before (a sync remembers what it
// derived from a copy of the pod only for that copy's resourceVersion).
func TestMirrorStatusWrittenByOthersPutBack(t *testing.T) {
	f := start(t, staticPod("web", "h1", time.Now()))
	old := f.mirror("web-n1", nil)
	f.settled()
	for range 3 {
		f.nextRound()
	}
	f.settled()
	base := f.statusUpdates()
	other := old.DeepCopy()
	other.Status.Phase = corev1.PodFailed
	if _, err := f.client.CoreV1().Pods("default").UpdateStatus(context.Background(), other, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.nextRound()
	f.mirror("web-n1", nil) // Running again
	f.settled()
	if n := f.statusUpdates(); n != base+2 {
		t.Errorf("%d status updates after another writer's, want 2 (theirs, then the node's)", n-base)
	}
}

func TestMirrorRecreatedWhenDeleted(t *testing.T) {
	f := start(t, staticPod("web", "h1", time.Now()))
	old := f.mirror("web-n1", nil)
	if err := f.client.CoreV1().Pods("default").Delete(context.Background(), "web-n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.mirror("web-n1", func(p *corev1.Pod) error {
		if p.UID == old.UID {
			return fmt.Errorf("not recreated yet")
		}
		return nil
	})
}

// A real kube-apiserver deletes a pod bound to a node gracefully: it sets
// deletionTimestamp and waits for the node. The node finishes the deletion
// and recreates the mirror, as the kubelet does.
func TestMirrorRecreatedWhenDeletedGracefully(t *testing.T) {
	f := start(t, staticPod("web", "h1", time.Now()))
	old := f.mirror("web-n1", nil)
	terminating := old.DeepCopy()
	now := metav1.Now()
	terminating.DeletionTimestamp = &now
	terminating.DeletionGracePeriodSeconds = ptr.To(int64(30))
	if _, err := f.client.CoreV1().Pods("default").Update(context.Background(), terminating, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.mirror("web-n1", func(p *corev1.Pod) error {
		if p.UID == old.UID || p.DeletionTimestamp != nil {
			return fmt.Errorf("still the terminating mirror")
		}
		return nil
	})
}

func TestMirrorOutdatedReplaced(t *testing.T) {
	f := start(t, staticPod("web", "h1", time.Now()))
	old := f.mirror("web-n1", nil)
	sp := staticPod("web", "h2", time.Now())
	sp.Spec.Containers[0].Image = "hello:2"
	f.src.set([]corev1.Pod{sp})
	p := f.mirror("web-n1", func(p *corev1.Pod) error {
		if p.Annotations[wellknown.AnnotationConfigMirror] != "h2" {
			return fmt.Errorf("config.mirror %q", p.Annotations[wellknown.AnnotationConfigMirror])
		}
		return nil
	})
	if p.UID == old.UID || p.Spec.Containers[0].Image != "hello:2" {
		t.Errorf("outdated mirror not replaced: uid %s (was %s), image %s", p.UID, old.UID, p.Spec.Containers[0].Image)
	}
}

func TestMirrorEditedSpecReverted(t *testing.T) {
	f := start(t, staticPod("web", "h1", time.Now()))
	old := f.mirror("web-n1", nil)
	f.settled()
	edited := old.DeepCopy()
	edited.Spec.Containers[0].Image = "evil:1"
	if _, err := f.client.CoreV1().Pods("default").Update(context.Background(), edited, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := f.mirror("web-n1", func(p *corev1.Pod) error {
		if p.Spec.Containers[0].Image != "hello:1" {
			return fmt.Errorf("image %s", p.Spec.Containers[0].Image)
		}
		if p.UID == old.UID {
			return fmt.Errorf("not put back yet")
		}
		return nil
	})
	if p.Annotations[wellknown.AnnotationConfigMirror] != "h1" {
		t.Errorf("config.mirror %q", p.Annotations[wellknown.AnnotationConfigMirror])
	}
	var found bool
	for _, e := range f.rec.list() {
		if e.reason == "MirrorPodReverted" {
			found = true
			if e.eventType != corev1.EventTypeWarning || e.ref.Kind != "Pod" || e.ref.Name != "web-n1" || e.ref.Namespace != "default" {
				t.Errorf("event %+v", e)
			}
		}
	}
	if !found {
		t.Errorf("no MirrorPodReverted event; recorded %+v", f.rec.list())
	}
}

func TestMirrorDeletedWithStaticPod(t *testing.T) {
	db := staticPod("db", "h9", time.Now())
	f := start(t, staticPod("web", "h1", time.Now()), db)
	f.mirror("web-n1", nil)
	f.mirror("db-n1", nil)
	f.settled()
	f.src.set([]corev1.Pod{db})
	f.eventually("mirror of the removed static pod deleted", func() error {
		if _, err := f.get("web-n1"); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	if _, err := f.get("db-n1"); err != nil {
		t.Errorf("the other mirror: %v", err)
	}
	if n := f.deletes(); n != 1 {
		t.Errorf("%d deletes, want 1", n)
	}
}

var logOut io.Writer = os.Stderr

// The fake clientset sends no bookmark at the end of a watch's initial
// events, so the informer lists and watches here as against older servers.
func TestMain(m *testing.M) {
	os.Setenv("KUBE_FEATURE_WatchListClient", "false")
	if os.Getenv("MIRROR_TEST_LOG") == "" {
		logOut = io.Discard
	}
	os.Exit(m.Run())
}

// TestMirrorSyncLagObserved: each change of the agent's pods is followed by
// one observation of the time it took to bring the mirrors in step.
func TestMirrorSyncLagObserved(t *testing.T) {
	f := start(t, staticPod("web", "h1", time.Now()))
	f.mirror("web-n1", nil)
	for len(f.lags) > 0 {
		<-f.lags
	}
	sp := staticPod("web", "h1", time.Now())
	sp.Status.ContainerStatuses[0].Ready = false
	f.src.set([]corev1.Pod{sp})
	select {
	case d := <-f.lags:
		if d < 0 {
			t.Errorf("negative lag %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no sync lag observed after the agent's pods changed")
	}
}

// TestLeaseRenewedWithOneWrite: after the first renewal (read, then
// create), each renewal is a single conditional update of the copy the API
// returned; when that copy is outdated the Lease is read again.
func TestLeaseRenewedWithOneWrite(t *testing.T) {
	f := startWith(t, 200*time.Millisecond) // renewed every 50 ms
	f.eventually("5 renewals", func() error {
		if n := f.countOf("update", "leases"); n < 5 {
			return fmt.Errorf("%d lease updates", n)
		}
		return nil
	})
	if n := f.countOf("get", "leases"); n != 1 {
		t.Fatalf("%d lease reads for %d renewals, want 1 (before the first)", n, f.countOf("update", "leases"))
	}
	// Someone else changed it: the next renewal conflicts, reads, and renews.
	f.client.PrependReactor("update", "leases", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		f.client.ReactionChain = f.client.ReactionChain[1:] // once
		return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), testNode, errors.New("the object has been modified"))
	})
	f.eventually("a read after the conflict", func() error {
		if n := f.countOf("get", "leases"); n != 2 {
			return fmt.Errorf("%d lease reads", n)
		}
		return nil
	})
}

// TestEventCountUpdatedWithOneWrite: a count change of a posted event is
// one update of the copy the API returned, with no read first.
func TestEventCountUpdatedWithOneWrite(t *testing.T) {
	f := start(t)
	ev := func(count int32) corev1.Event {
		return corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web.1", Namespace: "default"}, Count: count, Reason: "BackOff",
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-n1", Namespace: "default"}}
	}
	f.src.setEvents([]corev1.Event{ev(1)})
	for c := int32(2); c <= 4; c++ {
		f.eventually(fmt.Sprintf("count %d posted", c-1), func() error {
			o, err := f.client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("events"), "default", "web.1")
			if err != nil {
				return err
			}
			if got := o.(*corev1.Event); got.Count != c-1 {
				return fmt.Errorf("count %d", got.Count)
			}
			return nil
		})
		f.src.setEvents([]corev1.Event{ev(c)})
	}
	f.eventually("count 4 posted", func() error {
		if n := f.countOf("update", "events"); n != 3 {
			return fmt.Errorf("%d event updates", n)
		}
		return nil
	})
	reads := 0
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "get" && a.GetResource().Resource == "events" {
			reads++
		}
	}
	if creates := f.countOf("create", "events"); creates != 1 || reads != 0 {
		t.Fatalf("%d creates and %d reads of events for 3 count changes, want 1 and none", creates, reads)
	}
}

// TestMirrorStatusUnderChurn: with many pods whose status changes while the
// informer lags, each change is written once and nothing else is.
func TestMirrorStatusUnderChurn(t *testing.T) {
	started := time.Now()
	var pods []corev1.Pod
	for i := range 20 {
		pods = append(pods, staticPod(fmt.Sprintf("p%d", i), "h1", started))
	}
	f := start(t, pods...)
	for i := range pods {
		f.mirror(pods[i].Name, nil)
	}
	f.settled()
	base := f.statusUpdates()
	changes := 0
	for round := range 10 {
		pods = append([]corev1.Pod(nil), pods...)
		i := (round * 7) % len(pods)
		p := *pods[i].DeepCopy()
		p.Status.ContainerStatuses[0].RestartCount = int32(round + 1)
		pods[i] = p
		changes++
		f.src.set(pods)
		f.src.set(nil) // and a signal with nothing new, at once
	}
	last := pods[(9*7)%len(pods)]
	f.mirror(last.Name, func(p *corev1.Pod) error {
		if p.Status.ContainerStatuses[0].RestartCount != 10 {
			return fmt.Errorf("restart count %d", p.Status.ContainerStatuses[0].RestartCount)
		}
		return nil
	})
	f.settled()
	if n := f.statusUpdates() - base; n != changes {
		t.Fatalf("%d status updates for %d status changes under churn, want one each", n, changes)
	}
}
