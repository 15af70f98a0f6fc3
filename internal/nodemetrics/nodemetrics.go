// Package nodemetrics owns what the node agent tells about itself and its
// pods in numbers: /metrics (Prometheus: pods by phase, container restarts,
// manifest problems, container runtime call latency, manifest-to-running
// time, mirror sync lag, Go and process figures), /metrics/resource (the
// kubelet's resource metrics, what metrics-server reads) and /stats/summary
// (the kubelet's summary API: CPU and memory per pod and container, read
// from the containers' cgroups as cAdvisor does, from the runtime's CRI
// stats where a cgroup cannot be read, and node totals from /proc).
//
// Everything is read when it is asked for: no goroutine polls, so an idle
// node stays idle with metrics on. The only state kept between scrapes is
// the previous CPU sample of each container, pod and the node, to compute
// usage rates as the kubelet does (UsageNanoCores).
package nodemetrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/localapi"
)

// Agent is what the metrics read from the node agent (its public read API).
type Agent interface {
	// Pods returns the pods the agent runs, with their status.
	Pods() []corev1.Pod
	// ManifestProblems returns the manifest files the agent cannot use.
	ManifestProblems() []localapi.ManifestProblem
}

// Runtime is what resource figures are read from (internal/cri.Runtime).
type Runtime interface {
	ContainerStats(ctx context.Context, node string) ([]*runtimeapi.ContainerStats, error)
	// PodSandboxStats reports ok false when the runtime does not implement it.
	PodSandboxStats(ctx context.Context, node string) ([]*runtimeapi.PodSandboxStats, bool, error)
	// ContainerPID is a running container's first process, to find its cgroup.
	ContainerPID(ctx context.Context, id string) (int, error)
}

// Host reads the node's totals (ProcHost reads /proc).
type Host interface {
	// CPU returns the CPU time the node spent working (not idle) since boot.
	CPU() (time.Duration, error)
	// Memory returns total and available memory in bytes.
	Memory() (total, available uint64, err error)
	// BootTime is when the node started.
	BootTime() (time.Time, error)
}

// Metrics are a node's metrics. Make one with New before dialing the
// runtime (its RuntimeInterceptor goes into cri.Dial), then serve Handler
// once the agent exists.
type Metrics struct {
	node string
	log  *slog.Logger
	now  func() time.Time

	reg            *prometheus.Registry
	runtimeLatency *prometheus.HistogramVec
	podStart       prometheus.Histogram
	mirrorLag      prometheus.Histogram

	rates *rates
}

// Options configure New.
type Options struct {
	// NodeName is the node's name (in /stats/summary, and to select its
	// containers in the runtime).
	NodeName string
	Log      *slog.Logger
	// Now is the clock; nil for time.Now.
	Now func() time.Time
}

// New makes the node's metrics and registers them.
func New(o Options) *Metrics {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Metrics{node: o.NodeName, log: o.Log, now: o.Now, reg: prometheus.NewRegistry(), rates: newRates()}
	m.runtimeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ballast_node_runtime_operations_duration_seconds",
		Help:    "Duration of container runtime (CRI) calls, by gRPC method and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"method", "code"})
	m.podStart = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ballast_node_pod_start_duration_seconds",
		Help:    "Time from a manifest file change to its pod running (every container started).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})
	m.mirrorLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ballast_node_mirror_sync_lag_seconds",
		Help:    "Time from a change of the node's pods to the API server's mirror pods being brought in step.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	m.reg.MustRegister(m.runtimeLatency, m.podStart, m.mirrorLag,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObservePodStart records the time from a manifest file change to its pod
// running. Contract (for the agent): call it once per pod start, when the
// pod created or replaced because of a file change first has every regular
// container running, with the time since the agent read that change of the
// file (the watch event); not for restarts of containers in a running pod,
// nor for pods adopted after an agent restart. Safe from any goroutine.
func (m *Metrics) ObservePodStart(d time.Duration) { m.podStart.Observe(d.Seconds()) }

// ObserveMirrorSyncLag records how long the mirror sync took to bring the API
// in step after the agent's pods changed (internal/mirror's Options.ObserveSyncLag).
func (m *Metrics) ObserveMirrorSyncLag(d time.Duration) { m.mirrorLag.Observe(d.Seconds()) }

// Handler serves /metrics, /metrics/resource and /stats/summary for agent,
// reading resource figures at each request from the containers' cgroups
// through cg (nil: from rt's CRI stats only), from rt for what cg cannot
// read, and from host for the node's totals.
func (m *Metrics) Handler(agent Agent, rt Runtime, host Host, cg Cgroups) http.Handler {
	m.reg.MustRegister(&stateCollector{agent: agent})
	st := &stats{m: m, agent: agent, rt: rt, host: host}
	if cg != nil {
		st.cg = &cgroupStats{cg: cg, rt: rt}
	}
	resReg := prometheus.NewRegistry()
	resReg.MustRegister(&resourceCollector{stats: st})
	mux := http.NewServeMux()
	opts := promhttp.HandlerOpts{ErrorLog: slogPrinter{m.log}, ErrorHandling: promhttp.ContinueOnError}
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, opts))
	mux.Handle("GET /metrics/resource", promhttp.HandlerFor(resReg, opts))
	mux.HandleFunc("GET /stats/summary", st.serveSummary)
	return mux
}

// Paths are the paths Handler serves (for mounting on the node's APIs).
var Paths = []string{"/metrics", "/metrics/resource", "/stats/summary"}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("serving metrics", "err", v) }

// stateCollector reports the agent's pods and problems at scrape time.
type stateCollector struct{ agent Agent }

var (
	podsDesc     = prometheus.NewDesc("ballast_node_pods", "Pods the node runs, by phase.", []string{"phase"}, nil)
	restartsDesc = prometheus.NewDesc("ballast_node_container_restarts_total",
		"Restarts of each container of the node's pods.", []string{"namespace", "pod", "container"}, nil)
	problemsDesc = prometheus.NewDesc("ballast_node_manifest_problems",
		"Manifest files the node cannot use (each keeps its last good pod, if any).", nil, nil)
	problemDesc = prometheus.NewDesc("ballast_node_manifest_problem",
		"1 for each manifest file the node cannot use.", []string{"file"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- podsDesc
	ch <- restartsDesc
	ch <- problemsDesc
	ch <- problemDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	phases := map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodRunning: 0, corev1.PodSucceeded: 0, corev1.PodFailed: 0, corev1.PodUnknown: 0}
	for _, p := range c.agent.Pods() {
		phase := p.Status.Phase
		if phase == "" {
			phase = corev1.PodPending
		}
		phases[phase]++
		for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
			for _, cs := range list {
				ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(cs.RestartCount), p.Namespace, p.Name, cs.Name)
			}
		}
	}
	for phase, n := range phases {
		ch <- prometheus.MustNewConstMetric(podsDesc, prometheus.GaugeValue, float64(n), string(phase))
	}
	problems := c.agent.ManifestProblems()
	ch <- prometheus.MustNewConstMetric(problemsDesc, prometheus.GaugeValue, float64(len(problems)))
	for _, p := range problems {
		ch <- prometheus.MustNewConstMetric(problemDesc, prometheus.GaugeValue, 1, p.File)
	}
}
