package rest

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// deletion is what a DELETE does to an object.
type deletion int

const (
	// deleteNow removes the object from storage.
	deleteNow deletion = iota
	// deleteGracefully stores the object with deletionTimestamp and
	// deletionGracePeriodSeconds set (or shortened): its node stops the
	// pod and then deletes it with a grace period of 0.
	deleteGracefully
	// deletePending leaves a graceful deletion in progress as it is.
	deletePending
)

// podDeletion decides, as kube-apiserver's pod strategy and BeforeDelete
// do, how a DELETE with the given grace period (nil: the pod's
// terminationGracePeriodSeconds) treats pod p at now, and sets the
// deletion fields on p when it is graceful. A pod bound to a node and not
// finished is deleted gracefully; one being deleted may only have its
// grace period shortened (0 deletes it now).
func podDeletion(p *corev1.Pod, grace *int64, now time.Time) deletion {
	if p.DeletionTimestamp != nil {
		cur := p.DeletionGracePeriodSeconds
		if cur == nil || *cur == 0 {
			return deleteNow
		}
		if grace == nil || *grace >= *cur {
			return deletePending
		}
		if *grace <= 0 {
			return deleteNow
		}
		at := metav1.NewTime(p.DeletionTimestamp.Add(time.Duration(*grace-*cur) * time.Second))
		p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &at, ptrTo(*grace)
		return deleteGracefully
	}
	period := int64(corev1.DefaultTerminationGracePeriodSeconds)
	switch {
	case grace != nil:
		period = *grace
	case p.Spec.TerminationGracePeriodSeconds != nil:
		period = *p.Spec.TerminationGracePeriodSeconds
	}
	if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || period <= 0 {
		return deleteNow
	}
	at := metav1.NewTime(now.Add(time.Duration(period) * time.Second).Truncate(time.Second))
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &at, ptrTo(period)
	if p.Generation > 0 {
		p.Generation++
	}
	return deleteGracefully
}

func ptrTo[T any](v T) *T { return &v }
