// Package agent is the node agent's I/O pump around the planner: it turns
// what happens (manifest snapshots, container exits, probe results, imported
// images, the results of runtime calls, timers) into planner inputs, one at
// a time on one goroutine, and carries out what the planner returns: runtime
// jobs on a bounded pool of workers (the executor), reads of the runtime,
// events, and the published view of the node's pods for readers (the local
// API, the mirror sync). It decides nothing itself.
package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/events"
	"github.com/ballast-dev/ballast/internal/executor"
	"github.com/ballast-dev/ballast/internal/planner"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/podruntime"
	"github.com/ballast-dev/ballast/internal/prober"
	"github.com/ballast-dev/ballast/internal/registryauth"
	"github.com/ballast-dev/ballast/internal/source"
)

// Options configure an Agent.
type Options struct {
	NodeName string
	DataDir  string
	HostIP   string
	Runtime  *cri.Runtime
	// RuntimeName prefixes container IDs in status ("containerd").
	RuntimeName string
	Backoff     podplan.Backoff
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
	// PodStarted, if set, is told how long each pod took from the node
	// seeing its file to every container running (first starts only).
	PodStarted func(time.Duration)
}

// Agent keeps the pods of one node at their desired state.
type Agent struct {
	opts   Options
	log    *slog.Logger
	obs    *cri.Observer
	exec   *executor.Executor
	events *events.Recorder
	prober *prober.Prober

	snapshots chan source.Snapshot
	imagesIn  chan struct{}
	// inputs carries the results of the agent's own goroutines to the loop.
	inputs chan planner.Input

	view    atomic.Pointer[View]
	changed broadcast
}

// New returns an agent; Run starts it.
func New(opts Options) *Agent {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	a := &Agent{
		opts:      opts,
		log:       opts.Log,
		obs:       cri.NewObserver(opts.Runtime, opts.NodeName),
		snapshots: make(chan source.Snapshot, 1),
		imagesIn:  make(chan struct{}, 1),
		inputs:    make(chan planner.Input, 256),
	}
	a.events = events.New(opts.NodeName, 1000, opts.Log.With("component", "events"))
	a.exec = executor.New(opts.Runtime, a.obs, a.events, executor.Options{
		NodeName: opts.NodeName, DataDir: opts.DataDir, HostIP: opts.HostIP, ResolvConf: opts.ResolvConf,
		Pulls: opts.Pulls, Log: opts.Log, Now: opts.Now,
	})
	a.view.Store(&View{})
	return a
}

// Snapshots is where the manifest source sends desired state.
func (a *Agent) Snapshots() chan<- source.Snapshot { return a.snapshots }

// ImagesArrived tells the agent new images were imported: pods waiting for an
// image try again at once.
func (a *Agent) ImagesArrived() {
	a.exec.ForgetImages()
	select {
	case a.imagesIn <- struct{}{}:
	default: // one is pending already
	}
}

// Run runs the agent until ctx ends, and returns once every goroutine it
// started has stopped. Pods keep running.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	goFn := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	send := func(in planner.Input) {
		select {
		case a.inputs <- in:
		case <-ctx.Done():
		}
	}

	s := planner.New(planner.Config{
		NodeName: a.opts.NodeName, HostIP: a.opts.HostIP, RuntimeName: a.opts.RuntimeName,
		Backoff: a.opts.Backoff, Workers: a.opts.Workers, RetryInitial: a.opts.RetryInitial,
		RetryMax: a.opts.RetryMax, Relist: a.opts.Relist,
	})
	probeOut := make(chan prober.Result, 64)
	a.prober = prober.New(a.exec, probeOut, a.log.With("component", "prober"))
	goFn(func() { a.prober.Run(ctx) })
	exits := make(chan cri.Exit, 64)
	goFn(func() {
		a.opts.Runtime.WatchExits(ctx, exits, func() { send(planner.Reconnected{}) })
	})
	// The planner never has more jobs in flight than workers: this never blocks.
	workers := a.opts.Workers
	if workers <= 0 {
		workers = 64
	}
	type job struct {
		planner.Job
		ctx context.Context
	}
	jobs := make(chan job, workers)
	for range workers {
		goFn(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-jobs:
					send(a.exec.Run(j.ctx, j.Job))
				}
			}
		})
	}
	// cancels ends a job in flight when the planner asks (by pod UID).
	cancels := map[string]context.CancelFunc{}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var probeKeys []prober.Key
	rollouts := rolloutStore{dir: filepath.Join(a.opts.DataDir, "rollouts"), log: a.log}
	step := func(in planner.Input) {
		out := s.Step(a.opts.Now(), in)
		// Saved before anything is done about them: what a revert decided
		// survives a kill -9 right after.
		rollouts.save(out.Saves)
		if a.opts.PodStarted != nil {
			for _, st := range out.Started {
				a.opts.PodStarted(st.Since)
			}
		}
		for _, e := range out.Events {
			a.events.Event(e.Ref, e.Type, e.Reason, e.Message)
		}
		for _, uid := range out.Cancel {
			if cancel, ok := cancels[uid]; ok {
				cancel()
			}
		}
		for _, j := range out.Jobs {
			jctx, cancel := context.WithCancel(ctx)
			cancels[j.UID] = cancel
			jobs <- job{Job: j, ctx: jctx}
		}
		for _, o := range out.Observe {
			goFn(func() { send(a.observe(ctx, o)) })
		}
		if out.Relist {
			goFn(func() { send(a.relist(ctx)) })
		}
		if out.Changed {
			v := s.View()
			a.view.Store(v)
			a.changed.fire()
			probeKeys = a.updateProbes(s, probeKeys)
		}
		resetTimer(timer, out.WakeAt, a.opts.Now())
	}
	step(planner.Restored{Rollouts: rollouts.load()})
	for {
		select {
		case <-ctx.Done():
			return nil
		case snap := <-a.snapshots:
			step(fromSource(snap))
		case in := <-a.inputs:
			if d, ok := in.(planner.Done); ok {
				if cancel, ok := cancels[d.UID]; ok {
					cancel()
					delete(cancels, d.UID)
				}
			}
			step(in)
		case <-a.imagesIn:
			step(planner.ImagesArrived{})
		case ex := <-exits:
			step(planner.Exited{ID: ex.ID})
		case r := <-probeOut:
			step(planner.Probed{UID: r.Target.PodUID, Container: r.Target.Container, ContainerID: r.Target.ContainerID,
				Kind: r.Target.Kind, Success: r.Success, Failed: r.Failed, Output: r.Output, Exhausted: r.Exhausted})
		case <-timer.C:
			step(planner.Tick{})
		}
	}
}

