// Package mirror owns the node agent's side of an API server: registering
// the Node and keeping its status, renewing its Lease, keeping one mirror
// pod per static pod (created, status patched on change, recreated at once
// when deleted, replaced when outdated, removed with its file), and
// publishing the agent's events. The API is never on the path of a pod: when
// it is unreachable the agent runs on, and this package catches up when it
// returns.
package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/ballast-dev/ballast/internal/hostinfo"
	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/podstatus"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// Source is what the agent offers: the pods it runs (with status), a signal
// when they change, and its events.
type Source interface {
	Pods() []corev1.Pod
	Changed() <-chan struct{}
	Events() []corev1.Event
	EventsChanged() <-chan struct{}
}

// ProblemSource is implemented by a Source that knows the manifest files it
// cannot use (the agent); each is then reported as a Warning event.
type ProblemSource interface {
	ManifestProblems() []localapi.ManifestProblem
}

// RuntimeReporter is implemented by a Source that knows whether its
// container runtime answers (the agent): the Node's Ready condition says so.
type RuntimeReporter interface {
	RuntimeReady() bool
}

// Recorder records an event.
type Recorder interface {
	Event(ref corev1.ObjectReference, eventType, reason, message string)
}

// Options configure the sync.
type Options struct {
	Client   kubernetes.Interface
	NodeName string
	HostIP   string
	// RuntimeVersion is reported in the Node's nodeInfo ("containerd://1.6.20").
	RuntimeVersion string
	Source         Source
	// Recorder records events about mirror pods (for example a reverted edit).
	Recorder Recorder
	Log      *slog.Logger
	// LeaseDuration is the Lease's duration (40 s); it is renewed every quarter of it.
	LeaseDuration time.Duration
	// KubeletPort is the node's HTTPS API port, reported in the Node's
	// status.daemonEndpoints (0: none).
	KubeletPort int32
	// NodeAnnotations are set on the Node (for example the pinned serving
	// certificate of the kubelet API).
	NodeAnnotations map[string]string
	// ObserveSyncLag, if set, is given the time from each change of the
	// agent's pods to the end of the sync that brought the mirror pods in
	// step (internal/nodemetrics' mirror sync lag).
	ObserveSyncLag func(time.Duration)
	// ManifestDir is the manifest directory (absolute): a problem of it
	// (it cannot be read) is a ManifestDirectoryUnavailable event, not an
	// InvalidManifest one.
	ManifestDir string
	// Disk, if set, says whether the disk holding the node's data is under
	// pressure: the Node's DiskPressure condition.
	Disk DiskReporter

	// now is the clock of the retries' back-off (nil: time.Now); for tests.
	now func() time.Time
}

// DiskReporter tells whether the node's disk is under pressure, and why
// (internal/diskspace.Monitor).
type DiskReporter interface {
	Pressure() (bool, string)
}

// Run keeps the API in step with the node until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 40 * time.Second
	}
	s := &syncer{o: o, log: o.Log, specs: map[types.UID]corev1.PodSpec{}, statuses: map[types.UID][]byte{},
		seen: map[types.UID]seenCopy{}, agentStatus: map[string]agentStatus{},
		posted: map[string]*corev1.Event{}, retries: newRetries(o.now)}
	return s.run(ctx)
}

type syncer struct {
	o       Options
	log     *slog.Logger
	nodeUID types.UID
	// posted maps an agent event's name to the event as the API last
	// returned it, so a count update is one conditional write.
	posted map[string]*corev1.Event
	// lease is the Lease as the API last returned it, so a renewal is one
	// conditional write (nil: read it first).
	lease *coordinationv1.Lease
	// statuses remembers, by mirror pod UID, the status last written (as
	// statusJSON), so that a status the informer has not caught up with
	// yet is not written twice.
	statuses map[types.UID][]byte
	// seen and agentStatus memoize what a sync derives, so that a sync
	// of a node's pods marshals and compares only what changed (a fleet's
	// nodes sync hundreds of times a second): seen, by mirror pod UID, the
	// informer's copy at one resourceVersion; agentStatus, by pod key, the
	// agent's status last seen.
	seen        map[types.UID]seenCopy
	agentStatus map[string]agentStatus
	// specs remembers, by mirror pod UID, the spec the API stored when the
	// pod was created (defaults included), to notice edits by others.
	specs map[types.UID]corev1.PodSpec
	// reported maps a manifest file to the error last reported as an event.
	reported map[string]string
	// readyPosted is the Ready status last posted, readySince its transition.
	readyPosted *bool
	readySince  metav1.Time
	// refused maps a mirror pod to why the API server last refused to
	// create it, logged once (a kube-apiserver refuses mirror pods that use
	// ConfigMaps or Secrets: NodeRestriction).
	refused map[string]string
	// retries spaces the tries of writes that failed.
	retries *retries
	// diskPosted is the DiskPressure status last posted, diskSince its
	// transition.
	diskPosted *bool
	diskSince  metav1.Time
	// identityChecked: whose credentials these are was said.
	identityChecked bool
}

