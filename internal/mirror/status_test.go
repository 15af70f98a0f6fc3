package mirror

import (
	"bytes"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestStatusJSON: a status compares equal to the API's copy of it (times
// at second precision, empty lists left out, probe times ignored), and
// only then.
func TestStatusJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 0, 123456789, time.UTC)
	base := func() corev1.PodStatus {
		return corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.5",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, RestartCount: 1,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(at)}}}}}
	}
	for _, tc := range []struct {
		name   string
		change func(*corev1.PodStatus)
		equal  bool
	}{
		{"the same", func(*corev1.PodStatus) {}, true},
		{"times at second precision (as the API gives them back)", func(s *corev1.PodStatus) {
			s.ContainerStatuses[0].State.Running.StartedAt = metav1.NewTime(at.Truncate(time.Second))
			s.Conditions[0].LastTransitionTime = metav1.NewTime(at.Truncate(time.Second))
		}, true},
		{"a probe time", func(s *corev1.PodStatus) { s.Conditions[0].LastProbeTime = metav1.NewTime(at.Add(time.Hour)) }, true},
		{"an empty list for none", func(s *corev1.PodStatus) { s.InitContainerStatuses = []corev1.ContainerStatus{} }, true},
		{"a restart", func(s *corev1.PodStatus) { s.ContainerStatuses[0].RestartCount++ }, false},
		{"a second later", func(s *corev1.PodStatus) {
			s.ContainerStatuses[0].State.Running.StartedAt = metav1.NewTime(at.Add(time.Second))
		}, false},
		{"not ready", func(s *corev1.PodStatus) { s.Conditions[0].Status = corev1.ConditionFalse }, false},
		{"a message", func(s *corev1.PodStatus) { s.Conditions[0].Message = "x" }, false},
	} {
		b := base()
		tc.change(&b)
		if got := bytes.Equal(statusJSON(base()), statusJSON(b)); got != tc.equal {
			t.Errorf("%s: equal = %v, want %v", tc.name, got, tc.equal)
		}
	}
	// The caller's conditions are not changed.
	s := base()
	s.Conditions[0].LastProbeTime = metav1.NewTime(at)
	statusJSON(s)
	if s.Conditions[0].LastProbeTime.IsZero() {
		t.Error("statusJSON cleared the caller's probe time")
	}
}
