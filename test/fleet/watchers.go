package fleet

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Watchers are client-go informers on all pods, each with a connection
// of its own, reading protobuf, that measure how late they see the fleet's
// status changes.
type Watchers struct {
	mu     sync.Mutex
	delays []time.Duration
	synced atomic.Int64
	events atomic.Int64
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// slimPod is what a watcher keeps of a pod: its metadata and the time of
// its last change. A *corev1.Pod, even with only these fields set, costs
// ~1.4 KB (its spec and status are structs held by value): 100 informers
// of 30,000 pods kept 4 GB of them in the simulator.
type slimPod struct {
	metav1.ObjectMeta
	changed time.Time
}

// slim is the informers' transform: a pod becomes its slimPod.
func slim(o any) (any, error) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return o, nil
	}
	return &slimPod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, ResourceVersion: p.ResourceVersion, UID: p.UID},
		changed: ChangeTime(p)}, nil
}

// syncingAtOnce bounds the informers getting their initial pods at once:
// until its initial events end, client-go keeps every pod an informer
// receives in full (the slim transform applies after), so 100 informers
// of 30,000 pods syncing together held ~20 GB in the simulator.
const syncingAtOnce = 10

// StartWatchers starts n informers on all pods with base's server and
// identity; each keeps only a slim copy of each pod. At most
// syncingAtOnce of them get their initial pods at a time.
func StartWatchers(ctx context.Context, base *rest.Config, n int) (*Watchers, error) {
	wctx, cancel := context.WithCancel(ctx)
	w := &Watchers{stop: cancel}
	syncing := make(chan struct{}, syncingAtOnce)
	for i := range n {
		rc := rest.CopyConfig(base)
		rc.QPS, rc.Burst, rc.Timeout = -1, 0, 0
		// As kube-controller-manager, the scheduler and most controllers
		// read: in protobuf, which costs a client a fraction of JSON's
		// decoding (with JSON, 100 informers of all pods take more CPU
		// than the servers under test on this 2-core machine).
		rc.ContentType = "application/vnd.kubernetes.protobuf"
		rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		ownConnection(rc)
		rc.UserAgent = fmt.Sprintf("fleet-watcher-%d", i)
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			cancel()
			return nil, err
		}
		f := informers.NewSharedInformerFactory(cs, 0)
		inf := f.Core().V1().Pods().Informer()
		if err := inf.SetTransform(slim); err != nil {
			cancel()
			return nil, err
		}
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(oldObj, newObj any) {
				o, ok1 := oldObj.(*slimPod)
				n, ok2 := newObj.(*slimPod)
				if !ok1 || !ok2 {
					return
				}
				w.events.Add(1)
				at := n.changed
				if at.IsZero() || at.Equal(o.changed) {
					return
				}
				d := time.Since(at)
				w.mu.Lock()
				w.delays = append(w.delays, d)
				w.mu.Unlock()
			},
		})
		w.wg.Go(func() {
			select {
			case syncing <- struct{}{}:
			case <-wctx.Done():
				return
			}
			f.Start(wctx.Done())
			f.WaitForCacheSync(wctx.Done())
			<-syncing
			w.synced.Add(1)
			<-wctx.Done()
			f.Shutdown()
		})
	}
	return w, nil
}

// WaitSynced waits until every informer has listed, or ctx ends.
func (w *Watchers) WaitSynced(ctx context.Context, n int) error {
	for w.synced.Load() < int64(n) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleet: %d of %d watchers synced", w.synced.Load(), n)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// Delays summarizes how late the watchers saw status changes.
func (w *Watchers) Delays() Summary {
	w.mu.Lock()
	ds := append([]time.Duration(nil), w.delays...)
	w.mu.Unlock()
	return Summarize(ds, 0)
}

// Reset forgets the delays seen so far.
func (w *Watchers) Reset() {
	w.mu.Lock()
	w.delays = nil
	w.mu.Unlock()
}

// Events is how many updates the watchers received in all.
func (w *Watchers) Events() int64 { return w.events.Load() }

// Stop ends the informers.
func (w *Watchers) Stop() {
	w.stop()
	w.wg.Wait()
}
