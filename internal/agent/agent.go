// Package agent owns the node agent's state: one loop that takes the desired
// pods from the manifest source, what the runtime reports, and the results of
// runtime calls, decides with the engine what each pod needs, and hands the
// slow runtime calls to a bounded pool of workers, at most one call in flight
// per pod. It also publishes what it runs, with true status, for the local API.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/engine"
	"github.com/ballast-dev/ballast/internal/events"
	"github.com/ballast-dev/ballast/internal/podconfig"
	"github.com/ballast-dev/ballast/internal/podstatus"
	"github.com/ballast-dev/ballast/internal/prober"
	"github.com/ballast-dev/ballast/internal/registryauth"
	"github.com/ballast-dev/ballast/internal/source"
)

// AnnotationManifestError is set on a pod, in what the agent reports, while its
// manifest file cannot be used: the pod keeps running from its last good content.
const AnnotationManifestError = "ballast.dev/manifest-error"

// Options configure an Agent.
type Options struct {
	NodeName string
	DataDir  string
	HostIP   string
	Runtime  *cri.Runtime
	// RuntimeName prefixes container IDs in status ("containerd").
	RuntimeName string
	Engine      engine.Config
	// Workers bounds the pods being worked on at once (default 64).
	Workers int
	// Relist is how often the whole runtime state is read as a safety net
	// (default 10s); container exits arrive as events in between.
	Relist time.Duration
	// RetryInitial and RetryMax bound the back-off of a pod whose runtime
	// calls failed (runtime down, sandbox creation failed).
	RetryInitial, RetryMax time.Duration
	// ResolvConf is the node's resolver config given to pods (default /etc/resolv.conf).
	ResolvConf string
	Log        *slog.Logger
	Now        func() time.Time

	// Pulls configures image pulls: registry credentials and the timeout.
	Pulls registryauth.Config
}

// Agent keeps the pods of one node at their desired state.
type Agent struct {
	opts Options
	log  *slog.Logger
	obs  *cri.Observer
	exec *executor

	snapshots chan source.Snapshot
	imagesIn  chan struct{}
	view      atomic.Pointer[View]
	events    *events.Recorder
	changed   broadcast
	// runtimeReady: the last read of the runtime's state succeeded.
	runtimeReady atomic.Bool
	prober       *prober.Prober
	probeOut     chan prober.Result

	// Everything below is owned by the loop goroutine.
	pods      map[string]*podState // by UID
	problems  []source.Problem
	pulls     map[string]*engine.PullFailure
	haveFiles bool // a first snapshot arrived: pods not in it may be stopped
	snap      source.Snapshot
	relisting bool
	queue     []*podState
	probeKeys []prober.Key
}

type podState struct {
	uid     string
	desired *corev1.Pod
	file    string
	// kept is set when desired comes from the runtime's record because the
	// file cannot be read after an agent restart.
	kept     bool
	rt       *cri.PodRuntime
	inflight bool
	queued   bool
	dirty    bool
	wakeAt   time.Time
	waiting  map[string]engine.Waiting
	// execWaiting holds failures of the last runtime calls, by container.
	execWaiting map[string]engine.Waiting
	retry       time.Duration
	status      corev1.PodStatus
	startTime   time.Time
	// probes holds the latest probe results, by container name.
	probes map[string]engine.ProbeState
	// deadlineExceeded: activeDeadlineSeconds passed; the pod was killed for good.
	deadlineExceeded bool
}

