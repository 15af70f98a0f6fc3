// Package prober owns running containers' liveness, readiness and startup
// probes (exec, httpGet, tcpSocket, grpc) with the kubelet's semantics:
// initial delay, period, timeout, success and failure thresholds, and the
// startup probe holding the others off. One goroutine keeps every probe's
// schedule on a single timer; probes run on a bounded pool; results reach the
// agent only when they change (and on every failure, for events).
package prober

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/podruntime"
)

// Kind is the kind of a probe.
type Kind = podruntime.ProbeKind

const (
	Liveness  = podruntime.Liveness
	Readiness = podruntime.Readiness
	Startup   = podruntime.Startup
)

// Target is one probe of one container instance.
type Target struct {
	PodUID      string
	PodName     string // namespace/name, for messages
	Container   string
	ContainerID string
	Kind        Kind
	Probe       corev1.Probe
	// Ports are the container's ports, to resolve named probe ports.
	Ports []corev1.ContainerPort
	// Host is where network probes connect when the probe names no host:
	// the pod IP (the node's for host-network pods).
	Host      string
	StartedAt time.Time
	// HasStartup: this container has a startup probe, which must succeed
	// before liveness and readiness probes run.
	HasStartup bool
}

// Key identifies a probe of a container instance.
type Key struct {
	ContainerID string
	Kind        Kind
}

func (t Target) key() Key { return Key{t.ContainerID, t.Kind} }

// Result is a probe outcome the agent must know about.
type Result struct {
	Target Target
	// Success is the probe's state after this run, thresholds applied.
	Success bool
	// Failed is set on each failed run (for an Unhealthy event), with Output.
	Failed bool
	Output string
	// Exhausted: a liveness or startup probe reached its failure threshold:
	// the container must be killed.
	Exhausted bool
}

// Runner runs one probe once. The agent provides exec through CRI.
type Runner interface {
	Exec(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (output string, exitCode int32, err error)
}

// Prober schedules and runs probes.
type Prober struct {
	runner  Runner
	results chan<- Result
	updates chan []Target
	log     *slog.Logger
	now     func() time.Time
	workers int
	// second is how long a probe "second" lasts: time.Second, shorter in tests.
	second time.Duration
}

// New returns a prober sending results on results.
func New(runner Runner, results chan<- Result, log *slog.Logger) *Prober {
	return &Prober{runner: runner, results: results, updates: make(chan []Target, 1), log: log, now: time.Now, workers: 16, second: time.Second}
}

// Update replaces the set of probes to run. Probes of instances no longer
// listed stop; new ones start from their initial delay.
func (p *Prober) Update(targets []Target) {
	for {
		select {
		case p.updates <- targets:
			return
		default:
			select { // drop a pending, older set
			case <-p.updates:
			default:
			}
		}
	}
}

// worker is the state of one probe.
type worker struct {
	t         Target
	next      time.Time
	index     int
	running   bool
	successes int32
	failures  int32
	state     bool // thresholds applied
	stopped   bool // exhausted, or a startup probe that succeeded
}

type queue []*worker

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q queue) Swap(i, j int)      { q[i], q[j] = q[j], q[i]; q[i].index = i; q[j].index = j }
func (q *queue) Push(x any)        { w := x.(*worker); w.index = len(*q); *q = append(*q, w) }
func (q *queue) Pop() any {
	old := *q
	w := old[len(old)-1]
	*q = old[:len(old)-1]
	w.index = -1
	return w
}
func (q queue) peek() *worker     { return q[0] }
func (q *queue) remove(w *worker) { heap.Remove(q, w.index) }
func (q *queue) push(w *worker)   { heap.Push(q, w) }
func (q *queue) pop() *worker     { return heap.Pop(q).(*worker) }
func (p *Prober) seconds(n int32, def int32) time.Duration {
	if n <= 0 {
		n = def
	}
	return time.Duration(n) * p.second
}

type done struct {
	w      *worker
	ok     bool
	output string
}

