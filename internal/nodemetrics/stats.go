package nodemetrics

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// stats builds the kubelet's summary from the agent's pods, the
// containers' cgroups (or the runtime's CRI stats where a cgroup cannot be
// read) and the host's totals.
type stats struct {
	m     *Metrics
	agent Agent
	rt    Runtime
	host  Host
	// cg reads containers' cgroups; nil: the runtime's stats serve all.
	cg *cgroupStats
	// noSandboxStats: the runtime answered ListPodSandboxStats with
	// Unimplemented once; pods are then summed from their containers.
	noSandboxStats atomic.Bool
}

// Summary reads the node's summary now.
func (s *stats) Summary(ctx context.Context) (*statsapi.Summary, error) {
	now := s.m.now()
	pods := s.agent.Pods()
	ids := runningContainers(pods)
	byID := map[string]*runtimeapi.ContainerStats{}
	if s.cg != nil {
		byID = s.cg.read(ctx, ids, now)
	}
	bySandbox := map[string]*runtimeapi.PodSandboxStats{}
	if len(byID) < len(ids) {
		if err := s.fromRuntime(ctx, byID, bySandbox); err != nil {
			return nil, err
		}
	}
	sum := &statsapi.Summary{Pods: []statsapi.PodStats{}}
	for _, p := range pods {
		if ps, ok := s.podStats(&p, byID, bySandbox[string(p.UID)], now); ok {
			sum.Pods = append(sum.Pods, ps)
		}
	}
	sum.Node = s.nodeStats(now)
	s.m.rates.prune(now)
	return sum, nil
}

// fromRuntime adds to byID the runtime's CRI stats of the containers it
// lacks, and fills bySandbox with the runtime's pod figures when the
// runtime gives them (when every container is read from its cgroup, pods
// are their containers' sums and the runtime is not asked at all).
func (s *stats) fromRuntime(ctx context.Context, byID map[string]*runtimeapi.ContainerStats, bySandbox map[string]*runtimeapi.PodSandboxStats) error {
	ctr, err := s.rt.ContainerStats(ctx, s.m.node)
	if err != nil {
		return err
	}
	for _, c := range ctr {
		if id := c.GetAttributes().GetId(); id != "" && byID[id] == nil {
			byID[id] = c
		}
	}
	if s.noSandboxStats.Load() {
		return nil
	}
	sbs, ok, err := s.rt.PodSandboxStats(ctx, s.m.node)
	switch {
	case err != nil:
		s.m.log.Debug("pod sandbox stats", "err", err)
	case !ok:
		s.noSandboxStats.Store(true)
	}
	for _, sb := range sbs {
		if md := sb.GetAttributes().GetMetadata(); md != nil && sb.GetLinux() != nil {
			bySandbox[md.Uid] = sb
		}
	}
	return nil
}

// runningContainers are the IDs of the pods' running containers.
func runningContainers(pods []corev1.Pod) []string {
	var ids []string
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil && cs.ContainerID != "" {
				ids = append(ids, containerID(cs.ContainerID))
			}
		}
	}
	return ids
}

// containerID is the runtime's ID in a status's "containerd://<id>".
func containerID(s string) string {
	_, id, _ := strings.Cut(s, "://")
	return id
}

// podStats is one pod's figures: its running containers' from the runtime,
// the pod's from its sandbox's when the runtime gives them, else summed.
func (s *stats) podStats(p *corev1.Pod, byID map[string]*runtimeapi.ContainerStats, sb *runtimeapi.PodSandboxStats, now time.Time) (statsapi.PodStats, bool) {
	ps := statsapi.PodStats{PodRef: statsapi.PodReference{Name: p.Name, Namespace: p.Namespace, UID: string(p.UID)}, Containers: []statsapi.ContainerStats{}}
	if p.Status.StartTime != nil {
		ps.StartTime = *p.Status.StartTime
	}
	var cpuTotal, memWS, memUsage, memRSS uint64
	var cpuRate uint64
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil || cs.ContainerID == "" {
			continue
		}
		id := containerID(cs.ContainerID)
		st := byID[id]
		if st == nil {
			continue
		}
		c := statsapi.ContainerStats{Name: cs.Name, StartTime: cs.State.Running.StartedAt}
		c.CPU = s.cpuStats("c/"+id, st.GetCpu(), cs.State.Running.StartedAt.Time, now)
		c.Memory = memoryStats(st.GetMemory(), now)
		ps.Containers = append(ps.Containers, c)
		if c.CPU != nil {
			cpuTotal += deref(c.CPU.UsageCoreNanoSeconds)
			cpuRate += deref(c.CPU.UsageNanoCores)
		}
		if c.Memory != nil {
			memWS += deref(c.Memory.WorkingSetBytes)
			memUsage += deref(c.Memory.UsageBytes)
			memRSS += deref(c.Memory.RSSBytes)
		}
	}
	if len(ps.Containers) == 0 {
		return ps, false
	}
	if l := sb.GetLinux(); l != nil && l.GetCpu().GetUsageCoreNanoSeconds() != nil {
		ps.CPU = s.cpuStats("p/"+string(p.UID), l.Cpu, ps.StartTime.Time, now)
		ps.Memory = memoryStats(l.GetMemory(), now)
		return ps, true
	}
	t := metav1.NewTime(now)
	ps.CPU = &statsapi.CPUStats{Time: t, UsageCoreNanoSeconds: &cpuTotal, UsageNanoCores: &cpuRate}
	ps.Memory = &statsapi.MemoryStats{Time: t, WorkingSetBytes: &memWS, UsageBytes: &memUsage, RSSBytes: &memRSS}
	return ps, true
}

