package nodemetrics

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/ballast-dev/ballast/internal/localapi"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

type fakeAgent struct {
	pods     []corev1.Pod
	problems []localapi.ManifestProblem
}

func (f *fakeAgent) Pods() []corev1.Pod                           { return f.pods }
func (f *fakeAgent) ManifestProblems() []localapi.ManifestProblem { return f.problems }

type fakeRuntime struct {
	ctrs      []*runtimeapi.ContainerStats
	sandboxes []*runtimeapi.PodSandboxStats
	noSandbox bool
	err       error
	sbCalls   int
	// pids are the containers' first processes; statsCalls and pidCalls
	// count ListContainerStats and verbose ContainerStatus calls.
	pids                 map[string]int
	statsCalls, pidCalls int
}

func (f *fakeRuntime) ContainerStats(context.Context, string) ([]*runtimeapi.ContainerStats, error) {
	f.statsCalls++
	return f.ctrs, f.err
}

func (f *fakeRuntime) ContainerPID(_ context.Context, id string) (int, error) {
	f.pidCalls++
	if pid, ok := f.pids[id]; ok {
		return pid, nil
	}
	return 0, errors.New("no such container")
}

func (f *fakeRuntime) PodSandboxStats(context.Context, string) ([]*runtimeapi.PodSandboxStats, bool, error) {
	f.sbCalls++
	if f.noSandbox {
		return nil, false, nil
	}
	return f.sandboxes, true, nil
}

type fakeHost struct{}

func (fakeHost) CPU() (time.Duration, error)     { return 100 * time.Second, nil }
func (fakeHost) Memory() (uint64, uint64, error) { return 8 << 30, 6 << 30, nil }
func (fakeHost) BootTime() (time.Time, error)    { return t0.Add(-1000 * time.Second), nil }

func running(name, id string, started time.Time, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, ContainerID: "containerd://" + id, RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}}}
}

func ctrStats(id string, cpuNs, ws uint64, at time.Time) *runtimeapi.ContainerStats {
	return &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: id},
		Cpu:        &runtimeapi.CpuUsage{Timestamp: at.UnixNano(), UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: cpuNs}},
		Memory:     &runtimeapi.MemoryUsage{Timestamp: at.UnixNano(), WorkingSetBytes: &runtimeapi.UInt64Value{Value: ws}},
	}
}

func newEnv(t *testing.T, cg Cgroups) (*Metrics, *fakeAgent, *fakeRuntime, *time.Time, http.Handler) {
	now := t0
	m := New(Options{NodeName: "n1", Now: func() time.Time { return now }})
	start := metav1.NewTime(t0.Add(-10 * time.Second))
	a := &fakeAgent{
		pods: []corev1.Pod{
			{ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "default", UID: types.UID("u-web")},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &start, ContainerStatuses: []corev1.ContainerStatus{
					running("app", "c1", t0.Add(-10*time.Second), 2), running("side", "c2", t0.Add(-10*time.Second), 0)}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "db-n1", Namespace: "kube-system", UID: types.UID("u-db")},
				Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "db",
					State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}},
		},
		problems: []localapi.ManifestProblem{{File: "/etc/kubernetes/manifests/bad.yaml", Error: "bad"}},
	}
	rt := &fakeRuntime{noSandbox: true, ctrs: []*runtimeapi.ContainerStats{
		ctrStats("c1", 5e9, 100<<20, t0), // 5 core-seconds in 10 s: 0.5 cores on average
		ctrStats("c2", 1e9, 20<<20, t0),
		ctrStats("old", 9e9, 1<<20, t0), // not a running container of any pod
	}}
	return m, a, rt, &now, m.Handler(a, rt, fakeHost{}, cg)
}

func get(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != 200 {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus text parser: %v\n%s", err, text)
	}
	return fams
}

// value finds the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no %s with labels %v", name, want)
	return 0
}

func TestMetrics(t *testing.T) {
	m, _, _, _, h := newEnv(t, nil)
	call := m.RuntimeInterceptor()
	ok := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	notFound := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		return status.Error(codes.NotFound, "no such container")
	}
	_ = call(context.Background(), "/runtime.v1.RuntimeService/StartContainer", nil, nil, nil, ok)
	_ = call(context.Background(), "/runtime.v1.RuntimeService/StartContainer", nil, nil, nil, ok)
	if err := call(context.Background(), "/runtime.v1.RuntimeService/ContainerStatus", nil, nil, nil, notFound); status.Code(err) != codes.NotFound {
		t.Fatalf("the interceptor changed the error: %v", err)
	}
	m.ObservePodStart(150 * time.Millisecond)
	m.ObserveMirrorSyncLag(3 * time.Millisecond)

	fams := parse(t, get(t, h, "/metrics"))
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ballast_node_pods", map[string]string{"phase": "Running"}, 1},
		{"ballast_node_pods", map[string]string{"phase": "Pending"}, 1},
		{"ballast_node_pods", map[string]string{"phase": "Failed"}, 0},
		{"ballast_node_container_restarts_total", map[string]string{"pod": "web-n1", "container": "app", "namespace": "default"}, 2},
		{"ballast_node_manifest_problems", nil, 1},
		{"ballast_node_manifest_problem", map[string]string{"file": "/etc/kubernetes/manifests/bad.yaml"}, 1},
		{"ballast_node_runtime_operations_duration_seconds", map[string]string{"method": "StartContainer", "code": "OK"}, 2},
		{"ballast_node_runtime_operations_duration_seconds", map[string]string{"method": "ContainerStatus", "code": "NotFound"}, 1},
		{"ballast_node_pod_start_duration_seconds", nil, 1},
		{"ballast_node_mirror_sync_lag_seconds", nil, 1},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Errorf("Go and process metrics missing")
	}
}

