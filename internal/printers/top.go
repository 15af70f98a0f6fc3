package printers

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Usage is what kubectl top shows of one node, pod or container.
type Usage struct {
	Namespace, Pod, Name string
	NanoCPU              int64 // CPU cores used, in billionths
	MemoryBytes          int64
}

// milli is CPU in thousandths of a core, rounded up as resource.Quantity's
// MilliValue (what kubectl top prints).
func milli(nano int64) int64 { return (nano + 999_999) / 1_000_000 }

// NodeUsage reads a node's usage from its summary (ok false when the
// summary has no CPU or memory figure).
func NodeUsage(s *statsapi.Summary) (Usage, bool) {
	n := s.Node
	if n.CPU == nil || n.CPU.UsageNanoCores == nil || n.Memory == nil || n.Memory.WorkingSetBytes == nil {
		return Usage{}, false
	}
	return Usage{Name: n.NodeName, NanoCPU: int64(*n.CPU.UsageNanoCores), MemoryBytes: int64(*n.Memory.WorkingSetBytes)}, true
}

// PodUsage reads each pod's usage (the sum of its containers', as
// metrics-server reports a pod) or, with containers, each container's,
// from a summary; namespace "" means all namespaces. Sorted by namespace,
// pod and container.
func PodUsage(s *statsapi.Summary, namespace string, containers bool) []Usage {
	var out []Usage
	for _, p := range s.Pods {
		if namespace != "" && p.PodRef.Namespace != namespace {
			continue
		}
		pod := Usage{Namespace: p.PodRef.Namespace, Name: p.PodRef.Name}
		found := false
		for _, c := range p.Containers {
			if c.CPU == nil || c.CPU.UsageNanoCores == nil || c.Memory == nil || c.Memory.WorkingSetBytes == nil {
				continue
			}
			found = true
			u := Usage{Namespace: p.PodRef.Namespace, Pod: p.PodRef.Name, Name: c.Name,
				NanoCPU: int64(*c.CPU.UsageNanoCores), MemoryBytes: int64(*c.Memory.WorkingSetBytes)}
			if containers {
				out = append(out, u)
			}
			pod.NanoCPU += u.NanoCPU
			pod.MemoryBytes += u.MemoryBytes
		}
		if found && !containers {
			out = append(out, pod)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		return a.Name < b.Name
	})
	return out
}

// PrintTopNodes prints nodes as `kubectl top node` does; cpus and memory
// are the node's allocatable CPUs and bytes, for the percentages.
func PrintTopNodes(w io.Writer, nodes []Usage, cpus, memory int64) error {
	tw := tabwriter.NewWriter(w, 6, 4, 3, ' ', 0) // kubectl's
	fmt.Fprintln(tw, "NAME\tCPU(cores)\tCPU(%)\tMEMORY(bytes)\tMEMORY(%)\t")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%dm\t%s\t%dMi\t%s\t\n", n.Name, milli(n.NanoCPU), percent(milli(n.NanoCPU), cpus*1000), n.MemoryBytes/(1<<20), percent(n.MemoryBytes, memory))
	}
	return tw.Flush()
}

// PrintTopPods prints pods (or containers) as `kubectl top pod` does, with
// a NAMESPACE column when allNamespaces.
func PrintTopPods(w io.Writer, rows []Usage, containers, allNamespaces bool) error {
	tw := tabwriter.NewWriter(w, 6, 4, 3, ' ', 0) // kubectl's
	head := "NAME\tCPU(cores)\tMEMORY(bytes)\t"
	if containers {
		head = "POD\t" + head
	}
	if allNamespaces {
		head = "NAMESPACE\t" + head
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		if allNamespaces {
			fmt.Fprintf(tw, "%s\t", r.Namespace)
		}
		if containers {
			fmt.Fprintf(tw, "%s\t", r.Pod)
		}
		fmt.Fprintf(tw, "%s\t%dm\t%dMi\t\n", r.Name, milli(r.NanoCPU), r.MemoryBytes/(1<<20))
	}
	return tw.Flush()
}

func percent(v, of int64) string {
	if of <= 0 {
		return "<unknown>"
	}
	return fmt.Sprintf("%d%%", v*100/of)
}