// cpuStats turns a CRI CPU sample into the kubelet's, with a usage rate:
// the runtime's when it gives one, else computed (see rates.rate).
func (s *stats) cpuStats(key string, u *runtimeapi.CpuUsage, started, now time.Time) *statsapi.CPUStats {
	if u == nil || u.UsageCoreNanoSeconds == nil {
		return nil
	}
	at := now
	if u.Timestamp > 0 {
		at = time.Unix(0, u.Timestamp)
	}
	total := u.UsageCoreNanoSeconds.Value
	rate := s.m.rates.rate(key, total, at, started)
	if u.UsageNanoCores != nil && u.UsageNanoCores.Value > 0 {
		rate = u.UsageNanoCores.Value
	}
	return &statsapi.CPUStats{Time: metav1.NewTime(at), UsageCoreNanoSeconds: &total, UsageNanoCores: &rate}
}

func memoryStats(u *runtimeapi.MemoryUsage, now time.Time) *statsapi.MemoryStats {
	if u == nil {
		return nil
	}
	at := now
	if u.Timestamp > 0 {
		at = time.Unix(0, u.Timestamp)
	}
	ms := &statsapi.MemoryStats{Time: metav1.NewTime(at)}
	val := func(v *runtimeapi.UInt64Value) *uint64 {
		if v == nil {
			return nil
		}
		x := v.Value
		return &x
	}
	ms.WorkingSetBytes, ms.UsageBytes, ms.RSSBytes = val(u.WorkingSetBytes), val(u.UsageBytes), val(u.RssBytes)
	ms.AvailableBytes, ms.PageFaults, ms.MajorPageFaults = val(u.AvailableBytes), val(u.PageFaults), val(u.MajorPageFaults)
	return ms
}

// nodeStats are the node's totals from the host; a figure that cannot be
// read is left out (and logged at debug level).
func (s *stats) nodeStats(now time.Time) statsapi.NodeStats {
	ns := statsapi.NodeStats{NodeName: s.m.node}
	t := metav1.NewTime(now)
	boot, err := s.host.BootTime()
	if err == nil {
		ns.StartTime = metav1.NewTime(boot)
	}
	if cpu, err := s.host.CPU(); err == nil {
		total := uint64(cpu.Nanoseconds())
		rate := s.m.rates.rate("node", total, now, boot)
		ns.CPU = &statsapi.CPUStats{Time: t, UsageCoreNanoSeconds: &total, UsageNanoCores: &rate}
	} else {
		s.m.log.Debug("node CPU", "err", err)
	}
	if total, avail, err := s.host.Memory(); err == nil {
		used := total - min(avail, total)
		ns.Memory = &statsapi.MemoryStats{Time: t, AvailableBytes: &avail, UsageBytes: &used, WorkingSetBytes: &used}
	} else {
		s.m.log.Debug("node memory", "err", err)
	}
	return ns
}