func (s *syncer) run(ctx context.Context) error {
	// Register the node first (retrying, backing off, while the API is
	// away); say once whose credentials these are.
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		s.checkIdentity(ctx)
		err := s.ensureNode(ctx)
		if err == nil {
			break
		}
		s.log.Warn("cannot register the node with the API server; retrying (pods are not affected)", "in", wait, "err", err)
		s.reportProblems() // recorded now, published once the API answers
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	// lost is signalled when the pod watch fails (the API went away): the
	// loop then probes /healthz often and, once it answers, starts a fresh
	// informer (relist) and re-registers, instead of waiting out the
	// reflector's back-off (up to 30 s).
	lost := make(chan struct{}, 1)
	w := s.startWatch(ctx, poke, lost, 0)

	lease := time.NewTicker(s.o.LeaseDuration / 4)
	defer lease.Stop()
	nodeStatus := time.NewTicker(5 * time.Minute)
	defer nodeStatus.Stop()
	// While the API is away it is probed, backing off from probeMin to
	// probeMax.
	const probeMin, probeMax = 250 * time.Millisecond, 5 * time.Second
	probe := time.NewTimer(probeMin)
	probe.Stop()
	defer probe.Stop()
	probeWait := probeMin
	// retry wakes the loop when a write that failed is due again.
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	down := false
	var changedAt time.Time // when the agent's pods changed, until synced
	s.renewLease(ctx)
	var changed <-chan struct{}
	for {
		if changed != nil && changedAt.IsZero() {
			// A change signalled while the loop was busy: it is synced now.
			select {
			case <-changed:
				changedAt = time.Now()
			default:
			}
		}
		changed = s.o.Source.Changed()
		evChanged := s.o.Source.EventsChanged()
		s.reportProblems()
		if !down && w != nil {
			pods, err := w.lister.List(labels.Everything())
			if err == nil {
				s.syncPods(ctx, pods)
				if !changedAt.IsZero() && s.o.ObserveSyncLag != nil {
					s.o.ObserveSyncLag(time.Since(changedAt))
				}
				changedAt = time.Time{}
			}
			s.publishEvents(ctx)
			if (s.readyPosted != nil && *s.readyPosted != s.runtimeReady()) || (s.diskPosted != nil && *s.diskPosted != s.diskPressure()) {
				// Node status on change: the runtime went away or came
				// back, the disk filled up or has space again.
				if s.retries.due("node status") {
					err := s.ensureNode(ctx)
					s.retries.done("node status", err)
					if err != nil {
						s.log.Warn("updating node status", "err", err)
					}
				}
			}
			if at := s.retries.next(); !at.IsZero() {
				retry.Reset(max(at.Sub(s.retries.now()), 0))
			}
		}
		select {
		case <-ctx.Done():
			w.stop()
			return nil
		case <-changed:
			if changedAt.IsZero() {
				changedAt = time.Now()
			}
		case <-evChanged:
		case <-kick:
		case <-retry.C:
		case <-lost:
			if !down {
				s.log.Warn("lost the API server; pods are not affected, catching up when it returns")
				down = true
				probeWait = probeMin
				probe.Reset(probeWait)
			}
		case <-probe.C:
			probeWait = min(2*probeWait, probeMax)
			if !s.healthy(ctx) {
				probe.Reset(probeWait)
				continue
			}
			if err := s.ensureNode(ctx); err != nil {
				s.log.Debug("re-registering the node", "err", err)
				probe.Reset(probeWait)
				continue
			}
			w.stop()
			w = s.startWatch(ctx, poke, lost, 5*time.Second)
			if w == nil {
				probe.Reset(probeWait)
				continue // still down: keep probing
			}
			s.renewLease(ctx)
			down = false
			s.retries.reset() // what failed while it was away is tried at once
			s.log.Info("API server back; node and mirror pods resynced")
		case <-lease.C:
			if !down { // renewed at once when the API is back
				s.renewLease(ctx)
			}
		case <-nodeStatus.C:
			if down {
				continue
			}
			if err := s.ensureNode(ctx); err != nil {
				s.log.Warn("updating node status", "err", err)
			}
		}
	}
}

