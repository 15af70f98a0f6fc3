package validation

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func validPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "nginx:1", Ports: []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}},
		}}},
	}
}

func texts(errs ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// A valid pod has no errors (nil, not an empty list), before and after
// defaults; defaulting twice changes nothing.
func TestValidPod(t *testing.T) {
	pod := validPod()
	if errs := ValidatePod(pod); errs != nil {
		t.Fatalf("valid pod refused: %v", errs)
	}
	SetDefaults(pod)
	if errs := ValidatePod(pod); errs != nil {
		t.Fatalf("defaulted pod refused: %v", errs)
	}
	again := pod.DeepCopy()
	SetDefaults(again)
	if again.String() != pod.String() {
		t.Errorf("SetDefaults is not idempotent:\n%s\n%s", pod, again)
	}
	if c := pod.Spec.Containers[0]; c.ImagePullPolicy != corev1.PullIfNotPresent || c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("container not defaulted: %+v", c)
	}
}

// Field paths carry the object's own path, in the messages too; ValidatePod
// names a running pod's fields from its root.
func TestFieldPaths(t *testing.T) {
	pod := validPod()
	pod.Name = ""
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "d", Image: "nginx:1",
		Ports: []corev1.ContainerPort{{ContainerPort: 81, HostPort: 8080}}})
	want := []string{
		"metadata.name: Required value: name the pod",
		`spec.containers[1].ports[0].hostPort: Duplicate value: "8080/TCP": spec.containers[0].ports[0] already uses this host port`,
	}
	if got := texts(ValidatePod(pod)); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ValidatePod:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	want = []string{`items[2].spec.containers[1].ports[0].hostPort: Duplicate value: "8080/TCP": items[2].spec.containers[0].ports[0] already uses this host port`}
	if got := texts(ValidatePodContent(pod, "items[2]")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ValidatePodContent:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A ConfigMap and a Secret are checked as Kubernetes does; a Secret's
// stringData counts as its data, and no message shows a value.
func TestConfigObjects(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "default"},
		Data: map[string]string{"ok": "v", "a/b": "v"}, BinaryData: map[string][]byte{"ok": []byte("v")}}
	want := []string{
		`data[a/b]: Invalid value: "a/b": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
		`data[ok]: Invalid value: "ok": duplicate of key present in binaryData; keep it in one of them`,
	}
	if got := texts(ValidateConfigMap(cm, "")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ValidateConfigMap:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "default"}, Type: corev1.SecretTypeDockerConfigJson,
		StringData: map[string]string{corev1.DockerConfigJsonKey: "hunter2", "bad key": "hunter2"}}
	want = []string{
		`items[0].stringData[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
		`items[0].data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
		`items[0].data[.dockerconfigjson]: Invalid value: must be valid JSON (a docker config file) for type kubernetes.io/dockerconfigjson`,
	}
	got := texts(ValidateSecret(s, "items[0]"))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ValidateSecret:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(strings.Join(got, ""), "hunter2") {
		t.Errorf("a message shows a secret value: %s", got)
	}
	if s.Data != nil || len(s.StringData) != 2 {
		t.Errorf("ValidateSecret changed the Secret: %v", s)
	}

	big := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "default"},
		Data: map[string]string{"k": strings.Repeat("x", MaxConfigSize)}, BinaryData: map[string][]byte{"b": {1}}}
	if got := texts(ValidateConfigMap(big, "")); len(got) != 1 || !strings.HasPrefix(got[0], "data: Too long: the ConfigMap's values hold 1048577 bytes") {
		t.Errorf("too big: %v", got)
	}
}

func TestMergeStringData(t *testing.T) {
	s := &corev1.Secret{Data: map[string][]byte{"a": []byte("1"), "b": []byte("2")}, StringData: map[string]string{"b": "3"}}
	MergeStringData(s)
	if string(s.Data["a"]) != "1" || string(s.Data["b"]) != "3" || s.StringData != nil || s.Type != corev1.SecretTypeOpaque {
		t.Errorf("merged: %+v", s)
	}
	empty := &corev1.Secret{Type: corev1.SecretTypeTLS}
	MergeStringData(empty)
	if empty.Data != nil || empty.Type != corev1.SecretTypeTLS {
		t.Errorf("empty: %+v", empty)
	}
}
func TestDefaultPullPolicy(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"nginx":                         "Always",
		"nginx:latest":                  "Always",
		"nginx:1.27":                    "IfNotPresent",
		"registry:5000/nginx":           "Always",
		"registry:5000/nginx:1":         "IfNotPresent",
		"nginx@sha256:abcd":             "IfNotPresent",
		"nginx:latest@sha256:abcd":      "IfNotPresent",
		"registry.k8s.io/etcd:3.5.15-0": "IfNotPresent",
	} {
		if got := defaultPullPolicy(image); got != want {
			t.Errorf("defaultPullPolicy(%q) = %s, want %s", image, got, want)
		}
	}
}