func summary(t *testing.T, h http.Handler) statsapi.Summary {
	t.Helper()
	var s statsapi.Summary
	if err := json.Unmarshal([]byte(get(t, h, "/stats/summary")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSummary(t *testing.T) {
	_, _, rt, now, h := newEnv(t, nil)
	s := summary(t, h)
	if s.Node.NodeName != "n1" || s.Node.CPU == nil || *s.Node.CPU.UsageCoreNanoSeconds != 100e9 ||
		*s.Node.Memory.WorkingSetBytes != 2<<30 || *s.Node.Memory.AvailableBytes != 6<<30 {
		t.Fatalf("node: %+v", s.Node)
	}
	// First sample: the average since boot (100 s of CPU in 1000 s).
	if got := *s.Node.CPU.UsageNanoCores; got != 1e8 {
		t.Errorf("node usageNanoCores %d, want 1e8", got)
	}
	if len(s.Pods) != 1 || s.Pods[0].PodRef.Name != "web-n1" || s.Pods[0].PodRef.UID != "u-web" || len(s.Pods[0].Containers) != 2 {
		t.Fatalf("pods (only running containers of the agent's pods): %+v", s.Pods)
	}
	p := s.Pods[0]
	app := p.Containers[0]
	if app.Name != "app" || *app.CPU.UsageCoreNanoSeconds != 5e9 || *app.CPU.UsageNanoCores != 5e8 || *app.Memory.WorkingSetBytes != 100<<20 {
		t.Errorf("container app: cpu %+v memory %+v", app.CPU, app.Memory)
	}
	// Summed from the containers: ListPodSandboxStats is unimplemented.
	if *p.CPU.UsageCoreNanoSeconds != 6e9 || *p.CPU.UsageNanoCores != 6e8 || *p.Memory.WorkingSetBytes != 120<<20 {
		t.Errorf("pod: cpu %+v memory %+v", p.CPU, p.Memory)
	}

	// Two seconds later: rates over the interval since the last sample.
	*now = t0.Add(2 * time.Second)
	rt.ctrs = []*runtimeapi.ContainerStats{ctrStats("c1", 5e9+4e8, 101<<20, *now), ctrStats("c2", 1e9, 20<<20, *now)}
	s = summary(t, h)
	if got := *s.Pods[0].Containers[0].CPU.UsageNanoCores; got != 2e8 {
		t.Errorf("app usageNanoCores over 2 s = %d, want 2e8", got)
	}
	if rt.sbCalls != 1 {
		t.Errorf("ListPodSandboxStats asked %d times after answering Unimplemented, want 1", rt.sbCalls)
	}
}

func TestSummaryFromSandboxStats(t *testing.T) {
	_, _, rt, _, h := newEnv(t, nil)
	rt.noSandbox = false
	rt.sandboxes = []*runtimeapi.PodSandboxStats{{
		Attributes: &runtimeapi.PodSandboxAttributes{Metadata: &runtimeapi.PodSandboxMetadata{Uid: "u-web"}},
		Linux: &runtimeapi.LinuxPodSandboxStats{
			Cpu:    &runtimeapi.CpuUsage{Timestamp: t0.UnixNano(), UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: 7e9}, UsageNanoCores: &runtimeapi.UInt64Value{Value: 3e8}},
			Memory: &runtimeapi.MemoryUsage{Timestamp: t0.UnixNano(), WorkingSetBytes: &runtimeapi.UInt64Value{Value: 130 << 20}},
		},
	}}
	p := summary(t, h).Pods[0]
	if *p.CPU.UsageCoreNanoSeconds != 7e9 || *p.CPU.UsageNanoCores != 3e8 || *p.Memory.WorkingSetBytes != 130<<20 {
		t.Errorf("pod from its sandbox: cpu %+v memory %+v", p.CPU, p.Memory)
	}
}

func TestResourceMetrics(t *testing.T) {
	_, _, rt, _, h := newEnv(t, nil)
	fams := parse(t, get(t, h, "/metrics/resource"))
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"container_cpu_usage_seconds_total", map[string]string{"container": "app", "pod": "web-n1", "namespace": "default"}, 5},
		{"container_memory_working_set_bytes", map[string]string{"container": "side", "pod": "web-n1"}, 20 << 20},
		{"pod_cpu_usage_seconds_total", map[string]string{"pod": "web-n1", "namespace": "default"}, 6},
		{"pod_memory_working_set_bytes", map[string]string{"pod": "web-n1"}, 120 << 20},
		{"node_cpu_usage_seconds_total", nil, 100},
		{"node_memory_working_set_bytes", nil, 2 << 30},
		{"resource_scrape_error", nil, 0},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if fams["container_cpu_usage_seconds_total"].Metric[0].TimestampMs == nil {
		t.Errorf("resource metrics carry no timestamp")
	}

	rt.err = errors.New("runtime down")
	fams = parse(t, get(t, h, "/metrics/resource"))
	if got := value(t, fams, "resource_scrape_error", nil); got != 1 {
		t.Errorf("resource_scrape_error with the runtime down = %v", got)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/stats/summary", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "runtime down") {
		t.Errorf("/stats/summary with the runtime down: %d %s", rec.Code, rec.Body)
	}
}
