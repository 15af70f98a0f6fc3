package metricsapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

type fakeCluster struct {
	nodes []corev1.Node
	pods  []corev1.Pod
}

func (f *fakeCluster) Nodes(_ context.Context, sel labels.Selector) ([]corev1.Node, error) {
	var out []corev1.Node
	for _, n := range f.nodes {
		if sel.Matches(labels.Set(n.Labels)) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (f *fakeCluster) Pods(_ context.Context, ns string, sel labels.Selector) ([]corev1.Pod, error) {
	var out []corev1.Pod
	for _, p := range f.pods {
		if (ns == "" || p.Namespace == ns) && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out, nil
}

func u64(v uint64) *uint64 { return &v }

func TestMetricsAPI(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	sum := statsapi.Summary{
		Node: statsapi.NodeStats{NodeName: "n1",
			CPU:    &statsapi.CPUStats{Time: at, UsageNanoCores: u64(250_000_000), UsageCoreNanoSeconds: u64(1e12)},
			Memory: &statsapi.MemoryStats{Time: at, WorkingSetBytes: u64(512 << 20)}},
		Pods: []statsapi.PodStats{{PodRef: statsapi.PodReference{Name: "web-n1", Namespace: "default"},
			Containers: []statsapi.ContainerStats{{Name: "web",
				CPU:    &statsapi.CPUStats{Time: at, UsageNanoCores: u64(3_000_000)},
				Memory: &statsapi.MemoryStats{Time: at, WorkingSetBytes: u64(10 << 20)}}}}},
	}
	var paths []string
	kubelet := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.RequestURI())
		_ = json.NewEncoder(w).Encode(sum)
	}))
	defer kubelet.Close()
	a := &API{
		Dial: func(_ context.Context, node string) (*http.Client, *url.URL, error) {
			if node != "n1" {
				return nil, nil, errors.New("node n2 is away")
			}
			u, _ := url.Parse(kubelet.URL)
			return kubelet.Client(), u, nil
		},
		Cluster: &fakeCluster{
			nodes: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"role": "cp"}}}, {ObjectMeta: metav1.ObjectMeta{Name: "n2"}}},
			pods: []corev1.Pod{
				{ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "default", Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{NodeName: "n1"}},
				{ObjectMeta: metav1.ObjectMeta{Name: "db-n2", Namespace: "default"}, Spec: corev1.PodSpec{NodeName: "n2"}},
			},
		},
	}
	ds := a.Delegates()
	ctx := context.Background()

	o, err := ds[0].List(ctx, "", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	nl := o.(*metricsv1beta1.NodeMetricsList)
	if len(nl.Items) != 1 || nl.Items[0].Name != "n1" || nl.Items[0].Labels["role"] != "cp" || nl.Kind != "NodeMetricsList" {
		t.Fatalf("node metrics (n2 cannot be read: left out): %+v", nl)
	}
	if cpu, mem := nl.Items[0].Usage.Cpu(), nl.Items[0].Usage.Memory(); cpu.MilliValue() != 250 || mem.Value() != 512<<20 {
		t.Errorf("node usage cpu %v memory %v", cpu, mem)
	}
	if paths[0] != "/stats/summary?only_cpu_and_memory=true" {
		t.Errorf("asked the node for %s", paths[0])
	}

	o, err = ds[1].List(ctx, "default", labels.SelectorFromSet(labels.Set{"app": "web"}))
	if err != nil {
		t.Fatal(err)
	}
	pl := o.(*metricsv1beta1.PodMetricsList)
	if len(pl.Items) != 1 || pl.Items[0].Name != "web-n1" || len(pl.Items[0].Containers) != 1 {
		t.Fatalf("pod metrics: %+v", pl)
	}
	if cpu := pl.Items[0].Containers[0].Usage.Cpu(); cpu.MilliValue() != 3 {
		t.Errorf("container cpu %v", cpu)
	}

	if _, err := ds[1].Get(ctx, "default", "nope"); !apierrors.IsNotFound(err) {
		t.Errorf("get missing pod metrics: %v", err)
	}
	if _, err := ds[1].Get(ctx, "default", "db-n2"); !apierrors.IsServiceUnavailable(err) {
		t.Errorf("get pod metrics of an unreachable node: %v", err)
	}
	if o, err := ds[0].Get(ctx, "", "n1"); err != nil || o.(*metricsv1beta1.NodeMetrics).Name != "n1" {
		t.Errorf("get node metrics: %v %v", o, err)
	}
}
