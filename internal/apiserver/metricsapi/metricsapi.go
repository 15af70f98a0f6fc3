// Package metricsapi serves metrics.k8s.io/v1beta1 (NodeMetrics and
// PodMetrics, the API behind `kubectl top node` and `kubectl top pod`) in
// `ballast server`, as metrics-server does for kube-apiserver, but computed
// on request: each answer reads the /stats/summary of the nodes concerned
// through the server's node dialer. Nothing is polled or cached.
package metricsapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/ballast-dev/ballast/internal/apiserver"
	res "github.com/ballast-dev/ballast/internal/apiserver/resource"
	"github.com/ballast-dev/ballast/internal/nodemetrics"
)

// Group and Version of the metrics API.
const (
	Group   = "metrics.k8s.io"
	Version = "v1beta1"
)

// Dial reaches a node's kubelet API (the server's node dialer).
type Dial func(ctx context.Context, node string) (*http.Client, *url.URL, error)

// Cluster reads the nodes and pods the metrics are about.
type Cluster interface {
	Nodes(ctx context.Context, sel labels.Selector) ([]corev1.Node, error)
	// Pods lists the pods of namespace ("" for all) matching sel.
	Pods(ctx context.Context, namespace string, sel labels.Selector) ([]corev1.Pod, error)
}

// API answers the metrics API.
type API struct {
	Dial    Dial
	Cluster Cluster
	Log     *slog.Logger
	// Now is the clock; nil for time.Now.
	Now func() time.Time
}

// Delegates are the API's resources, for apiserver.Config.Delegates.
func (a *API) Delegates() []apiserver.Delegate {
	return []apiserver.Delegate{
		{
			Info: res.Info{Group: Group, Version: Version, Kind: "NodeMetrics", ListKind: "NodeMetricsList",
				Resource: "nodes", Singular: "", Verbs: []string{"get", "list"},
				New: func() any { return &metricsv1beta1.NodeMetrics{} }},
			Get: a.getNode,
			List: func(ctx context.Context, _ string, sel labels.Selector) (runtime.Object, error) {
				return a.listNodes(ctx, sel)
			},
		},
		{
			Info: res.Info{Group: Group, Version: Version, Kind: "PodMetrics", ListKind: "PodMetricsList",
				Resource: "pods", Singular: "", Namespaced: true, Verbs: []string{"get", "list"},
				New: func() any { return &metricsv1beta1.PodMetrics{} }},
			Get:  a.getPod,
			List: a.listPods,
		},
	}
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *API) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.New(slog.DiscardHandler)
}

var (
	nodeGR = metricsv1beta1.Resource("nodes")
	podGR  = metricsv1beta1.Resource("pods")
)

// summaries reads the /stats/summary of each node, at most 8 at once; a node
// that cannot be read is left out (logged), as metrics-server leaves out
// nodes it cannot scrape.
func (a *API) summaries(ctx context.Context, nodes []string) map[string]*statsapi.Summary {
	out := make(map[string]*statsapi.Summary, len(nodes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, n := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := a.summary(ctx, n)
			if err != nil {
				a.log().Warn("reading a node's stats for the metrics API", "node", n, "err", err)
				return
			}
			mu.Lock()
			out[n] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (a *API) summary(ctx context.Context, node string) (*statsapi.Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client, base, err := a.Dial(ctx, node)
	if err != nil {
		return nil, err
	}
	return nodemetrics.GetSummary(ctx, client, base)
}

// usage turns the kubelet's CPU and memory figures into a ResourceList.
func usage(cpu *statsapi.CPUStats, mem *statsapi.MemoryStats) (corev1.ResourceList, metav1.Time, bool) {
	if cpu == nil || cpu.UsageNanoCores == nil || mem == nil || mem.WorkingSetBytes == nil {
		return nil, metav1.Time{}, false
	}
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewScaledQuantity(int64(*cpu.UsageNanoCores), resource.Nano),
		corev1.ResourceMemory: *resource.NewQuantity(int64(*mem.WorkingSetBytes), resource.BinarySI),
	}, cpu.Time, true
}

func (a *API) nodeMetrics(n *corev1.Node, s *statsapi.Summary) (metricsv1beta1.NodeMetrics, bool) {
	u, at, ok := usage(s.Node.CPU, s.Node.Memory)
	if !ok {
		return metricsv1beta1.NodeMetrics{}, false
	}
	return metricsv1beta1.NodeMetrics{
		TypeMeta:   metav1.TypeMeta{Kind: "NodeMetrics", APIVersion: Group + "/" + Version},
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, CreationTimestamp: metav1.NewTime(a.now())},
		Timestamp:  at,
		Usage:      u,
	}, true
}

func (a *API) listNodes(ctx context.Context, sel labels.Selector) (*metricsv1beta1.NodeMetricsList, error) {
	nodes, err := a.Cluster.Nodes(ctx, sel)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(nodes))
	for i := range nodes {
		names[i] = nodes[i].Name
	}
	sums := a.summaries(ctx, names)
	list := &metricsv1beta1.NodeMetricsList{TypeMeta: metav1.TypeMeta{Kind: "NodeMetricsList", APIVersion: Group + "/" + Version},
		Items: []metricsv1beta1.NodeMetrics{}}
	for i := range nodes {
		if s := sums[nodes[i].Name]; s != nil {
			if m, ok := a.nodeMetrics(&nodes[i], s); ok {
				list.Items = append(list.Items, m)
			}
		}
	}
	return list, nil
}

