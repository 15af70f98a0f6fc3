package request

import (
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
)

func TestSelectors(t *testing.T) {
	pods := apitest.KindOf(t, "", "pods")
	p := apitest.MirrorPod("web", "n1")
	p.Labels = map[string]string{"app": "web", "tier": "front"}
	p.Status.Phase = corev1.PodRunning
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: "default"}, Reason: "Started", Type: "Normal",
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-n1", Namespace: "default", UID: "u1"}}
	events := apitest.KindOf(t, "", "events")
	eventsV1 := apitest.KindOf(t, "events.k8s.io", "events")
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
		sel, err := ParseSelectors(tt.k, q)
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