// fromSource turns the manifest source's snapshot into the planner's input.
func fromSource(snap source.Snapshot) planner.Snapshot {
	out := planner.Snapshot{Pods: make([]planner.Desired, len(snap.Pods)), Configs: snap.Configs}
	for i, d := range snap.Pods {
		out.Pods[i] = planner.Desired{Pod: d.Pod, File: d.File}
	}
	for _, w := range snap.Warnings {
		out.Warnings = append(out.Warnings, planner.Warning{File: w.File, Message: w.Message})
	}
	for _, pr := range snap.Problems {
		out.Problems = append(out.Problems, planner.Problem{File: pr.File, Message: pr.Err.Error(), Pods: pr.Pods})
	}
	return out
}

func resetTimer(t *time.Timer, at, now time.Time) {
	if at.IsZero() {
		t.Reset(time.Hour)
		return
	}
	t.Reset(max(at.Sub(now), 0))
}

// relist reads every pod of the node from the runtime.
func (a *Agent) relist(ctx context.Context) planner.Input {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pods, err := a.obs.List(cctx, "")
	if err != nil {
		a.log.Warn("cannot read the container runtime's state; will retry", "err", err)
	}
	return planner.Relisted{Pods: pods, Err: err}
}

// observe reads one pod again after a process of it exited.
//
// containerd's CRI plugin handles the same exit event as Ballast, so for a
// moment after the event it may still report the process running: the read
// is repeated, briefly, until the exit shows.
func (a *Agent) observe(ctx context.Context, o planner.Observe) planner.Input {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for delay := 5 * time.Millisecond; ; delay *= 2 {
		pods, err := a.obs.List(cctx, o.UID)
		if err != nil {
			return planner.Observed{UID: o.UID, Err: err}
		}
		rt := pods[o.UID]
		if rt == nil || !stillRunning(rt, o.ExitedID) || delay > time.Second {
			return planner.Observed{UID: o.UID, Pod: rt}
		}
		select {
		case <-cctx.Done():
			return planner.Observed{UID: o.UID, Pod: rt}
		case <-time.After(delay):
		}
	}
}

func stillRunning(rt *podruntime.Pod, id string) bool {
	for _, c := range rt.Containers {
		if c.ID == id {
			return c.State == podruntime.StateRunning
		}
	}
	for _, s := range rt.Sandboxes {
		if s.ID == id {
			return s.Ready
		}
	}
	return false
}

// updateProbes hands the prober the probes of every running container when
// the set changed.
func (a *Agent) updateProbes(s *planner.State, prev []prober.Key) []prober.Key {
	var ts []prober.Target
	s.Running(func(uid string, pod *corev1.Pod, rt *podruntime.Pod) {
		ts = append(ts, probeTargets(uid, pod, rt, a.opts.HostIP)...)
	})
	prober.SortTargets(ts)
	keys := make([]prober.Key, len(ts))
	for i, t := range ts {
		keys[i] = prober.Key{ContainerID: t.ContainerID, Kind: t.Kind}
	}
	if !slices.Equal(keys, prev) {
		a.prober.Update(ts)
	}
	return keys
}