// checkIdentity says once whose credentials the node uses, from a
// SelfSubjectReview (kubectl auth whoami): a node agent must act as its
// node (system:node:<name>, group system:nodes); with other credentials (the
// server's admin kubeconfig, another node's) the API server refuses its
// mirror pods and events. An API that does not answer is asked again with
// the next registration; one that does not serve the review is not asked.
func (s *syncer) checkIdentity(ctx context.Context) {
	if s.identityChecked {
		return
	}
	r, err := s.o.Client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		if _, isStatus := err.(apierrors.APIStatus); isStatus {
			s.identityChecked = true
			s.log.Debug("the API server does not say whose credentials these are (SelfSubjectReview)", "err", err)
		}
		return
	}
	s.identityChecked = true
	u := r.Status.UserInfo
	want := "system:node:" + s.o.NodeName
	fix := fmt.Sprintf("make node credentials on the server with `ballast server token create --node %s` (then pass --server, --token and --certificate-authority), or use `ballast join`; pods run regardless", s.o.NodeName)
	switch other, isNode := strings.CutPrefix(u.Username, "system:node:"); {
	case u.Username == want && slices.Contains(u.Groups, "system:nodes"):
		s.log.Info("API credentials are the node's", "user", u.Username)
	case isNode:
		s.log.Warn(fmt.Sprintf("the API credentials are node %q's, not this node's (%q): the API server refuses mirror pods and events of %q; run with --node-name %s, or %s",
			other, s.o.NodeName, s.o.NodeName, other, fix), "user", u.Username, "groups", u.Groups)
	default:
		s.log.Warn(fmt.Sprintf("the API credentials are not a node's: they are user %q, and a node agent acts as %q (group system:nodes); the API server refuses mirror pods and events from other users: %s",
			u.Username, want, fix), "user", u.Username, "groups", u.Groups)
	}
}

// podWatch is one informer on the node's pods.
type podWatch struct {
	cancel context.CancelFunc
	lister corelisters.PodLister
}

func (w *podWatch) stop() {
	if w != nil {
		w.cancel()
	}
}

// startWatch starts an informer on the pods bound to this node. With wait >
// 0 it waits that long for the first list and returns nil if it fails; with
// 0 it waits until the first list succeeds (or ctx ends). A list or watch
// that fails for want of a connection signals lost (the reflector alone
// would retry with a back-off of up to 30 s).
func (s *syncer) startWatch(ctx context.Context, poke func(), lost chan struct{}, wait time.Duration) *podWatch {
	wctx, cancel := context.WithCancel(ctx)
	signal := func(err error) {
		if err == nil || wctx.Err() != nil {
			return
		}
		if _, isStatus := err.(apierrors.APIStatus); isStatus {
			return
		}
		s.log.Debug("pod watch failed", "err", err)
		select {
		case lost <- struct{}{}:
		default:
		}
	}
	sel := fields.OneTermEqualSelector("spec.nodeName", s.o.NodeName).String()
	pods := s.o.Client.CoreV1().Pods(metav1.NamespaceAll)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(lctx context.Context, lo metav1.ListOptions) (k8sruntime.Object, error) {
			lo.FieldSelector = sel
			l, err := pods.List(lctx, lo)
			signal(err)
			return l, err
		},
		WatchFuncWithContext: func(lctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
			lo.FieldSelector = sel
			wi, err := pods.Watch(lctx, lo)
			signal(err)
			return wi, err
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	_ = inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) { signal(err) })
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	})
	go inf.Run(wctx.Done())
	sctx := wctx
	if wait > 0 {
		var c context.CancelFunc
		sctx, c = context.WithTimeout(wctx, wait)
		defer c()
	}
	if !cache.WaitForCacheSync(sctx.Done(), inf.HasSynced) && wait > 0 {
		cancel()
		return nil
	}
	return &podWatch{cancel: cancel, lister: corelisters.NewPodLister(inf.GetIndexer())}
}

