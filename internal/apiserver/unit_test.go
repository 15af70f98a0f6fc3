package apiserver

import (
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
)

func kindOf(t *testing.T, group, res string) *kinds.Kind {
	for _, k := range kinds.All() {
		if k.Info.Group == group && k.Info.Resource == res {
			return k
		}
	}
	t.Fatalf("no kind %s/%s", group, res)
	return nil
}

func TestSelectors(t *testing.T) {
	pods := kindOf(t, "", "pods")
	p := apitest.MirrorPod("web", "n1")
	p.Labels = map[string]string{"app": "web", "tier": "front"}
	p.Status.Phase = corev1.PodRunning
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: "default"}, Reason: "Started", Type: "Normal",
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-n1", Namespace: "default", UID: "u1"}}
	events := kindOf(t, "", "events")
	eventsV1 := kindOf(t, "events.k8s.io", "events")
	tests := []struct {
		k     *kinds.Kind
		o     kinds.Object
		query string
		match bool
		err   string
	}{
		{pods, p, "", true, ""},
		{pods, p, "labelSelector=app%3Dweb", true, ""},
		{pods, p, "labelSelector=app%3Dweb,tier!%3Dfront", false, ""},
		{pods, p, "labelSelector=app+in+(web,db)", true, ""},
		{pods, p, "fieldSelector=spec.nodeName%3Dn1", true, ""},
		{pods, p, "fieldSelector=spec.nodeName%3Dn2", false, ""},
		{pods, p, "fieldSelector=status.phase!%3DRunning", false, ""},
		{pods, p, "fieldSelector=metadata.name%3Dweb-n1,metadata.namespace%3Ddefault", true, ""},
		{pods, p, "fieldSelector=spec.image%3Dx", false, `"spec.image" is not a known field selector for pods`},
		{pods, p, "labelSelector=%3D%3D", false, "labelSelector"},
		{events, ev, "fieldSelector=involvedObject.uid%3Du1,involvedObject.name%3Dweb-n1,involvedObject.namespace%3Ddefault", true, ""},
		{events, ev, "fieldSelector=involvedObject.kind%3DNode", false, ""},
		{events, ev, "fieldSelector=reason%3DStarted,type%3DNormal", true, ""},
		{eventsV1, kinds.CoreToEventsV1(ev), "fieldSelector=regarding.name%3Dweb-n1", true, ""},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		sel, err := request.ParseSelectors(tt.k, q)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.query, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.query, err)
			continue
		}
		if got := sel.Matches(tt.k, tt.o); got != tt.match {
			t.Errorf("%s: match %v, want %v", tt.query, got, tt.match)
		}
	}
}

func TestApplyPatch(t *testing.T) {
	pods := kindOf(t, "", "pods")
	p := apitest.MirrorPod("web", "n1")
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: "side:1"})
	tests := []struct {
		pt    types.PatchType
		patch string
		check func(p *corev1.Pod) bool
	}{
		{types.JSONPatchType, `[{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]`, func(p *corev1.Pod) bool { return p.Labels["a"] == "b" }},
		{types.MergePatchType, `{"metadata":{"labels":{"x":"y"}}}`, func(p *corev1.Pod) bool { return p.Labels["x"] == "y" && len(p.Spec.Containers) == 2 }},
		// A merge patch replaces lists; a strategic merge patch merges containers by name.
		{types.MergePatchType, `{"spec":{"containers":[{"name":"web","image":"img:2"}]}}`, func(p *corev1.Pod) bool { return len(p.Spec.Containers) == 1 }},
		{types.StrategicMergePatchType, `{"spec":{"containers":[{"name":"web","image":"img:2"}]}}`, func(p *corev1.Pod) bool {
			return len(p.Spec.Containers) == 2 && p.Spec.Containers[0].Image == "img:2" && p.Spec.Containers[1].Image == "side:1"
		}},
	}
	for _, tt := range tests {
		out, err := applyPatch(pods, tt.pt, p, []byte(tt.patch))
		if err != nil {
			t.Errorf("%s %s: %v", tt.pt, tt.patch, err)
			continue
		}
		o, _, err := request.DecodeBody(pods, out, true)
		if err != nil {
			t.Fatalf("%s: %v", tt.pt, err)
		}
		if !tt.check(o.(*corev1.Pod)) {
			t.Errorf("%s %s: wrong result %s", tt.pt, tt.patch, out)
		}
	}
	if _, err := applyPatch(pods, types.JSONPatchType, p, []byte(`[{"op":"remove","path":"/nope"}]`)); err == nil || request.ToStatus(err).Code != 422 {
		t.Errorf("bad JSON patch: %v", err)
	}
}

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
