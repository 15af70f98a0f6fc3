package agent

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/hostinfo"
	"github.com/ballast-dev/ballast/internal/manifest"
)

// Env values from the downward API (fieldRef, resourceFieldRef), and the
// node facts they need.

// podIPs returns the pod's IPs: the host's for a host-network pod, else the
// sandbox's, as the runtime reports them once the sandbox runs.
func (a *Agent) podIPs(ctx context.Context, pod *corev1.Pod, sandboxID string) []string {
	if pod.Spec.HostNetwork {
		if a.opts.HostIP == "" {
			return nil
		}
		return []string{a.opts.HostIP}
	}
	if sandboxID == "" {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := a.opts.Runtime.RS.PodSandboxStatus(cctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sandboxID})
	if err != nil || st.GetStatus().GetNetwork() == nil {
		return nil
	}
	n := st.Status.Network
	var ips []string
	if n.Ip != "" {
		ips = append(ips, n.Ip)
	}
	for _, ip := range n.AdditionalIps {
		if ip.GetIp() != "" {
			ips = append(ips, ip.Ip)
		}
	}
	return ips
}

func (a *Agent) envValueFrom(pod *corev1.Pod, ctr *corev1.Container, vf *corev1.EnvVarSource, podIPs []string) (string, error) {
	switch {
	case vf.FieldRef != nil:
		return fieldValue(pod, vf.FieldRef.FieldPath, podIPs, a.opts.HostIP)
	case vf.ResourceFieldRef != nil:
		c := ctr
		if n := vf.ResourceFieldRef.ContainerName; n != "" {
			if c = podContainer(pod, n); c == nil {
				return "", fmt.Errorf("resourceFieldRef: no container %q in the pod", n)
			}
		}
		return resourceValue(c, vf.ResourceFieldRef)
	}
	return "", fmt.Errorf("valueFrom: only fieldRef and resourceFieldRef are supported for static pods")
}

// fieldValue is the value of a downward API field path, as the kubelet.
func fieldValue(pod *corev1.Pod, path string, podIPs []string, hostIP string) (string, error) {
	if base, key, ok := manifest.SubscriptKey(path); ok {
		switch base {
		case "metadata.labels":
			return pod.Labels[key], nil
		case "metadata.annotations":
			return pod.Annotations[key], nil
		}
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return hostIP, nil
	case "status.hostIPs":
		return hostIP, nil
	case "status.podIP":
		if len(podIPs) > 0 {
			return podIPs[0], nil
		}
		return "", nil
	case "status.podIPs":
		return strings.Join(podIPs, ","), nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// resourceValue is a container's resource as the downward API shows it:
// limits default to the node's capacity, values are rounded up to the divisor.
func resourceValue(c *corev1.Container, rf *corev1.ResourceFieldSelector) (string, error) {
	divisor := rf.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	kind, name, _ := strings.Cut(rf.Resource, ".")
	rn := corev1.ResourceName(name)
	var q resource.Quantity
	switch kind {
	case "limits":
		l, ok := c.Resources.Limits[rn]
		if ok {
			q = l
		} else {
			q = nodeCapacity(rn)
		}
	case "requests":
		q = c.Resources.Requests[rn]
	default:
		return "", fmt.Errorf("unsupported resource %q", rf.Resource)
	}
	if rn == corev1.ResourceCPU {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// nodeCapacity is the node's allocatable amount of a resource: Ballast
// reserves nothing, so it is the capacity.
func nodeCapacity(rn corev1.ResourceName) resource.Quantity {
	switch rn {
	case corev1.ResourceCPU:
		return *resource.NewMilliQuantity(int64(runtime.NumCPU())*1000, resource.DecimalSI)
	case corev1.ResourceMemory:
		return *resource.NewQuantity(nodeMemory(), resource.BinarySI)
	case corev1.ResourceEphemeralStorage:
		var st syscall.Statfs_t
		if syscall.Statfs("/", &st) == nil {
			return *resource.NewQuantity(int64(st.Blocks)*st.Bsize, resource.BinarySI)
		}
	}
	return resource.Quantity{}
}

// nodeMemory is the node's memory in bytes, 0 if unknown.
func nodeMemory() int64 { return hostinfo.MemoryBytes() }
