package lifecycle

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
)

func TestNodeLost(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	n := &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue}, {Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse}}}}
	if !nodeLostConditions(n, now) || nodeLostConditions(n, now) {
		t.Fatal("want a change once, then none")
	}
	for _, c := range n.Status.Conditions {
		if c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusUnknown" || c.Message != "Kubelet stopped posting node status." {
			t.Errorf("condition %+v", c)
		}
	}
	p := apitest.MirrorPod("web", "n1")
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true}}}
	if !podLost(p, now) || podLost(p, now) {
		t.Fatal("want a change once, then none")
	}
	if p.Status.Conditions[0].Status != corev1.ConditionFalse || p.Status.Conditions[1].Status != corev1.ConditionFalse ||
		p.Status.Conditions[2].Status != corev1.ConditionTrue || p.Status.ContainerStatuses[0].Ready || p.Status.Reason != NodeLostReason {
		t.Errorf("pod status %+v", p.Status)
	}
}
