// Package apitest holds the fixtures the API server's packages share in
// their tests: the users a request comes from and a mirror pod as a node
// makes it.
package apitest

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// AdminUser is the cluster administrator, as the server's admin
// kubeconfig authenticates.
var AdminUser = auth.User{Name: "ballast-admin", Groups: []string{auth.GroupMasters, auth.GroupAuthenticated}}

// NodeUser is the node agent of node name.
func NodeUser(name string) auth.User {
	return auth.User{Name: auth.NodeUserPrefix + name, Groups: []string{auth.GroupNodes, auth.GroupAuthenticated}}
}

// MirrorPod is the mirror pod of static pod name on node, as the node
// creates it.
func MirrorPod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-" + node, Namespace: "default",
			Annotations: map[string]string{
				wellknown.AnnotationConfigMirror: "abc",
				wellknown.AnnotationConfigSource: wellknown.ConfigSourceFile,
				wellknown.AnnotationManifest:     "/etc/kubernetes/manifests/" + name + ".yaml",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node, UID: "u1"}},
		},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: name, Image: "img:1"}}},
	}
}

// CheckStatusShape checks a failure Status as kube-apiserver writes it.
func CheckStatusShape(t testing.TB, data []byte, code int, reason metav1.StatusReason, detailsName string) {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, data)
	}
	for _, f := range []string{"kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("field %q missing: %s", f, data)
		}
	}
	var st metav1.Status
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if st.Kind != "Status" || st.APIVersion != "v1" || st.Status != metav1.StatusFailure || st.Message == "" {
		t.Errorf("kind/apiVersion/status/message: %s", data)
	}
	if int(st.Code) != code {
		t.Errorf("code field %d, HTTP status %d", st.Code, code)
	}
	if st.Reason != reason {
		t.Errorf("reason %q, want %q: %s", st.Reason, reason, data)
	}
	if st.Details == nil || (detailsName != "" && st.Details.Name != detailsName) {
		t.Errorf("details %s, want name %q", raw["details"], detailsName)
	}
	if string(raw["metadata"]) != "{}" {
		t.Errorf("metadata %s, want {}", raw["metadata"])
	}
}

// KindOf is the served kind group/res.
func KindOf(t testing.TB, group, res string) *kinds.Kind {
	for _, k := range kinds.All() {
		if k.Info.Group == group && k.Info.Resource == res {
			return k
		}
	}
	t.Fatalf("no kind %s/%s", group, res)
	return nil
}