// healthy tells whether the API server answers /healthz.
func (s *syncer) healthy(ctx context.Context) bool {
	rc := s.o.Client.Discovery().RESTClient()
	if rc == nil || reflect.ValueOf(rc).IsNil() {
		_, err := s.o.Client.Discovery().ServerVersion()
		return err == nil
	}
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return rc.Get().AbsPath("/healthz").Do(hctx).Error() == nil
}

// reportProblems records a Warning event on the Node, and on each pod the
// file defined, for every manifest file the agent cannot use, once per
// distinct error.
func (s *syncer) reportProblems() {
	ps, ok := s.o.Source.(ProblemSource)
	if !ok || s.o.Recorder == nil {
		return
	}
	if s.reported == nil {
		s.reported = map[string]string{}
	}
	seen := map[string]bool{}
	var pods []corev1.Pod
	for _, p := range ps.ManifestProblems() {
		seen[p.File] = true
		if s.reported[p.File] == p.Error {
			continue
		}
		s.reported[p.File] = p.Error
		reason, msg, podMsg := "InvalidManifest", fmt.Sprintf("manifest file %s cannot be used: %s", p.File, p.Error),
			fmt.Sprintf("manifest file %s cannot be used: %s; the pod keeps running from the file's last good content", p.File, p.Error)
		if s.o.ManifestDir != "" && p.File == s.o.ManifestDir {
			reason, msg, podMsg = "ManifestDirectoryUnavailable", p.Error, p.Error
		}
		s.o.Recorder.Event(corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: s.o.NodeName}, corev1.EventTypeWarning, reason, msg)
		if len(p.Pods) > 0 && pods == nil {
			pods = s.o.Source.Pods()
		}
		for _, name := range p.Pods {
			for i := range pods {
				if pods[i].Name == name {
					pod := &pods[i]
					s.o.Recorder.Event(corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
						corev1.EventTypeWarning, reason, podMsg)
				}
			}
		}
	}
	for f := range s.reported {
		if !seen[f] {
			delete(s.reported, f)
		}
	}
}

// syncPods makes the API's mirror pods match the static pods.
func (s *syncer) syncPods(ctx context.Context, existing []*corev1.Pod) {
	byName := map[string]*corev1.Pod{}
	for _, p := range existing {
		if _, ok := p.Annotations[wellknown.AnnotationConfigMirror]; ok {
			byName[p.Namespace+"/"+p.Name] = p
		}
	}
	want := map[string]bool{}
	for _, sp := range s.o.Source.Pods() {
		key := sp.Namespace + "/" + sp.Name
		want[key] = true
		cur := byName[key]
		hash := sp.Annotations[wellknown.AnnotationConfigHash]
		if cur != nil && (cur.Annotations[wellknown.AnnotationConfigMirror] != hash || cur.DeletionTimestamp != nil) {
			// Outdated (the file changed: replace it), or deleted
			// gracefully (a real kube-apiserver waits for the node to
			// finish a pod's deletion): finish it and recreate the mirror
			// at once, as the kubelet does.
			if !s.deletePod(ctx, cur) {
				continue
			}
			cur = nil
		}
		if cur == nil {
			if s.retries.due("create " + key) {
				s.retries.done("create "+key, s.createMirror(ctx, &sp))
			}
			continue
		}
		seen, ok := s.seen[cur.UID]
		if !ok || seen.rv != cur.ResourceVersion || cur.ResourceVersion == "" {
			seen = seenCopy{rv: cur.ResourceVersion, status: statusJSON(cur.Status)}
			if known, ok := s.specs[cur.UID]; !ok {
				s.specs[cur.UID] = cur.Spec // adopted after a restart
			} else if !reflect.DeepEqual(cur.Spec, known) {
				// Changed by someone else (a real kube-apiserver allows it): put it back.
				if s.o.Recorder != nil {
					s.o.Recorder.Event(corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: sp.Namespace, Name: sp.Name, UID: sp.UID},
						corev1.EventTypeWarning, "MirrorPodReverted",
						fmt.Sprintf("the spec of mirror pod %s was changed through the API; it was put back to the manifest's (%s). Edit the file on node %s to change the pod", sp.Name, sp.Annotations[wellknown.AnnotationManifest], s.o.NodeName))
				}
				if s.deletePod(ctx, cur) && s.retries.due("create "+key) {
					s.retries.done("create "+key, s.createMirror(ctx, &sp))
				}
				continue
			}
			s.seen[cur.UID] = seen
		}
		status := s.agentStatusJSON(key, sp.Status)
		if bytes.Equal(seen.status, status) {
			continue
		}
		if posted, ok := s.statuses[cur.UID]; ok && bytes.Equal(posted, status) {
			continue // written already; the informer has not seen it yet
		}
		if !s.retries.due("status " + key) {
			continue
		}
		upd := cur.DeepCopy()
		upd.Status = sp.Status
		_, err := s.o.Client.CoreV1().Pods(sp.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
		s.retries.done("status "+key, err)
		if err != nil {
			if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				s.log.Warn("updating mirror pod status", "pod", key, "err", err)
			}
			continue // a conflict: the informer brings the newer pod, and a sync with it
		}
		s.statuses[cur.UID] = status
	}
	for key, p := range byName {
		if !want[key] {
			s.deletePod(ctx, p) // also finishes a graceful deletion
		}
	}
	s.retries.forget(func(k string) bool {
		verb, obj, _ := strings.Cut(k, " ")
		switch verb {
		case "create", "status":
			return want[obj]
		case "delete":
			_, ok := byName[obj]
			return ok
		}
		return true
	})
	live := map[types.UID]bool{}
	for _, p := range existing {
		live[p.UID] = true
	}
	gone := func(uid types.UID) bool { return !live[uid] }
	maps.DeleteFunc(s.specs, func(uid types.UID, _ corev1.PodSpec) bool { return gone(uid) })
	maps.DeleteFunc(s.statuses, func(uid types.UID, _ []byte) bool { return gone(uid) })
	maps.DeleteFunc(s.seen, func(uid types.UID, _ seenCopy) bool { return gone(uid) })
	maps.DeleteFunc(s.agentStatus, func(key string, _ agentStatus) bool { return !want[key] })
}

