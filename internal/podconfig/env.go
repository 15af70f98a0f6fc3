package podconfig

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ballast-dev/ballast/internal/validation"
)

// Environment variables, and the values of the downward API (fieldRef,
// resourceFieldRef) that env and downwardAPI volumes share.

// Expand replaces $(VAR) references by earlier variables, as Kubernetes does:
// $$ escapes a dollar, and unknown references are left as written.
func Expand(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func envValueFrom(pod *corev1.Pod, ctr *corev1.Container, vf *corev1.EnvVarSource, in ContainerInput) (string, error) {
	switch {
	case vf.FieldRef != nil:
		return FieldValue(pod, vf.FieldRef.FieldPath, in.PodIPs, in.Node.HostIP)
	case vf.ResourceFieldRef != nil:
		c := ctr
		if n := vf.ResourceFieldRef.ContainerName; n != "" {
			if c = FindContainer(pod, n); c == nil {
				return "", fmt.Errorf("resourceFieldRef: no container %q in the pod", n)
			}
		}
		return ResourceValue(c, vf.ResourceFieldRef, in.Node.Capacity)
	}
	return "", fmt.Errorf("valueFrom: only fieldRef and resourceFieldRef are supported for static pods")
}

// FieldValue is the value of a downward API field path, as the kubelet gives
// it: podIPs and hostIP are the pod's and the node's IPs.
func FieldValue(pod *corev1.Pod, fieldPath string, podIPs []string, hostIP string) (string, error) {
	if base, key, ok := validation.SubscriptKey(fieldPath); ok {
		switch base {
		case "metadata.labels":
			return pod.Labels[key], nil
		case "metadata.annotations":
			return pod.Annotations[key], nil
		}
	}
	switch fieldPath {
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
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	case "status.podIP":
		if len(podIPs) > 0 {
			return podIPs[0], nil
		}
		return "", nil
	case "status.podIPs":
		return strings.Join(podIPs, ","), nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", fieldPath)
}

// formatMap writes labels or annotations as the kubelet's downward API:
// key="value" lines, sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// ResourceValue is a container's resource as the downward API shows it:
// limits default to the node's capacity, values are rounded up to the divisor.
func ResourceValue(c *corev1.Container, rf *corev1.ResourceFieldSelector, capacity corev1.ResourceList) (string, error) {
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
			q = capacity[rn]
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
