// Package planner owns every decision of the node agent, as one state
// machine with no I/O: which pods must exist (from full snapshots of the
// manifest directory), what each one needs from the runtime next, when a pod
// replacing another of the same name may start, which pods are refused by
// admission (failed once, never retried), how long to back off after failed
// runtime calls, why each container waits, which events to record, and when
// to look at the runtime again.
//
// The caller (the agent) owns all I/O. It feeds inputs in, one at a time,
// with the time they happened, and carries out what comes back:
//
//	s := planner.New(cfg)
//	out := s.Step(now, planner.Tick{})
//	for {
//		// run out.Jobs on the worker pool, out.Observe and out.Relist as
//		// reads, record out.Events, publish s.View() if out.Changed, and
//		// arrange a Tick at out.WakeAt; then wait for the next input:
//		out = s.Step(time.Now(), in)
//	}
//
// A State is not safe for concurrent use: one goroutine owns it. Its tests
// are scripts under testdata/ (input in, actions and events out), run with a
// fake clock and a simulated runtime.
package planner

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/podruntime"
	"github.com/ballast-dev/ballast/internal/podstatus"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// Config configures the planner.
type Config struct {
	NodeName string
	// HostIP is the node's IP, reported as each pod's hostIP (and podIP for
	// host-network pods).
	HostIP string
	// RuntimeName prefixes container IDs in status ("containerd").
	RuntimeName string
	Backoff     podplan.Backoff
	// Workers bounds the pods whose runtime calls run at once (default 64).
	Workers int
	// RetryInitial and RetryMax bound the back-off of a pod whose runtime
	// calls failed (default 500ms and 30s).
	RetryInitial, RetryMax time.Duration
	// Relist is how often the whole runtime state is read as a safety net
	// (default 10s); container exits arrive as inputs in between.
	Relist time.Duration
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		// Enough that a burst of new pods (a node's whole directory at boot)
		// reaches the runtime at once rather than in waves.
		c.Workers = 64
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = 500 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.Relist <= 0 {
		c.Relist = 10 * time.Second
	}
	if c.Backoff == (podplan.Backoff{}) {
		c.Backoff = podplan.DefaultBackoff()
	}
	if c.RuntimeName == "" {
		c.RuntimeName = "containerd"
	}
}

// Lifecycle is where a pod stands with respect to the runtime.
type Lifecycle int

const (
	// Idle: nothing to do until an input or the pod's wake-up time.
	Idle Lifecycle = iota
	// Queued: its plan needs the runtime; it waits for a free worker.
	Queued
	// Syncing: a job (its plan) is being carried out.
	Syncing
	// Blocked: it replaces a pod of the same name that has not stopped yet.
	Blocked
	// Rejected: admission refused it; it failed for good and never runs.
	Rejected
)

func (l Lifecycle) String() string {
	return [...]string{"idle", "queued", "syncing", "blocked", "rejected"}[l]
}

// pod is everything the planner knows of one pod UID.
type pod struct {
	uid     string
	desired *corev1.Pod // nil: the pod must go
	file    string
	// kept: desired comes from the runtime's record, because the pod's file
	// cannot be read and has not been read since the agent started.
	kept bool
	rt   *podruntime.Pod
	life Lifecycle
	// dirty: decide again at the end of this step (or when the call in
	// flight returns); touched: compute the status again.
	dirty, touched bool
	// admitted: admission has checked the pod; rejected: and refused it.
	admitted, rejected bool
	// missing are the dependencies (ballast.dev/after) last warned about as missing.
	missing string
	// fromFile: the pod's first start is under way; startedFromFile: it
	// ended with every container running (reported once).
	fromFile, startedFromFile bool
	// cancelled: its job in flight was asked to stop.
	cancelled bool
	// stale: the last job could not read the pod back; its runtime state
	// is unknown until the next read.
	stale bool
	// observing: a read of the pod (after an exit) is under way; reobserve:
	// a process of the pod exited while a job or a read was in flight, so
	// read it again when that returns.
	observing bool
	reobserve string
	wakeAt    time.Time
	plan      podplan.Plan
	// queuedAt orders the queue.
	queuedAt uint64
	// retry is the back-off after failed runtime calls.
	retry time.Duration
	// waiting comes from the last plan, failed from the last runtime calls.
	waiting, failed map[string]podruntime.Waiting
	probes          map[string]podruntime.ProbeState
	startTime       time.Time
	// deadlineExceeded: activeDeadlineSeconds passed; the pod was killed for good.
	deadlineExceeded bool
	status           corev1.PodStatus
	// volumesAt is the version of config data the pod's volumes show (see
	// volumeState), "" when not known; jobVolumes what its job in flight
	// writes.
	volumesAt, jobVolumes string
}