// seenCopy is what a sync derived from the informer's copy of a mirror
// pod at resourceVersion rv: its status as statusJSON (its spec was
// checked against the one created). A copy without a resourceVersion is
// never taken for one seen.
type seenCopy struct {
	rv     string
	status []byte
}

// agentStatus is a status of the agent's and its statusJSON.
type agentStatus struct {
	status corev1.PodStatus
	json   []byte
}

// agentStatusJSON is statusJSON of the agent's status st of pod key,
// marshalled again only when st changed (a deep compare costs a fraction
// of a marshal).
func (s *syncer) agentStatusJSON(key string, st corev1.PodStatus) []byte {
	if m, ok := s.agentStatus[key]; ok && reflect.DeepEqual(m.status, st) {
		return m.json
	}
	b := statusJSON(st)
	s.agentStatus[key] = agentStatus{status: *st.DeepCopy(), json: b}
	return b
}

// statusJSON is st as the API stores it, to compare statuses with: JSON,
// where times are at second precision (the runtime's container start and
// finish times are in ns, and would never equal the API's copy) and empty
// lists are left out like nil ones, without the conditions' probe times
// (which change without the status changing). Marshalling alone is
// enough: a JSON round trip and a deep compare cost a fleet's nodes
// several times more. A PodStatus holds nothing json.Marshal fails on
// (no channels, funcs or odd map keys), so its error is not looked at.
func statusJSON(st corev1.PodStatus) []byte {
	if len(st.Conditions) > 0 {
		st.Conditions = slices.Clone(st.Conditions)
		for i := range st.Conditions {
			st.Conditions[i].LastProbeTime = metav1.Time{}
		}
	}
	b, _ := json.Marshal(st)
	return b
}

func (s *syncer) mirrorSpec(sp *corev1.Pod) corev1.PodSpec {
	return sp.Spec
}

