package admission

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

func TestAdmitPodCreate(t *testing.T) {
	tests := []struct {
		name   string
		user   auth.User
		mutate func(p *corev1.Pod)
		want   string // substring of the error; "" for allowed
	}{
		{"node creates its mirror pod", apitest.NodeUser("n1"), nil, ""},
		{"admin kubectl run", apitest.AdminUser, func(p *corev1.Pod) { delete(p.Annotations, wellknown.AnnotationConfigMirror) }, "Ballast runs static pods only"},
		{"a node agent with the admin's credentials", apitest.AdminUser, nil,
			`user "ballast-admin" is not a node, so it cannot create mirror pods: the node agent of node "n1" must use that node's credentials (user system:node:n1); make them with "ballast server token create --node n1" and pass --server, --token and --certificate-authority to ballast node, or use ballast join; the node runs its static pod "web-n1" regardless`},
		{"other node", apitest.NodeUser("n2"), nil, `bound to node "n1"`},
		{"no mirror annotation", apitest.NodeUser("n1"), func(p *corev1.Pod) { delete(p.Annotations, wellknown.AnnotationConfigMirror) }, "kubernetes.io/config.mirror"},
		{"no owner", apitest.NodeUser("n1"), func(p *corev1.Pod) { p.OwnerReferences = nil }, "ownerReference"},
		{"owner is another node", apitest.NodeUser("n1"), func(p *corev1.Pod) { p.OwnerReferences[0].Name = "n2" }, "ownerReference"},
		{"service account", apitest.NodeUser("n1"), func(p *corev1.Pod) { p.Spec.ServiceAccountName = "default" }, "service accounts"},
		{"node-local config in volumes, projections and env", apitest.NodeUser("n1"), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{
				{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "x"}}},
				{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
				{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ConfigMap: &corev1.ConfigMapProjection{}}, {Secret: &corev1.SecretProjection{}}}}}},
			}
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "P", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}}}
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "x", EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{}}}}}
		}, ""},
		{"projected token", apitest.NodeUser("n1"), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "t", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}}
		}, "mirror pods may not project service account tokens"},
		{"image pull secrets", apitest.NodeUser("n1"), func(p *corev1.Pod) {
			p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "reg"}}
		}, "may not reference Secrets for image pulls"},
		{"hostPath and emptyDir are fine", apitest.NodeUser("n1"), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{
				{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}},
				{Name: "e", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := apitest.MirrorPod("web", "n1")
			if tt.mutate != nil {
				tt.mutate(p)
			}
			err := admitPod(tt.user, "create", "", nil, p)
			check(t, err, tt.want)
		})
	}
}

func check(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("refused: %v", err)
	case want != "" && err == nil:
		t.Fatalf("allowed, want an error containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
	if err != nil {
		if st := request.ToStatus(err); st.Code != 403 {
			t.Fatalf("code %d, want 403", st.Code)
		}
	}
}

func TestAdmitPodUpdate(t *testing.T) {
	tests := []struct {
		name   string
		user   auth.User
		sub    string
		mutate func(p *corev1.Pod)
		want   string
	}{
		{"admin changes image", apitest.AdminUser, "", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "img:2" },
			`pod "web-n1" is a mirror of a static pod on node "n1": its spec cannot be changed through the API; edit /etc/kubernetes/manifests/web.yaml on node n1 instead`},
		{"admin adds label", apitest.AdminUser, "", func(p *corev1.Pod) { p.Labels = map[string]string{"a": "b"} }, ""},
		{"admin adds annotation", apitest.AdminUser, "", func(p *corev1.Pod) { p.Annotations["note"] = "x" }, ""},
		{"admin changes config annotation", apitest.AdminUser, "", func(p *corev1.Pod) { p.Annotations["kubernetes.io/config.source"] = "api" }, "kubernetes.io/config.source is set by the node"},
		{"admin removes mirror annotation", apitest.AdminUser, "", func(p *corev1.Pod) { delete(p.Annotations, wellknown.AnnotationConfigMirror) }, "kubernetes.io/config.mirror is set by the node"},
		{"node changes its own spec", apitest.NodeUser("n1"), "", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "img:2" }, ""},
		{"other node", apitest.NodeUser("n2"), "status", func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }, `bound to node "n1"`},
		{"admin status", apitest.AdminUser, "status", func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := apitest.MirrorPod("web", "n1")
			next := old.DeepCopy()
			tt.mutate(next)
			check(t, admitPod(tt.user, "update", tt.sub, old, next), tt.want)
		})
	}
	t.Run("no manifest annotation", func(t *testing.T) {
		old := apitest.MirrorPod("web", "n1")
		delete(old.Annotations, "ballast.dev/manifest")
		next := old.DeepCopy()
		next.Spec.Containers[0].Image = "x"
		check(t, admitPod(apitest.AdminUser, "patch", "", old, next), "pod manifest directory on node n1")
	})
	t.Run("admin deletes a mirror pod", func(t *testing.T) {
		check(t, admitPod(apitest.AdminUser, "delete", "", apitest.MirrorPod("web", "n1"), nil), "")
	})
}