// Run runs the probes until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	workers := map[Key]*worker{}
	started := map[string]bool{} // container IDs whose startup probe succeeded
	var q queue
	finished := make(chan done, p.workers)
	sem := make(chan struct{}, p.workers)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if len(q) > 0 {
			timer.Reset(max(time.Until(q.peek().next), 0))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return
		case targets := <-p.updates:
			seen := map[Key]bool{}
			for _, t := range targets {
				k := t.key()
				seen[k] = true
				if w, ok := workers[k]; ok {
					w.t = t
					continue
				}
				w := &worker{t: t, index: -1}
				// As the kubelet: a liveness or startup probe counts as
				// passing until it fails; readiness as failing until it passes.
				w.state = t.Kind == Liveness
				w.next = t.StartedAt.Add(time.Duration(t.Probe.InitialDelaySeconds) * p.second)
				if now := p.now(); w.next.Before(now) {
					w.next = now
				}
				workers[k] = w
				q.push(w)
			}
			for k, w := range workers {
				if !seen[k] {
					if w.index >= 0 {
						q.remove(w)
					}
					delete(workers, k)
					delete(started, k.ContainerID)
				}
			}
		case <-timer.C:
			now := p.now()
			for len(q) > 0 && !q.peek().next.After(now) {
				w := q.pop()
				if w.stopped {
					continue
				}
				if w.t.Kind != Startup && w.t.HasStartup && !started[w.t.ContainerID] {
					// Held off until the startup probe succeeds.
					w.next = now.Add(p.seconds(w.t.Probe.PeriodSeconds, 10))
					q.push(w)
					continue
				}
				w.running = true
				t := w.t
				go func() {
					select {
					case sem <- struct{}{}:
					case <-ctx.Done():
						return
					}
					ok, out := p.runOnce(ctx, t)
					<-sem
					select {
					case finished <- done{w, ok, out}:
					case <-ctx.Done():
					}
				}()
			}
		case d := <-finished:
			w := d.w
			w.running = false
			if _, live := workers[w.t.key()]; !live {
				continue
			}
			res, send := p.apply(w, d.ok, d.output)
			if w.t.Kind == Startup && res.Success {
				started[w.t.ContainerID] = true
				w.stopped = true
			}
			if send {
				select {
				case p.results <- res:
				case <-ctx.Done():
					return
				}
			}
			if !w.stopped {
				w.next = p.now().Add(p.seconds(w.t.Probe.PeriodSeconds, 10))
				q.push(w)
			}
		}
	}
}

// apply counts one outcome against the thresholds and says whether the
// agent must hear of it.
func (p *Prober) apply(w *worker, ok bool, output string) (Result, bool) {
	pr := w.t.Probe
	successThreshold := max(pr.SuccessThreshold, 1)
	failureThreshold := max(pr.FailureThreshold, 1)
	if pr.FailureThreshold == 0 {
		failureThreshold = 3
	}
	res := Result{Target: w.t, Output: output}
	before := w.state
	if ok {
		w.failures = 0
		w.successes++
		if w.successes >= successThreshold {
			w.state = true
		}
	} else {
		w.successes = 0
		w.failures++
		res.Failed = true
		if w.failures >= failureThreshold {
			w.state = false
			if w.t.Kind != Readiness {
				res.Exhausted = true
				w.stopped = true
			}
		}
	}
	res.Success = w.state
	return res, res.Failed || before != w.state || (w.t.Kind == Startup && w.state)
}

// Describe says what a probe does, for event messages.
func Describe(pr corev1.Probe) string {
	switch {
	case pr.Exec != nil:
		return fmt.Sprintf("exec %v", pr.Exec.Command)
	case pr.HTTPGet != nil:
		return fmt.Sprintf("http-get %s:%s%s", pr.HTTPGet.Host, pr.HTTPGet.Port.String(), pr.HTTPGet.Path)
	case pr.TCPSocket != nil:
		return fmt.Sprintf("tcp-socket :%s", pr.TCPSocket.Port.String())
	case pr.GRPC != nil:
		return fmt.Sprintf("grpc :%d", pr.GRPC.Port)
	}
	return "unknown"
}

// SortTargets orders targets stably (for comparing sets).
func SortTargets(ts []Target) {
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].ContainerID != ts[j].ContainerID {
			return ts[i].ContainerID < ts[j].ContainerID
		}
		return ts[i].Kind < ts[j].Kind
	})
}