// createMirror creates the mirror pod of sp and sets its status; the
// error is the create's.
func (s *syncer) createMirror(ctx context.Context, sp *corev1.Pod) error {
	m := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: sp.Name, Namespace: sp.Namespace, Labels: sp.Labels, Annotations: map[string]string{},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: s.o.NodeName, UID: s.nodeUID, Controller: ptr.To(true)}},
		},
		Spec: s.mirrorSpec(sp),
	}
	for k, v := range sp.Annotations {
		m.Annotations[k] = v
	}
	m.Annotations[wellknown.AnnotationConfigMirror] = sp.Annotations[wellknown.AnnotationConfigHash]
	created, err := s.o.Client.CoreV1().Pods(sp.Namespace).Create(ctx, m, metav1.CreateOptions{})
	if err == nil {
		s.specs[created.UID] = created.Spec
	}
	if err != nil {
		key := sp.Namespace + "/" + sp.Name
		if !apierrors.IsAlreadyExists(err) && s.refused[key] != err.Error() {
			if s.refused == nil {
				s.refused = map[string]string{}
			}
			s.refused[key] = err.Error()
			s.log.Warn("creating mirror pod (logged once; the pod runs without it; tried again, backing off)", "pod", key, "err", err)
		}
		return err
	}
	delete(s.refused, sp.Namespace+"/"+sp.Name)
	created.Status = sp.Status
	if _, err := s.o.Client.CoreV1().Pods(sp.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		s.log.Warn("setting mirror pod status", "pod", sp.Namespace+"/"+sp.Name, "err", err)
	} else {
		s.statuses[created.UID] = statusJSON(sp.Status)
	}
	s.log.Info("mirror pod created", "pod", sp.Namespace+"/"+sp.Name)
	return nil
}

// deletePod deletes a mirror pod (that UID only), backing off when that
// fails; it tells whether the pod is gone.
func (s *syncer) deletePod(ctx context.Context, p *corev1.Pod) bool {
	key := "delete " + p.Namespace + "/" + p.Name
	if !s.retries.due(key) {
		return false
	}
	err := s.o.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &p.UID},
	})
	s.retries.done(key, err)
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		s.log.Warn("deleting mirror pod", "pod", p.Namespace+"/"+p.Name, "err", err)
		return false
	}
	return true
}

// ensureNode creates the Node or updates its status.
func (s *syncer) ensureNode(ctx context.Context) error {
	nodes := s.o.Client.CoreV1().Nodes()
	n, err := nodes.Get(ctx, s.o.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		n, err = nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: s.o.NodeName, Annotations: s.o.NodeAnnotations, Labels: podstatus.NodeLabels(s.o.NodeName)}}, metav1.CreateOptions{})
	}
	if err != nil {
		return err
	}
	stale := false
	for k, v := range s.o.NodeAnnotations {
		if n.Annotations[k] != v {
			stale = true
		}
	}
	if stale {
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		for k, v := range s.o.NodeAnnotations {
			n.Annotations[k] = v
		}
		if n, err = nodes.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	s.nodeUID = n.UID
	now := metav1.Now()
	n.Status = s.nodeStatus(now)
	_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

// diskPressure asks whether the node's disk is under pressure.
func (s *syncer) diskPressure() bool {
	if s.o.Disk == nil {
		return false
	}
	p, _ := s.o.Disk.Pressure()
	return p
}

// runtimeReady asks the source whether its container runtime answers.
func (s *syncer) runtimeReady() bool {
	if r, ok := s.o.Source.(RuntimeReporter); ok {
		return r.RuntimeReady()
	}
	return true
}

func (s *syncer) nodeStatus(now metav1.Time) corev1.NodeStatus {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(hostinfo.MemoryBytes(), resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	ready := s.runtimeReady()
	if s.readyPosted == nil || *s.readyPosted != ready {
		s.readySince = now
	}
	s.readyPosted = &ready
	cond := corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "ballast node agent is posting ready status",
		LastHeartbeatTime: now, LastTransitionTime: s.readySince,
	}
	if !ready {
		cond.Status, cond.Reason, cond.Message = corev1.ConditionFalse, "KubeletNotReady", "container runtime is down or not answering (pods keep running; new ones start when it is back)"
	}
	pressure, why := false, ""
	if s.o.Disk != nil {
		pressure, why = s.o.Disk.Pressure()
	}
	if s.diskPosted == nil || *s.diskPosted != pressure {
		s.diskSince = now
	}
	s.diskPosted = &pressure
	disk := corev1.NodeCondition{
		Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "ballast node agent has no disk pressure",
		LastHeartbeatTime: now, LastTransitionTime: s.diskSince,
	}
	if pressure {
		disk.Status, disk.Reason, disk.Message = corev1.ConditionTrue, "KubeletHasDiskPressure", why
	}
	return corev1.NodeStatus{
		Capacity:        capacity,
		Allocatable:     capacity,
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: s.o.HostIP}, {Type: corev1.NodeHostName, Address: s.o.NodeName}},
		Conditions:      []corev1.NodeCondition{disk, cond},
		NodeInfo:        nodeInfo(s.o.RuntimeVersion),
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: s.o.KubeletPort}},
	}
}

