package podstatus

import (
	"runtime"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// QOSClass is the pod's quality of service class, computed as Kubernetes
// does from the cpu and memory requests and limits of its containers.
func QOSClass(pod *corev1.Pod) corev1.PodQOSClass {
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	guaranteed := true
	all := append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for name, q := range c.Resources.Requests {
			if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
				continue
			}
			if q.Sign() > 0 {
				sum := requests[name]
				sum.Add(q)
				requests[name] = sum
			}
		}
		found := map[corev1.ResourceName]bool{}
		for name, q := range c.Resources.Limits {
			if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
				continue
			}
			if q.Sign() > 0 {
				found[name] = true
				sum := limits[name]
				sum.Add(q)
				limits[name] = sum
			}
		}
		if !found[corev1.ResourceCPU] || !found[corev1.ResourceMemory] {
			guaranteed = false
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		for name, req := range requests {
			if lim, ok := limits[name]; !ok || lim.Cmp(req) != 0 {
				guaranteed = false
				break
			}
		}
	}
	if guaranteed && len(requests) == len(limits) {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// NodeLabels are the labels of the node a static pod runs on, as the kubelet
// sets them on its Node object.
func NodeLabels(nodeName string) map[string]string {
	return map[string]string{
		corev1.LabelHostname:   strings.ToLower(nodeName),
		corev1.LabelOSStable:   runtime.GOOS,
		corev1.LabelArchStable: runtime.GOARCH,
	}
}

// Rejection reasons and messages of the kubelet's admission.
const (
	ReasonNodeAffinity  = "NodeAffinity"
	MessageNodeAffinity = "Pod was rejected: Predicate NodeAffinity failed"
)

// Admit checks a pod against its node as the kubelet's admission does: a
// nodeSelector that the node's labels do not match rejects the pod. It
// returns the reason and message of a rejection, or "" when admitted.
func Admit(pod *corev1.Pod) (reason, message string) {
	if len(pod.Spec.NodeSelector) == 0 {
		return "", ""
	}
	if !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(NodeLabels(pod.Spec.NodeName))) {
		return ReasonNodeAffinity, MessageNodeAffinity
	}
	return "", ""
}