// New returns an agent; Run starts it.
func New(opts Options) *Agent {
	if opts.Workers <= 0 {
		// Enough that a burst of new pods (a node's whole directory at boot)
		// reaches the runtime at once rather than in waves.
		opts.Workers = 64
	}
	if opts.Relist <= 0 {
		opts.Relist = 10 * time.Second
	}
	if opts.RetryInitial <= 0 {
		opts.RetryInitial = 500 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Engine == (engine.Config{}) {
		opts.Engine = engine.Defaults()
	}
	a := &Agent{
		opts:      opts,
		log:       opts.Log,
		obs:       cri.NewObserver(opts.Runtime, opts.NodeName),
		snapshots: make(chan source.Snapshot, 1),
		imagesIn:  make(chan struct{}, 1),
		pods:      map[string]*podState{},
		pulls:     map[string]*engine.PullFailure{},
	}
	a.exec = &executor{a: a}
	a.events = events.New(opts.NodeName, 1000, opts.Log.With("component", "events"))
	a.probeOut = make(chan prober.Result, 64)
	a.prober = prober.New(criExec{opts.Runtime}, a.probeOut, opts.Log.With("component", "prober"))
	a.view.Store(&View{})
	return a
}

// Snapshots is where the manifest source sends desired state.
func (a *Agent) Snapshots() chan<- source.Snapshot { return a.snapshots }

// ImagesArrived tells the agent new images were imported: pods waiting for an
// image try again at once.
func (a *Agent) ImagesArrived() {
	select {
	case a.imagesIn <- struct{}{}:
	default:
	}
}

type relistResult struct {
	pods map[string]*cri.PodRuntime
	err  error
}

type execResult struct {
	uid         string
	rt          *cri.PodRuntime // nil when it could not be read
	pulls       map[string]*engine.PullFailure
	pullsOK     []string
	execWaiting map[string]engine.Waiting
	err         error
}

// Run runs the loop until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	exits := make(chan cri.Exit, 64)
	reconnected := make(chan struct{}, 1)
	go a.prober.Run(ctx)
	go a.opts.Runtime.WatchExits(ctx, exits, func() {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	})
	relistDone := make(chan relistResult, 1)
	done := make(chan execResult, a.opts.Workers)
	jobs := make(chan job)
	for i := 0; i < a.opts.Workers; i++ {
		go a.exec.worker(ctx, jobs, done)
	}
	relist := func() {
		if a.relisting {
			return
		}
		a.relisting = true
		go func() {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			pods, err := a.obs.List(cctx, "")
			relistDone <- relistResult{pods, err}
		}()
	}
	relist()
	ticker := time.NewTicker(a.opts.Relist)
	defer ticker.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	byContainer := map[string]string{} // container or sandbox ID -> pod UID
	runtimeSeen := false

	var next job
	var jobsCh chan job
	for {
		select {
		case <-ctx.Done():
			return nil
		case snap := <-a.snapshots:
			a.snap = snap
			a.applySnapshot(snap)
		case ex := <-exits:
			if uid, ok := byContainer[ex.ID]; ok {
				if p := a.pods[uid]; p != nil {
					a.log.Debug("container exited", "pod", podName(p), "id", ex.ID, "exitCode", ex.ExitCode)
					a.refresh(ctx, p, ex.ID, done)
				}
			}
		case <-reconnected:
			a.log.Info("container runtime events reconnected; relisting")
			relist()
		case <-ticker.C:
			relist()
		case r := <-relistDone:
			a.relisting = false
			if r.err != nil {
				a.log.Warn("cannot read the container runtime's state; will retry", "err", r.err)
				if a.runtimeReady.Swap(false) {
					a.changed.fire()
				}
				break
			}
			if !a.runtimeReady.Swap(true) {
				a.changed.fire()
			}
			if !runtimeSeen {
				runtimeSeen = true
				a.log.Info("container runtime state read", "pods", len(r.pods))
			}
			a.applyRelist(r.pods)
			if a.haveFiles {
				a.applySnapshot(a.snap)
			}
			byContainer = a.index()
		case jobsCh <- next:
			a.queue = a.queue[1:]
			p := next.pod
			p.queued = false
			p.inflight = true
			p.dirty = false
		case r := <-done:
			a.applyResult(r)
			byContainer = a.index()
		case r := <-a.probeOut:
			a.applyProbe(r)
		case <-a.imagesIn:
			a.pulls = map[string]*engine.PullFailure{}
			a.exec.forgetImages()
			for _, p := range a.pods {
				a.markDirty(p)
			}
		case <-timer.C:
			now := a.opts.Now()
			for _, p := range a.pods {
				if !p.wakeAt.IsZero() && !now.Before(p.wakeAt) {
					p.wakeAt = time.Time{}
					a.markDirty(p)
				}
			}
		}
		if runtimeSeen && a.haveFiles {
			a.settle()
		}
		// Decide queued pods until one needs the runtime: it is offered to the
		// workers by the next select, the others wait their turn.
		jobsCh = nil
		for len(a.queue) > 0 && jobsCh == nil {
			p := a.queue[0]
			if !p.queued {
				a.queue = a.queue[1:]
				continue
			}
			next = a.prepare(p)
			if next.plan.Empty() {
				a.queue = a.queue[1:]
				p.queued = false
				continue
			}
			jobsCh = jobs
		}
		a.resetTimer(timer)
		a.publish()
		a.updateProbes()
	}
}

