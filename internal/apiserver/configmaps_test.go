package apiserver

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

func mirrorConfigMap(name, node string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-" + node, Namespace: "default",
			Labels: map[string]string{wellknown.LabelNode: node},
			Annotations: map[string]string{
				wellknown.AnnotationConfigMirror: node,
				wellknown.AnnotationManifest:     "/etc/kubernetes/manifests/" + name + ".yaml",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node, UID: "u1"}},
		},
		Data: map[string]string{"app.conf": "v1"},
	}
}

// Mirror ConfigMaps and Secrets: only their node creates and changes them;
// clients are told where the file is; a delete is allowed (the node makes
// the object again); a node lists only its own Secrets.
func TestMirrorConfigs(t *testing.T) {
	e := newTestEnv(t)
	e.addNode("n1")
	e.addNode("n2")
	const cms = "/api/v1/namespaces/default/configmaps"
	const secrets = "/api/v1/namespaces/default/secrets"

	// Clients cannot create one.
	code, body := e.do("POST", cms, "admin", "", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Data: map[string]string{"k": "v"}}, nil)
	if code != 403 || !strings.Contains(body, "write it into the pod manifest directory of the node whose pods use it") || !strings.Contains(body, "/etc/kubernetes/manifests/app.yaml") {
		t.Errorf("client create: %d %s", code, body)
	}
	// A node creates its mirror, not another node's, and only a mirror.
	var cm corev1.ConfigMap
	code, body = e.do("POST", cms, "node:n1", "", mirrorConfigMap("app", "n1"), &cm)
	e.must(code, body, 201)
	code, body = e.do("POST", cms, "node:n2", "", mirrorConfigMap("app", "n1"), nil)
	if code != 403 || !strings.Contains(body, `node \"n2\" may only write its own mirror ConfigMaps`) {
		t.Errorf("another node's mirror: %d %s", code, body)
	}
	plain := mirrorConfigMap("plain", "n1")
	delete(plain.Annotations, wellknown.AnnotationConfigMirror)
	code, body = e.do("POST", cms, "node:n1", "", plain, nil)
	if code != 403 || !strings.Contains(body, "must carry the annotation kubernetes.io/config.mirror") {
		t.Errorf("no mirror annotation: %d %s", code, body)
	}
	bad := mirrorConfigMap("bad", "n1")
	bad.Data = map[string]string{"a/b": "x"}
	code, body = e.do("POST", cms, "node:n1", "", bad, nil)
	if code != 422 || !strings.Contains(body, "a valid config key") {
		t.Errorf("invalid key: %d %s", code, body)
	}
	// Edits by clients are refused, naming node and file; labels are fine.
	edited := cm.DeepCopy()
	edited.Data["app.conf"] = "v2"
	code, body = e.do("PUT", cms+"/"+cm.Name, "admin", "", edited, nil)
	if code != 403 || !strings.Contains(body, `configmap \"app-n1\" is a mirror of a node-local ConfigMap on node \"n1\": its data cannot be changed through the API; edit /etc/kubernetes/manifests/app.yaml on node n1 instead`) {
		t.Errorf("client edit: %d %s", code, body)
	}
	code, body = e.do("PATCH", cms+"/"+cm.Name, "admin", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"team":"a"}}}`), &cm)
	e.must(code, body, 200)
	// Its node updates it.
	edited = cm.DeepCopy()
	edited.Data["app.conf"] = "v2"
	code, body = e.do("PUT", cms+"/"+cm.Name, "node:n1", "", edited, &cm)
	e.must(code, body, 200)
	if cm.Data["app.conf"] != "v2" {
		t.Errorf("node update: %v", cm.Data)
	}
	// Immutable: not even its node changes the data.
	im := mirrorConfigMap("im", "n1")
	im.Immutable = new(true)
	var imOut corev1.ConfigMap
	code, body = e.do("POST", cms, "node:n1", "", im, &imOut)
	e.must(code, body, 201)
	imOut.Data["app.conf"] = "v2"
	code, body = e.do("PUT", cms+"/"+imOut.Name, "node:n1", "", &imOut, nil)
	if code != 422 || !strings.Contains(body, "field is immutable when `immutable` is set") {
		t.Errorf("immutable update: %d %s", code, body)
	}
	// Anyone deletes one (the node makes it again).
	code, body = e.do("DELETE", cms+"/"+imOut.Name, "admin", "", nil, nil)
	e.must(code, body, 200)

	// Secrets: the node's mirrors; the node lists only its own.
	s := &corev1.Secret{ObjectMeta: *mirrorConfigMap("creds", "n1").ObjectMeta.DeepCopy(), Data: map[string][]byte{"password": {}}}
	s.Annotations[wellknown.AnnotationSecretData] = wellknown.SecretDataNodeLocal
	code, body = e.do("POST", secrets, "node:n1", "", s, nil)
	e.must(code, body, 201)
	var list corev1.SecretList
	code, body = e.do("GET", secrets+"?labelSelector=ballast.dev%2Fnode%3Dn1", "node:n1", "", nil, &list)
	e.must(code, body, 200)
	if len(list.Items) != 1 || list.Items[0].Type != corev1.SecretTypeOpaque {
		t.Errorf("node's secrets: %+v", list.Items)
	}
	for _, path := range []string{secrets, secrets + "?labelSelector=ballast.dev%2Fnode%3Dn1", secrets + "/creds-n1"} {
		if code, body := e.do("GET", path, "node:n2", "", nil, nil); code != 403 {
			t.Errorf("n2 reads %s: %d %s", path, code, body)
		}
	}
	code, body = e.do("POST", secrets, "admin", "", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x"}, StringData: map[string]string{"k": "v"}}, nil)
	if code != 403 || !strings.Contains(body, "Ballast serves node-local Secrets only") {
		t.Errorf("client creates a secret: %d %s", code, body)
	}
}