func (a *API) getNode(ctx context.Context, _, name string) (runtime.Object, error) {
	nodes, err := a.Cluster.Nodes(ctx, labels.Everything())
	if err != nil {
		return nil, err
	}
	for i := range nodes {
		if nodes[i].Name != name {
			continue
		}
		s, err := a.summary(ctx, name)
		if err != nil {
			return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("metrics of node %s cannot be read: %v", name, err))
		}
		if m, ok := a.nodeMetrics(&nodes[i], s); ok {
			return &m, nil
		}
		break
	}
	return nil, apierrors.NewNotFound(nodeGR, name)
}

func (a *API) podMetrics(p *corev1.Pod, s *statsapi.Summary) (metricsv1beta1.PodMetrics, bool) {
	for _, ps := range s.Pods {
		if ps.PodRef.Namespace != p.Namespace || ps.PodRef.Name != p.Name {
			continue
		}
		m := metricsv1beta1.PodMetrics{
			TypeMeta:   metav1.TypeMeta{Kind: "PodMetrics", APIVersion: Group + "/" + Version},
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, CreationTimestamp: metav1.NewTime(a.now())},
			Containers: []metricsv1beta1.ContainerMetrics{},
		}
		for _, c := range ps.Containers {
			u, at, ok := usage(c.CPU, c.Memory)
			if !ok {
				continue
			}
			if at.After(m.Timestamp.Time) {
				m.Timestamp = at
			}
			m.Containers = append(m.Containers, metricsv1beta1.ContainerMetrics{Name: c.Name, Usage: u})
		}
		return m, len(m.Containers) > 0
	}
	return metricsv1beta1.PodMetrics{}, false
}

func (a *API) listPods(ctx context.Context, namespace string, sel labels.Selector) (runtime.Object, error) {
	pods, err := a.Cluster.Pods(ctx, namespace, sel)
	if err != nil {
		return nil, err
	}
	var nodes []string
	seen := map[string]bool{}
	for _, p := range pods {
		if n := p.Spec.NodeName; n != "" && !seen[n] {
			seen[n] = true
			nodes = append(nodes, n)
		}
	}
	sums := a.summaries(ctx, nodes)
	list := &metricsv1beta1.PodMetricsList{TypeMeta: metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: Group + "/" + Version},
		Items: []metricsv1beta1.PodMetrics{}}
	for i := range pods {
		if s := sums[pods[i].Spec.NodeName]; s != nil {
			if m, ok := a.podMetrics(&pods[i], s); ok {
				list.Items = append(list.Items, m)
			}
		}
	}
	return list, nil
}

func (a *API) getPod(ctx context.Context, namespace, name string) (runtime.Object, error) {
	pods, err := a.Cluster.Pods(ctx, namespace, labels.Everything())
	if err != nil {
		return nil, err
	}
	for i := range pods {
		if pods[i].Name != name || pods[i].Spec.NodeName == "" {
			continue
		}
		s, err := a.summary(ctx, pods[i].Spec.NodeName)
		if err != nil {
			return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("metrics of pod %s cannot be read from node %s: %v", name, pods[i].Spec.NodeName, err))
		}
		if m, ok := a.podMetrics(&pods[i], s); ok {
			return &m, nil
		}
		break
	}
	return nil, apierrors.NewNotFound(podGR, name)
}