// refresh re-reads one pod from the runtime (after an exit event) through the
// worker pool's result path, so the loop never blocks on the runtime.
//
// containerd's CRI plugin handles the same exit event as Ballast, so for a
// moment after the event it may still report the container running: the
// refresh reads again, briefly, until the exit shows.
func (a *Agent) refresh(ctx context.Context, p *podState, exitedID string, done chan<- execResult) {
	if p.inflight {
		p.dirty = true
		return
	}
	p.inflight = true
	uid := p.uid
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var r execResult
		for delay := 5 * time.Millisecond; ; delay *= 2 {
			pods, err := a.obs.List(cctx, uid)
			r = execResult{uid: uid, err: err}
			if err != nil {
				break
			}
			r.rt = pods[uid]
			if r.rt == nil {
				r.rt = &cri.PodRuntime{UID: uid}
			}
			if !stillRunning(r.rt, exitedID) || delay > time.Second {
				break
			}
			select {
			case <-cctx.Done():
			case <-time.After(delay):
			}
		}
		done <- r
	}()
}

func stillRunning(rt *cri.PodRuntime, id string) bool {
	for _, c := range rt.Containers {
		if c.ID == id {
			return c.State == cri.StateRunning
		}
	}
	for _, s := range rt.Sandboxes {
		if s.ID == id {
			return s.Ready
		}
	}
	return false
}

func (a *Agent) index() map[string]string {
	m := map[string]string{}
	for uid, p := range a.pods {
		if p.rt == nil {
			continue
		}
		for _, s := range p.rt.Sandboxes {
			m[s.ID] = uid
		}
		for _, c := range p.rt.Containers {
			m[c.ID] = uid
		}
	}
	return m
}

func (a *Agent) markDirty(p *podState) {
	p.dirty = true
}