// renewLease renews the node's Lease: one conditional update of the copy
// the API last returned; only when that fails as outdated (or there is no
// copy yet) is the Lease read, or created, first.
func (s *syncer) renewLease(ctx context.Context) {
	leases := s.o.Client.CoordinationV1().Leases("kube-node-lease")
	now := metav1.NewMicroTime(time.Now())
	renew := func(l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
		l = l.DeepCopy()
		l.Spec.RenewTime = &now
		l.Spec.HolderIdentity = ptr.To(s.o.NodeName)
		return leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	if s.lease != nil {
		l, err := renew(s.lease)
		if err == nil {
			s.lease = l
			return
		}
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			s.log.Warn("renewing the node lease", "err", err)
			return
		}
		s.lease = nil // changed or removed by someone else: read it again
	}
	l, err := leases.Get(ctx, s.o.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: s.o.NodeName, Namespace: "kube-node-lease",
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: s.o.NodeName, UID: s.nodeUID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(s.o.NodeName), LeaseDurationSeconds: ptr.To(int32(s.o.LeaseDuration / time.Second)), RenewTime: &now},
		}, metav1.CreateOptions{})
	} else if err == nil {
		l, err = renew(l)
	}
	if err != nil {
		s.log.Warn("renewing the node lease", "err", err)
		return
	}
	s.lease = l
}

// publishEvents posts the agent's new events and count changes; a count
// change is one conditional update of the copy the API last returned
// (read again only when that is outdated).
func (s *syncer) publishEvents(ctx context.Context) {
	events := s.o.Source.Events()
	if len(s.posted) > 2*len(events) { // forget those the agent dropped
		keep := make(map[string]bool, len(events))
		for _, ev := range events {
			keep[ev.Name] = true
		}
		for name := range s.posted {
			if !keep[name] {
				delete(s.posted, name)
			}
		}
	}
	s.retries.forget(func(k string) bool {
		name, ok := strings.CutPrefix(k, "event ")
		return !ok || slices.ContainsFunc(events, func(e corev1.Event) bool { return e.Name == name })
	})
	for _, ev := range events {
		prev, seen := s.posted[ev.Name]
		if seen && prev.Count == ev.Count {
			continue
		}
		if !s.retries.due("event " + ev.Name) {
			continue
		}
		ev := ev
		if ev.InvolvedObject.Kind == "Node" {
			ev.InvolvedObject.UID = s.nodeUID
		}
		ev.ResourceVersion = ""
		evs := s.o.Client.CoreV1().Events(ev.Namespace)
		var out *corev1.Event
		var err error
		count := func(cur *corev1.Event) (*corev1.Event, error) {
			cur = cur.DeepCopy()
			cur.Count, cur.LastTimestamp = ev.Count, ev.LastTimestamp
			return evs.Update(ctx, cur, metav1.UpdateOptions{})
		}
		if seen {
			out, err = count(prev)
			if apierrors.IsConflict(err) {
				if prev, err = evs.Get(ctx, ev.Name, metav1.GetOptions{}); err == nil {
					out, err = count(prev)
				}
			}
			if apierrors.IsNotFound(err) { // expired (events live an hour): post it anew
				seen = false
			}
		}
		if !seen {
			out, err = evs.Create(ctx, &ev, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				out, err = evs.Get(ctx, ev.Name, metav1.GetOptions{})
				if err == nil && out.Count != ev.Count {
					out, err = count(out)
				}
			}
		}
		s.retries.done("event "+ev.Name, err)
		if err != nil {
			s.log.Debug("publishing event", "event", ev.Name, "err", err)
			continue
		}
		s.posted[ev.Name] = out
	}
}

func nodeInfo(runtimeVersion string) corev1.NodeSystemInfo {
	return corev1.NodeSystemInfo{
		OperatingSystem:         runtime.GOOS,
		Architecture:            runtime.GOARCH,
		KernelVersion:           hostinfo.KernelVersion(),
		OSImage:                 hostinfo.OSImage(),
		ContainerRuntimeVersion: runtimeVersion,
		KubeletVersion:          "v1.32.0+ballast",
	}
}