func deref(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

func (s *stats) serveSummary(w http.ResponseWriter, r *http.Request) {
	sum, err := s.Summary(r.Context())
	if err != nil {
		http.Error(w, fmt.Sprintf("reading stats from the container runtime: %v", err), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(sum)
}

// rates keeps the previous cumulative CPU sample of each container, pod
// and the node, to compute usage rates between scrapes.
type rates struct {
	mu   sync.Mutex
	prev map[string]sample
}

type sample struct {
	usage    uint64 // core-nanoseconds
	at, seen time.Time
}

func newRates() *rates { return &rates{prev: map[string]sample{}} }

// minWindow is the shortest interval a rate is computed over.
const minWindow = time.Second

// rate is the usage of key in nanocores: over the time since its previous
// sample when that is at least minWindow old (the sample is then replaced);
// else, for the first sample, the average since started (the container's
// start, the node's boot), so the first answer is already meaningful.
func (r *rates) rate(key string, usage uint64, at, started time.Time) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.prev[key]
	if ok && usage < p.usage {
		ok = false // counter reset: the container was replaced
	}
	if !ok {
		r.prev[key] = sample{usage: usage, at: at, seen: at}
		return average(usage, at.Sub(started))
	}
	p.seen = at
	dt := at.Sub(p.at)
	if dt < minWindow {
		r.prev[key] = p
		return average(usage, at.Sub(started))
	}
	r.prev[key] = sample{usage: usage, at: at, seen: at}
	return average(usage-p.usage, dt)
}

func average(usage uint64, over time.Duration) uint64 {
	if over <= 0 {
		return 0
	}
	return uint64(float64(usage) / over.Seconds())
}

// prune forgets samples not seen for 10 minutes (containers that are gone).
func (r *rates) prune(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.prev {
		if now.Sub(p.seen) > 10*time.Minute {
			delete(r.prev, k)
		}
	}
}

// resourceCollector serves the kubelet's /metrics/resource at scrape time.
type resourceCollector struct{ stats *stats }

var (
	resLabelsC = []string{"container", "pod", "namespace"}
	resLabelsP = []string{"pod", "namespace"}

	containerCPUDesc   = prometheus.NewDesc("container_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the container in core-seconds", resLabelsC, nil)
	containerMemDesc   = prometheus.NewDesc("container_memory_working_set_bytes", "[STABLE] Current working set of the container in bytes", resLabelsC, nil)
	containerStartDesc = prometheus.NewDesc("container_start_time_seconds", "[STABLE] Start time of the container since unix epoch in seconds", resLabelsC, nil)
	podCPUDesc         = prometheus.NewDesc("pod_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds", resLabelsP, nil)
	podMemDesc         = prometheus.NewDesc("pod_memory_working_set_bytes", "[STABLE] Current working set of the pod in bytes", resLabelsP, nil)
	nodeCPUDesc        = prometheus.NewDesc("node_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the node in core-seconds", nil, nil)
	nodeMemDesc        = prometheus.NewDesc("node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes", nil, nil)
	scrapeErrDesc      = prometheus.NewDesc("resource_scrape_error", "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

func (c *resourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{containerCPUDesc, containerMemDesc, containerStartDesc, podCPUDesc, podMemDesc, nodeCPUDesc, nodeMemDesc, scrapeErrDesc} {
		ch <- d
	}
}

// Collect writes the kubelet's resource metrics, each with its sample's
// timestamp, as the kubelet does.
func (c *resourceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sum, err := c.stats.Summary(ctx)
	if err != nil {
		c.stats.m.log.Warn("reading resource metrics", "err", err)
		ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, 0)
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, at metav1.Time, labels ...string) {
		ch <- prometheus.NewMetricWithTimestamp(at.Time, prometheus.MustNewConstMetric(d, t, v, labels...))
	}
	n := sum.Node
	if n.CPU != nil {
		emit(nodeCPUDesc, prometheus.CounterValue, float64(deref(n.CPU.UsageCoreNanoSeconds))/1e9, n.CPU.Time)
	}
	if n.Memory != nil {
		emit(nodeMemDesc, prometheus.GaugeValue, float64(deref(n.Memory.WorkingSetBytes)), n.Memory.Time)
	}
	for _, p := range sum.Pods {
		if p.CPU != nil {
			emit(podCPUDesc, prometheus.CounterValue, float64(deref(p.CPU.UsageCoreNanoSeconds))/1e9, p.CPU.Time, p.PodRef.Name, p.PodRef.Namespace)
		}
		if p.Memory != nil {
			emit(podMemDesc, prometheus.GaugeValue, float64(deref(p.Memory.WorkingSetBytes)), p.Memory.Time, p.PodRef.Name, p.PodRef.Namespace)
		}
		for _, ct := range p.Containers {
			l := []string{ct.Name, p.PodRef.Name, p.PodRef.Namespace}
			if ct.CPU != nil {
				emit(containerCPUDesc, prometheus.CounterValue, float64(deref(ct.CPU.UsageCoreNanoSeconds))/1e9, ct.CPU.Time, l...)
			}
			if ct.Memory != nil {
				emit(containerMemDesc, prometheus.GaugeValue, float64(deref(ct.Memory.WorkingSetBytes)), ct.Memory.Time, l...)
			}
			ch <- prometheus.MustNewConstMetric(containerStartDesc, prometheus.GaugeValue, float64(ct.StartTime.Unix()), l...)
		}
	}
}