func (p *pod) inFlight() bool { return p.life == Syncing }

// wake asks for a decision at t at the latest.
func (p *pod) wake(t time.Time) {
	if p.wakeAt.IsZero() || t.Before(p.wakeAt) {
		p.wakeAt = t
	}
}

// State is the node's state as the planner sees it.
type State struct {
	cfg  Config
	pods map[string]*pod // by UID
	// pulls are the image pull failures in force, by image.
	pulls    map[string]*podplan.PullFailure
	problems []Problem
	// haveFiles: a first snapshot arrived (pods not in it may be stopped);
	// runtimeSeen: a first relist succeeded (what runs is known).
	haveFiles, runtimeSeen bool
	runtimeReady           bool
	snap                   Snapshot
	relisting              bool
	relistAt               time.Time
	syncing                int    // jobs in flight
	seq                    uint64 // queue order
	// byID maps sandbox and container IDs to their pod's UID.
	byID map[string]string
	// files holds each manifest file's rollouts.
	files map[string]*rollout
	// cycles are the files whose pods wait for each other in a cycle.
	cycles []Problem
	// configs are the node-local ConfigMaps and Secrets by key (configList
	// as the snapshot sorts them), warnings those of the last snapshot.
	configs    map[manifest.ConfigKey]*manifest.Config
	configList []*manifest.Config
	warnings   []Warning
}

// New returns the planner's initial state.
func New(cfg Config) *State {
	cfg.defaults()
	return &State{cfg: cfg, pods: map[string]*pod{}, pulls: map[string]*podplan.PullFailure{}, byID: map[string]string{}, files: map[string]*rollout{}}
}

// Output is what the caller must do after a step.
type Output struct {
	// Jobs are plans to carry out, one per pod, on the worker pool. Each
	// ends with a Done input.
	Jobs []Job
	// Observe are pods to read again from the runtime (after a process
	// exited). Each ends with an Observed input.
	Observe []Observe
	// Relist asks for a full read of the runtime, ending with a Relisted input.
	Relist bool
	// Events are to be recorded, in order.
	Events []Event
	// Saves are rollout records to write durably before anything else is
	// done; an empty one (Rollout.Empty) deletes its file's record.
	Saves []Rollout
	// Started are pods started from their files that now run every
	// container, with the time since the node first saw their file.
	Started []Started
	// Cancel are pods whose job in flight must stop as soon as it can: it
	// starts what is no longer wanted (the file was removed mid-start).
	Cancel []string
	// WakeAt is when to feed a Tick; zero for never.
	WakeAt time.Time
	// Changed: what readers see (View) changed.
	Changed bool
}

// Job is one pod's plan for the executor. Desired, Runtime and Configs are
// the planner's own: the executor must not change them.
type Job struct {
	UID     string
	Desired *corev1.Pod // nil when the pod must go
	File    string
	Runtime *podruntime.Pod // never nil
	Plan    podplan.Plan
	// Configs are the node-local ConfigMaps and Secrets Desired references,
	// those the node has (a missing one is not in it), for env values and
	// volume files.
	Configs map[manifest.ConfigKey]*manifest.Config
}

// Started is a pod started from its file, now running: Since is how long
// it took from the node seeing the file (its kubernetes.io/config.seen).
type Started struct {
	UID   string
	Since time.Duration
}

// Observe asks for a fresh read of one pod. ExitedID, when set, is the
// process whose exit prompted it: the runtime may report it running for a
// moment after the exit, so the read should retry briefly until it shows.
type Observe struct {
	UID      string
	ExitedID string
}

