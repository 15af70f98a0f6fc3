package rest

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodDeletion(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	pod := func(node string, phase corev1.PodPhase, tgps *int64) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Generation: 1},
			Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: tgps}, Status: corev1.PodStatus{Phase: phase}}
	}
	deleting := func(ts *metav1.Time, grace *int64) *corev1.Pod {
		p := pod("n1", corev1.PodRunning, nil)
		p.DeletionTimestamp, p.DeletionGracePeriodSeconds = ts, grace
		return p
	}
	tests := []struct {
		name      string
		pod       *corev1.Pod
		grace     *int64
		want      deletion
		wantAt    *metav1.Time
		wantGrace int64
	}{
		{"on a node: the pod's grace period", pod("n1", corev1.PodRunning, ptrTo(int64(10))), nil, deleteGracefully, at(10 * time.Second), 10},
		{"on a node: the default 30 s", pod("n1", corev1.PodRunning, nil), nil, deleteGracefully, at(30 * time.Second), 30},
		{"on a node: the request's grace period", pod("n1", corev1.PodPending, ptrTo(int64(10))), ptrTo(int64(5)), deleteGracefully, at(5 * time.Second), 5},
		{"grace period 0: now", pod("n1", corev1.PodRunning, nil), ptrTo(int64(0)), deleteNow, nil, 0},
		{"not on a node: now", pod("", corev1.PodPending, nil), nil, deleteNow, nil, 0},
		{"finished: now", pod("n1", corev1.PodSucceeded, nil), nil, deleteNow, nil, 0},
		{"failed: now", pod("n1", corev1.PodFailed, nil), nil, deleteNow, nil, 0},
		{"being deleted: a longer grace period changes nothing", deleting(at(30*time.Second), ptrTo(int64(30))), ptrTo(int64(60)), deletePending, at(30 * time.Second), 30},
		{"being deleted: no grace period changes nothing", deleting(at(30*time.Second), ptrTo(int64(30))), nil, deletePending, at(30 * time.Second), 30},
		{"being deleted: a shorter one shortens it", deleting(at(30*time.Second), ptrTo(int64(30))), ptrTo(int64(10)), deleteGracefully, at(10 * time.Second), 10},
		{"being deleted: 0 deletes it now", deleting(at(30*time.Second), ptrTo(int64(30))), ptrTo(int64(0)), deleteNow, at(30 * time.Second), 30},
		{"being deleted with grace 0 left behind: now", deleting(at(0), ptrTo(int64(0))), nil, deleteNow, at(0), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := podDeletion(tc.pod, tc.grace, now)
			if got != tc.want {
				t.Fatalf("podDeletion = %d, want %d", got, tc.want)
			}
			if tc.wantAt == nil {
				if got == deleteGracefully {
					t.Fatal("graceful without a deletion time")
				}
				return
			}
			if tc.pod.DeletionTimestamp == nil || !tc.pod.DeletionTimestamp.Equal(tc.wantAt) || *tc.pod.DeletionGracePeriodSeconds != tc.wantGrace {
				t.Fatalf("deletion at %v after %v s, want %v after %d s", tc.pod.DeletionTimestamp, tc.pod.DeletionGracePeriodSeconds, tc.wantAt, tc.wantGrace)
			}
		})
	}
}
