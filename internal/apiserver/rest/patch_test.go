package rest

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
)

func TestApplyPatch(t *testing.T) {
	pods := apitest.KindOf(t, "", "pods")
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