// Event is an event to record about a pod.
type Event struct {
	Ref     corev1.ObjectReference
	Type    string
	Reason  string
	Message string
}

// Step applies one input that happened at now and returns what to do.
func (s *State) Step(now time.Time, in Input) Output {
	var out Output
	switch in := in.(type) {
	case Restored:
		s.applyRestored(in)
	case Snapshot:
		s.snap = s.whileUnavailable(in)
		s.applySnapshot(now, s.snap, &out)
	case Relisted:
		s.applyRelist(now, in, &out)
	case Exited:
		s.applyExit(in, &out)
	case Observed:
		s.applyObserved(now, in, &out)
	case Done:
		s.applyDone(now, in, &out)
	case Probed:
		s.applyProbe(in, &out)
	case ImagesArrived:
		s.pulls = map[string]*podplan.PullFailure{}
		for _, p := range s.pods {
			p.dirty, p.touched = true, true
		}
	case Reconnected:
		s.relistAt = time.Time{}
	case Tick:
		for _, p := range s.pods {
			if !p.wakeAt.IsZero() && !now.Before(p.wakeAt) {
				p.wakeAt = time.Time{}
				p.dirty, p.touched = true, true
			}
		}
	default:
		panic(fmt.Sprintf("planner: unknown input %T", in))
	}
	if !s.relisting && !now.Before(s.relistAt) {
		s.relisting = true
		out.Relist = true
	}
	// Deciding changes statuses, which may revert a rollout or let pods that
	// wait for others start: decide again then (a pod's readiness changes
	// once per pass at most, so this ends).
	for range 4 {
		if s.haveFiles && s.runtimeSeen {
			s.decide(now, &out)
			s.dispatch(now, &out)
		}
		readied := s.statuses(now, &out)
		again := s.wakeDependents(readied)
		if s.judgeRollouts(now, &out) {
			// A file's pod is its last good one again: decide with that.
			s.applySnapshot(now, s.snap, &out)
			again = true
		}
		if !again {
			break
		}
	}
	out.WakeAt = s.nextWake()
	return out
}

// decide plans every dirty pod that has nothing in flight.
func (s *State) decide(now time.Time, out *Output) {
	// A pod replacing another of the same name waits until the old one is gone.
	leaving := map[string]string{}
	for uid, p := range s.pods {
		if p.desired == nil && !p.rt.Empty() {
			leaving[p.rt.Namespace+"/"+p.rt.Name] = uid
		}
	}
	o := s.order()
	if problems := s.orderProblems(o); !slices.EqualFunc(problems, s.cycles, sameProblem) {
		s.cycles = problems
		out.Changed = true
	}
	for _, uid := range s.sortedUIDs() {
		p := s.pods[uid]
		if p.life == Syncing && p.desired == nil && !p.cancelled && (p.plan.CreateSandbox || len(p.plan.Start) > 0) {
			// Starting what is no longer wanted: stop at the next container.
			p.cancelled = true
			out.Cancel = append(out.Cancel, uid)
		}
		if !(p.dirty || p.life == Blocked) || p.inFlight() {
			continue
		}

		p.dirty = false
		p.touched = true
		if p.desired == nil && p.rt.Empty() {
			if p.stale {
				// Nothing known to run, but the last read failed: a pod
				// forgotten now would leave its containers running until
				// a relist finds them. Read it first.
				if !p.observing {
					s.observe(p, "", out)
				}
				continue
			}
			s.remove(uid)
			out.Changed = true
			continue
		}
		if p.desired != nil && !p.admitted {
			p.admitted = true
			if reason, msg := podstatus.Admit(p.desired); reason != "" {
				p.rejected = true
				out.Events = append(out.Events, podEvent(p.desired, "", corev1.EventTypeWarning, reason, msg))
			}
		}
		if p.desired != nil && p.rejected {
			// Failed for good: never started, never retried. Should something
			// of it run (an agent restart), it is stopped.
			p.plan = podplan.Plan{KillPod: p.rt.AnyRunning() || (p.rt.LatestSandbox() != nil && p.rt.LatestSandbox().Ready)}
			p.waiting = nil
			s.settle(p, Rejected)
			continue
		}
		if p.desired != nil {
			if old, ok := leaving[p.desired.Namespace+"/"+p.desired.Name]; ok && old != uid {
				p.plan = podplan.Plan{}
				p.waiting = map[string]podruntime.Waiting{}
				for _, c := range p.desired.Spec.Containers {
					p.waiting[c.Name] = podruntime.Waiting{Reason: "ContainerCreating", Message: "waiting for the previous version of the pod to stop"}
				}
				s.settle(p, Blocked)
				continue
			}
		}
		s.plan(now, p, o, out)
	}
}

