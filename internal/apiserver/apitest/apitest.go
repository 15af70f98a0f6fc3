// Package apitest holds the fixtures the API server's packages share in
// their tests: the users a request comes from and a mirror pod as a node
// makes it.
package apitest

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