// settle queues every dirty pod that has nothing in flight.
func (a *Agent) settle() {
	// A pod replacing another of the same name waits until the old one is gone.
	names := map[string]string{}
	for uid, p := range a.pods {
		if p.desired == nil && p.rt != nil && (len(p.rt.Sandboxes) > 0 || len(p.rt.Containers) > 0) {
			names[p.rt.Namespace+"/"+p.rt.Name] = uid
		}
	}
	var uids []string
	for uid := range a.pods {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	for _, uid := range uids {
		p := a.pods[uid]
		if !p.dirty || p.inflight || p.queued {
			continue
		}
		if p.desired != nil {
			if old, ok := names[p.desired.Namespace+"/"+p.desired.Name]; ok && old != uid {
				p.waiting = map[string]engine.Waiting{}
				for _, c := range p.desired.Spec.Containers {
					p.waiting[c.Name] = engine.Waiting{Reason: "ContainerCreating", Message: "waiting for the previous version of the pod to stop"}
				}
				a.computeStatus(p)
				continue
			}
		}
		if p.desired == nil && p.rt == nil {
			delete(a.pods, uid)
			continue
		}
		p.dirty = false
		p.queued = true
		a.queue = append(a.queue, p)
	}
}

// prepare decides the plan of a queued pod and records its waiting reasons.
func (a *Agent) prepare(p *podState) job {
	now := a.opts.Now()
	if p.desired != nil && p.startTime.IsZero() {
		a.computeStatus(p)
	}
	plan := a.opts.Engine.Decide(engine.Input{Desired: p.desired, Runtime: p.rt, Pulls: a.pulls, Probes: p.currentProbes(), StartTime: p.startTime, Now: now})
	if plan.DeadlineExceeded && !p.deadlineExceeded {
		p.deadlineExceeded = true
		a.events.Event(events.PodRef(p.desired, ""), corev1.EventTypeNormal, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
	}
	if p.desired != nil {
		for name, w := range plan.Waiting {
			if w.Reason == "CrashLoopBackOff" && p.waiting[name].Reason != "CrashLoopBackOff" {
				a.events.Event(events.PodRef(p.desired, name), corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container "+name+" in pod "+p.desired.Name+"_"+p.desired.Namespace+"("+p.uid+")")
			}
			if w.Reason == "ImagePullBackOff" && p.waiting[name].Reason != "ImagePullBackOff" {
				if c := podconfig.FindContainer(p.desired, name); c != nil {
					a.events.Event(events.PodRef(p.desired, name), corev1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", c.Image))
				}
			}
		}
	}
	p.waiting = plan.Waiting
	if !plan.WakeAt.IsZero() && (p.wakeAt.IsZero() || plan.WakeAt.Before(p.wakeAt)) {
		p.wakeAt = plan.WakeAt
	}
	if p.desired != nil {
		a.computeStatus(p)
	}
	return job{pod: p, uid: p.uid, desired: p.desired, rt: p.rt, plan: plan}
}

func (a *Agent) applySnapshot(snap source.Snapshot) {
	a.haveFiles = true
	a.problems = snap.Problems
	want := map[string]source.Desired{}
	for _, d := range snap.Pods {
		want[string(d.Pod.UID)] = d
	}
	// Pods whose file is broken and which the source could not read since
	// this agent started keep running from what the runtime recorded.
	broken := map[string]bool{}
	for _, pr := range snap.Problems {
		broken[pr.File] = true
	}
	for uid, p := range a.pods {
		if _, ok := want[uid]; ok {
			p.kept = false // its file defines it again
			continue
		}
		if pod := p.rt.Pod(); pod != nil && broken[pod.Annotations["ballast.dev/manifest"]] {
			want[uid] = source.Desired{Pod: pod, File: pod.Annotations["ballast.dev/manifest"]}
			p.kept = true
		}
	}
	for uid, d := range want {
		p := a.pods[uid]
		if p == nil {
			p = &podState{uid: uid}
			a.pods[uid] = p
			a.log.Info("pod added", "pod", d.Pod.Namespace+"/"+d.Pod.Name, "file", d.File, "uid", uid)
		}
		// Same UID, same content: only annotations (config.seen, the
		// manifest error) can differ.
		if p.desired == nil || !maps.Equal(p.desired.Annotations, d.Pod.Annotations) {
			p.desired = d.Pod
			p.file = d.File
			a.markDirty(p)
		}
	}
	for uid, p := range a.pods {
		if _, ok := want[uid]; !ok && p.desired != nil {
			a.log.Info("pod removed", "pod", podName(p), "file", p.file, "uid", uid)
			p.desired = nil
			p.kept = false
			a.markDirty(p)
		}
	}
}

func (a *Agent) applyRelist(pods map[string]*cri.PodRuntime) {
	for uid, rt := range pods {
		p := a.pods[uid]
		if p == nil {
			p = &podState{uid: uid}
			a.pods[uid] = p
			a.log.Info("found pod in the runtime", "pod", rt.Namespace+"/"+rt.Name, "uid", uid)
		}
		if p.inflight {
			continue
		}
		if !sameRuntime(p.rt, rt) {
			p.rt = rt
			a.markDirty(p)
		}
	}
	for uid, p := range a.pods {
		if _, ok := pods[uid]; !ok && !p.inflight && p.rt != nil && (len(p.rt.Sandboxes) > 0 || len(p.rt.Containers) > 0) {
			p.rt = &cri.PodRuntime{UID: uid}
			a.markDirty(p)
		}
	}
}

func sameRuntime(a, b *cri.PodRuntime) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.Sandboxes) != len(b.Sandboxes) || len(a.Containers) != len(b.Containers) {
		return false
	}
	for i := range a.Sandboxes {
		x, y := a.Sandboxes[i], b.Sandboxes[i]
		if x.ID != y.ID || x.Ready != y.Ready || x.IP != y.IP {
			return false
		}
	}
	for i := range a.Containers {
		x, y := a.Containers[i], b.Containers[i]
		if x.ID != y.ID || x.State != y.State {
			return false
		}
	}
	return true
}

func (a *Agent) applyResult(r execResult) {
	p := a.pods[r.uid]
	if p == nil {
		return
	}
	p.inflight = false
	for img, f := range r.pulls {
		f.Backoff = a.opts.Engine.NextPullBackoff(a.pulls[img])
		a.pulls[img] = f
		a.log.Warn("image pull failed", "pod", podName(p), "image", img, "reason", f.Reason, "err", f.Err, "backoff", f.Backoff)
	}
	for _, img := range r.pullsOK {
		delete(a.pulls, img)
	}
	if r.rt != nil {
		p.rt = r.rt
	}
	p.execWaiting = r.execWaiting
	if r.err != nil {
		if p.retry == 0 {
			p.retry = a.opts.RetryInitial
		} else {
			p.retry = min(2*p.retry, a.opts.RetryMax)
		}
		p.wakeAt = a.opts.Now().Add(p.retry)
		a.log.Warn("pod sync failed; will retry", "pod", podName(p), "err", r.err, "retryIn", p.retry)
		if p.desired != nil {
			a.computeStatus(p)
		}
		return
	}
	p.retry = 0
	if p.desired == nil && (p.rt == nil || (len(p.rt.Sandboxes) == 0 && len(p.rt.Containers) == 0)) {
		delete(a.pods, r.uid)
		a.log.Info("pod stopped and removed", "uid", r.uid)
		// A replacement waiting for this pod's name may go now.
		for _, q := range a.pods {
			if q.desired != nil {
				a.markDirty(q)
			}
		}
		return
	}
	a.markDirty(p)
}

func (a *Agent) resetTimer(t *time.Timer) {
	var next time.Time
	for _, p := range a.pods {
		if !p.wakeAt.IsZero() && (next.IsZero() || p.wakeAt.Before(next)) {
			next = p.wakeAt
		}
	}
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	if next.IsZero() {
		t.Reset(time.Hour)
		return
	}
	t.Reset(max(next.Sub(a.opts.Now()), 0))
}

func (a *Agent) computeStatus(p *podState) {
	if p.startTime.IsZero() {
		p.startTime = a.opts.Now()
	}
	if p.rt != nil {
		for _, s := range p.rt.Sandboxes {
			if s.CreatedAt.Before(p.startTime) {
				p.startTime = s.CreatedAt
			}
		}
	}
	prev := p.status
	waiting := map[string]engine.Waiting{}
	for k, v := range p.execWaiting {
		waiting[k] = v
	}
	for k, v := range p.waiting {
		waiting[k] = v
	}
	p.status = podstatus.Compute(podstatus.Input{
		Pod: p.desired, Runtime: p.rt, Waiting: waiting, HostIP: a.opts.HostIP,
		StartTime: p.startTime, Now: a.opts.Now(), Previous: &prev, RuntimeName: a.opts.RuntimeName,
		Probes: p.currentProbes(), DeadlineExceeded: p.deadlineExceeded,
	})
}

func podName(p *podState) string {
	if p.desired != nil {
		return p.desired.Namespace + "/" + p.desired.Name
	}
	if p.rt != nil {
		return p.rt.Namespace + "/" + p.rt.Name
	}
	return p.uid
}

// publish makes the current pods and their status visible to readers.
func (a *Agent) publish() {
	v := &View{Problems: a.problems, Logs: map[string]LogRef{}}
	problemByPod := map[string]string{}
	problemByFile := map[string]string{}
	for _, pr := range a.problems {
		problemByFile[pr.File] = pr.Err.Error()
		for _, name := range pr.Pods {
			problemByPod[name] = pr.Err.Error()
		}
	}
	for _, p := range a.pods {
		if p.desired == nil {
			continue
		}
		if p.status.Phase == "" {
			a.computeStatus(p)
		}
		pod := p.desired.DeepCopy()
		pod.Status = *p.status.DeepCopy()
		if msg, ok := problemByPod[pod.Name]; ok {
			pod.Annotations[AnnotationManifestError] = msg
		} else if p.kept {
			pod.Annotations[AnnotationManifestError] = problemByFile[p.file]
		}
		if pod.CreationTimestamp.IsZero() {
			pod.CreationTimestamp = metav1.NewTime(p.startTime.Truncate(time.Second))
		}
		pod.UID = types.UID(p.uid)
		v.Pods = append(v.Pods, *pod)
		for _, c := range pod.Spec.Containers {
			insts := p.rt.ContainersNamed(c.Name)
			ref := LogRef{}
			if len(insts) > 0 {
				ref.Current = insts[0].LogPath
				ref.CurrentID = insts[0].ID
				ref.Running = insts[0].State == cri.StateRunning
			}
			if len(insts) > 1 {
				ref.Previous = insts[1].LogPath
			}
			v.Logs[pod.Namespace+"/"+pod.Name+"/"+c.Name] = ref
		}
	}
	sort.Slice(v.Pods, func(i, j int) bool {
		if v.Pods[i].Namespace != v.Pods[j].Namespace {
			return v.Pods[i].Namespace < v.Pods[j].Namespace
		}
		return v.Pods[i].Name < v.Pods[j].Name
	})
	a.view.Store(v)
	a.changed.fire()
}