// settle queues a pod whose plan needs the runtime, or leaves it in life.
func (s *State) settle(p *pod, life Lifecycle) {
	if p.plan.Empty() {
		p.life = life
		p.queuedAt = 0
		return
	}
	if p.life != Queued {
		p.life = Queued
		s.seq++
		p.queuedAt = s.seq
	}
}

// plan decides one pod's next runtime actions and queues it if there are any.
func (s *State) plan(now time.Time, p *pod, o *order, out *Output) {
	p.noteStart(now)
	plan := s.cfg.Backoff.Decide(podplan.PodInput{Desired: p.desired, Runtime: p.rt, Pulls: s.pulls, Probes: p.currentProbes(), StartTime: p.startTime, Now: now})
	if plan.DeadlineExceeded && !p.deadlineExceeded {
		p.deadlineExceeded = true
		out.Events = append(out.Events, podEvent(p.desired, "", corev1.EventTypeNormal, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"))
	}
	if p.desired != nil {
		if why, missing := o.waitsFor(p); why != "" {
			holdBack(&plan, p, why)
			if m := strings.Join(missing, ","); m != p.missing {
				p.missing = m
				if m != "" {
					out.Events = append(out.Events, podEvent(p.desired, "", corev1.EventTypeWarning, "MissingDependency",
						fmt.Sprintf("%s names %s, but no static pod of that name runs on this node; the pod waits for it", wellknown.AnnotationAfter, m)))
				}
			}
		}
		for _, name := range sortedKeys(plan.Waiting) {
			w := plan.Waiting[name]
			if w.Reason == p.waiting[name].Reason {
				continue
			}
			switch w.Reason {
			case "CrashLoopBackOff":
				out.Events = append(out.Events, podEvent(p.desired, name, corev1.EventTypeWarning, "BackOff",
					"Back-off restarting failed container "+name+" in pod "+p.desired.Name+"_"+p.desired.Namespace+"("+p.uid+")"))
			case ReasonWaitingForDependency:
				out.Events = append(out.Events, podEvent(p.desired, "", corev1.EventTypeNormal, ReasonWaitingForDependency, w.Message))
			case "ImagePullBackOff":
				if c := findContainer(p.desired, name); c != nil {
					out.Events = append(out.Events, podEvent(p.desired, name, corev1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", c.Image)))
				}
			}
		}
	}
	s.refresh(p, &plan)
	p.waiting = plan.Waiting
	p.wakeAt = plan.WakeAt
	p.plan = plan
	s.settle(p, Idle)
}

// dispatch hands queued plans to free workers, oldest first.
func (s *State) dispatch(now time.Time, out *Output) {
	if s.syncing >= s.cfg.Workers {
		return
	}
	var queued []*pod
	for _, p := range s.pods {
		if p.life == Queued {
			queued = append(queued, p)
		}
	}
	sort.Slice(queued, func(i, j int) bool { return queued[i].queuedAt < queued[j].queuedAt })
	for _, p := range queued {
		if s.syncing >= s.cfg.Workers {
			return
		}
		p.life = Syncing
		p.queuedAt = 0
		p.dirty = false
		s.syncing++
		rt := p.rt
		if rt == nil {
			rt = &podruntime.Pod{UID: p.uid}
			if p.desired != nil {
				rt.Name, rt.Namespace = p.desired.Name, p.desired.Namespace
			}
		}
		s.dispatchedConfigs(p)
		out.Jobs = append(out.Jobs, Job{UID: p.uid, Desired: p.desired, File: p.file, Runtime: rt, Plan: p.plan, Configs: s.jobConfigs(p.desired)})
		if p.plan.CreateSandbox && rt.Empty() && p.desired != nil && !p.startedFromFile && !s.reverted(p) {
			// The pod's first start, for a file that defines it: it counts
			// as started from its file once all its containers run.
			p.fromFile = true
		}
		s.killEvents(p, rt, out)
	}
}

// killEvents records the kubelet's Killing events for what a plan stops.
func (s *State) killEvents(p *pod, rt *podruntime.Pod, out *Output) {
	pd := p.desired
	if pd == nil {
		pd = rt.Recorded()
	}
	if pd == nil {
		return
	}
	for _, k := range p.plan.KillContainers {
		out.Events = append(out.Events, podEvent(pd, k.Name, corev1.EventTypeNormal, "Killing", k.Message))
	}
	if p.plan.KillPod {
		for _, c := range rt.Containers {
			if c.State == podruntime.StateRunning {
				out.Events = append(out.Events, podEvent(pd, c.Name, corev1.EventTypeNormal, "Killing", "Stopping container "+c.Name))
			}
		}
	}
}

func (s *State) applySnapshot(now time.Time, snap Snapshot, out *Output) {
	s.haveFiles = true
	changed := s.applyConfigs(snap, out)
	s.replacementEvents(snap, changed, out)
	defer s.markConfigUsers(changed)
	if !slices.EqualFunc(s.problems, snap.Problems, sameProblem) {
		s.problems = snap.Problems
		out.Changed = true
	}
	type wanted struct {
		Desired
		kept bool
	}
	want := map[string]wanted{}
	names := map[string]bool{}
	files := map[string]bool{}
	for _, d := range snap.Pods {
		d, _ = s.effective(now, d, out)
		want[string(d.Pod.UID)] = wanted{Desired: d}
		names[d.Pod.Namespace+"/"+d.Pod.Name] = true
		files[d.File] = true
	}
	for _, pr := range snap.Problems {
		files[pr.File] = true // a broken file keeps its rollouts
	}
	s.forgetFiles(files, out)
	// A pod whose file is broken, and which could not be read since the
	// agent started, keeps running from what the runtime recorded, unless
	// another file now defines a pod of that name (one name, one pod).
	broken := map[string]bool{}
	for _, pr := range snap.Problems {
		broken[pr.File] = true
	}
	for _, uid := range s.sortedUIDs() {
		if _, ok := want[uid]; ok {
			continue
		}
		rec := s.pods[uid].rt.Recorded()
		if rec == nil {
			continue
		}
		file := rec.Annotations[wellknown.AnnotationManifest]
		if (broken[file] || snap.Unavailable != "") && !names[rec.Namespace+"/"+rec.Name] {
			want[uid] = wanted{Desired: Desired{Pod: rec, File: file}, kept: true}
			names[rec.Namespace+"/"+rec.Name] = true
		}
	}
	podsChanged := false
	for uid, w := range want {
		p := s.pods[uid]
		if p == nil || p.desired == nil {
			podsChanged = true
		}
		if p == nil {
			p = &pod{uid: uid}
			s.pods[uid] = p
		}
		if p.kept != w.kept {
			p.kept = w.kept
			p.touched = true
			out.Changed = true
		}
		// Same UID, same content: only annotations (config.seen, the
		// manifest error) can differ.
		if p.desired == nil || !maps.Equal(p.desired.Annotations, w.Pod.Annotations) || p.file != w.File {
			p.desired = w.Pod
			p.file = w.File
			p.dirty, p.touched = true, true
			out.Changed = true
		}
	}
	for uid, p := range s.pods {
		if _, ok := want[uid]; !ok && p.desired != nil {
			podsChanged = true
			p.desired, p.kept, p.rejected, p.admitted = nil, false, false, false
			if p.life == Rejected || p.life == Blocked {
				p.life = Idle
			}
			p.dirty, p.touched = true, true
			out.Changed = true
		}
	}
	if podsChanged {
		// Pods that wait for others (ballast.dev/after) look again at what
		// they wait for.
		for _, p := range s.pods {
			if p.desired != nil && len(after(p.desired)) > 0 {
				p.dirty = true
			}
		}
	}
}

func (s *State) applyRelist(now time.Time, r Relisted, out *Output) {
	s.relisting = false
	s.relistAt = now.Add(s.cfg.Relist)
	if r.Err != nil {
		if s.runtimeReady {
			s.runtimeReady = false
			out.Changed = true
		}
		return
	}
	if !s.runtimeReady {
		s.runtimeReady = true
		out.Changed = true
	}
	first := !s.runtimeSeen
	s.runtimeSeen = true
	for uid, rt := range r.Pods {
		p := s.pods[uid]
		if p == nil {
			p = &pod{uid: uid}
			s.pods[uid] = p
		}
		if !p.inFlight() && !podruntime.SameState(p.rt, rt) {
			s.setRuntime(p, rt)
			p.dirty = true
		}
	}
	for uid, p := range s.pods {
		if _, ok := r.Pods[uid]; !ok && !p.inFlight() && !p.rt.Empty() {
			s.setRuntime(p, &podruntime.Pod{UID: uid})
			p.dirty = true
		}
	}
	if first && s.haveFiles {
		// Pods recorded on the runtime may be kept for broken files.
		s.applySnapshot(now, s.snap, out)
	}
}

func (s *State) applyExit(e Exited, out *Output) {
	uid, ok := s.byID[e.ID]
	if !ok {
		// Not a process the planner has seen: perhaps one a sync in flight
		// just started. Those pods read themselves again when they return;
		// anything else is found by the next relist.
		for _, p := range s.pods {
			if p.life == Syncing {
				p.reobserve = e.ID
			}
		}
		return
	}
	p := s.pods[uid]
	if p.inFlight() || p.observing {
		// Read again once the call in flight returns: its own read may
		// have come before the exit.
		p.reobserve = e.ID
		return
	}
	s.observe(p, e.ID, out)
}

func (s *State) observe(p *pod, exited string, out *Output) {
	p.observing = true
	p.reobserve = ""
	out.Observe = append(out.Observe, Observe{UID: p.uid, ExitedID: exited})
}

func (s *State) applyObserved(now time.Time, o Observed, out *Output) {
	p := s.pods[o.UID]
	if p == nil || !p.observing {
		return
	}
	p.observing = false
	if p.inFlight() {
		return // the job in flight reads the pod when it returns
	}
	if o.Err != nil && p.stale {
		// Still unknown: read again after a back-off.
		s.backOff(now, p)
		return
	}
	p.dirty = true
	if o.Err == nil {
		if o.Pod == nil {
			o.Pod = &podruntime.Pod{UID: o.UID}
		}
		s.setRuntime(p, o.Pod)
	}
	if p.reobserve != "" {
		s.observe(p, p.reobserve, out)
	}
}

func (s *State) applyDone(now time.Time, d Done, out *Output) {
	p := s.pods[d.UID]
	if p == nil || p.life != Syncing {
		return
	}
	s.syncing--
	p.life = Idle
	p.touched = true
	for _, img := range sortedKeys(d.Pulls) {
		f := *d.Pulls[img]
		f.Backoff = s.cfg.Backoff.NextPullBackoff(s.pulls[img])
		s.pulls[img] = &f
	}
	for _, img := range d.PullsOK {
		delete(s.pulls, img)
	}
	if d.Runtime != nil {
		s.setRuntime(p, d.Runtime)
	} else {
		// The job's own read failed: what it left is unknown until the
		// pod is read again (see decide).
		p.stale = true
	}
	if p.cancelled {
		// Stopped as asked: not a failure to back off from.
		p.cancelled = false
		d.Err, d.Failed = nil, nil
	}
	p.failed = nil
	for name, f := range d.Failed {
		if p.failed == nil {
			p.failed = map[string]podruntime.Waiting{}
		}
		p.failed[name] = f.waiting()
	}
	if d.Err != nil {
		// Try again after a back-off, or at once if an input arrived
		// meanwhile (p.dirty).
		s.backOff(now, p)
	} else {
		p.retry = 0
		p.dirty = true
		if p.jobVolumes != "" {
			p.volumesAt = p.jobVolumes
		}
	}
	if p.reobserve != "" && !p.observing {
		s.observe(p, p.reobserve, out)
	}
}

// backOff schedules the pod's next try after a failed runtime call.
func (s *State) backOff(now time.Time, p *pod) {
	if p.retry == 0 {
		p.retry = s.cfg.RetryInitial
	} else {
		p.retry = min(2*p.retry, s.cfg.RetryMax)
	}
	p.wakeAt = now.Add(p.retry)
}

func (s *State) applyProbe(r Probed, out *Output) {
	p := s.pods[r.UID]
	if p == nil || p.desired == nil {
		return
	}
	if p.probes == nil {
		p.probes = map[string]podruntime.ProbeState{}
	}
	ps := p.probes[r.Container]
	if ps.ContainerID != r.ContainerID {
		ps = podruntime.ProbeState{ContainerID: r.ContainerID}
	}
	switch r.Kind {
	case podruntime.Readiness:
		ps.Ready = r.Success
	case podruntime.Startup:
		ps.Started = r.Success
		ps.StartupFailed = r.Exhausted
	case podruntime.Liveness:
		ps.LivenessFailed = r.Exhausted
	}
	if r.Failed {
		out.Events = append(out.Events, podEvent(p.desired, r.Container, corev1.EventTypeWarning, "Unhealthy",
			fmt.Sprintf("%s probe failed: %s", r.Kind, r.Output)))
	}
	if r.Exhausted {
		what := "liveness"
		if r.Kind == podruntime.Startup {
			what = "startup"
		}
		ps.Message = fmt.Sprintf("Container %s failed %s probe, will be restarted", r.Container, what)
		ps.GraceSeconds = killGrace(p.desired, r.Container, r.Kind)
	}
	p.probes[r.Container] = ps
	p.dirty, p.touched = true, true
}

// setRuntime records a new read of a pod's runtime state.
func (s *State) setRuntime(p *pod, rt *podruntime.Pod) {
	if p.rt != nil {
		for _, sb := range p.rt.Sandboxes {
			delete(s.byID, sb.ID)
		}
		for _, c := range p.rt.Containers {
			delete(s.byID, c.ID)
		}
	}
	p.rt = rt
	p.stale = false
	p.touched = true
	for _, sb := range rt.Sandboxes {
		s.byID[sb.ID] = p.uid
	}
	for _, c := range rt.Containers {
		s.byID[c.ID] = p.uid
	}
}

func (s *State) remove(uid string) {
	p := s.pods[uid]
	if p.rt != nil {
		s.setRuntime(p, &podruntime.Pod{UID: uid})
	}
	delete(s.pods, uid)
}

func (s *State) nextWake() time.Time {
	next := s.relistAt
	if s.relisting {
		next = time.Time{}
	}
	for _, p := range s.pods {
		if !p.wakeAt.IsZero() && (next.IsZero() || p.wakeAt.Before(next)) {
			next = p.wakeAt
		}
	}
	return next
}

func (s *State) sortedUIDs() []string {
	uids := make([]string, 0, len(s.pods))
	for uid := range s.pods {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	return uids
}

// currentProbes returns the probe states of the containers' current instances.
func (p *pod) currentProbes() map[string]podruntime.ProbeState {
	if len(p.probes) == 0 {
		return nil
	}
	out := map[string]podruntime.ProbeState{}
	for name, ps := range p.probes {
		if cur := p.rt.Latest(name); cur != nil && cur.ID == ps.ContainerID {
			out[name] = ps
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	if pod == nil {
		return nil
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// killGrace is the grace period of a kill for a failed probe: the probe's own
// terminationGracePeriodSeconds when set, else the pod's.
func killGrace(pod *corev1.Pod, container string, kind podruntime.ProbeKind) int64 {
	if c := findContainer(pod, container); c != nil {
		pr := c.LivenessProbe
		if kind == podruntime.Startup {
			pr = c.StartupProbe
		}
		if pr != nil && pr.TerminationGracePeriodSeconds != nil {
			return *pr.TerminationGracePeriodSeconds
		}
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return 30
}
