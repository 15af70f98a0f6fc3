package apiserver

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// The same pod is defaulted, accepted and refused alike from a manifest
// file (internal/manifest.Parse, on the node) and as a mirror pod through
// the API: both use internal/validation.
func TestManifestAndAPIAgree(t *testing.T) {
	const node = "n1"
	e := newTestEnv(t)
	e.addNode(node)
	pod := func(spec string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n" + spec
	}
	tests := []struct {
		name string
		file string
		ok   bool
	}{
		{"minimal", pod("  containers:\n  - name: c\n    image: nginx:1\n"), true},
		{"latest image, ports on the host network, init container, limits", pod(`  hostNetwork: true
  initContainers:
  - name: init
    image: busybox
  containers:
  - name: c
    image: nginx
    ports:
    - containerPort: 8080
    resources:
      limits: {cpu: 100m, memory: 64Mi}
`), true},
		{"probes, volumes, downward API", pod(`  volumes:
  - name: scratch
  - name: info
    downwardAPI:
      items:
      - path: name
        fieldRef: {fieldPath: metadata.name}
  containers:
  - name: c
    image: nginx:1
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
    - {name: info, mountPath: /info}
    readinessProbe:
      httpGet: {port: 80}
    env:
    - name: NODE
      valueFrom:
        fieldRef: {fieldPath: spec.nodeName}
`), true},
		{"duplicate container names", pod("  containers:\n  - name: c\n    image: a:1\n  - name: c\n    image: b:1\n"), false},
		{"unknown restart policy", pod("  restartPolicy: Sometimes\n  containers:\n  - name: c\n    image: nginx:1\n"), false},
		{"negative grace period", pod("  terminationGracePeriodSeconds: -1\n  containers:\n  - name: c\n    image: nginx:1\n"), false},
		{"mount of a missing volume", pod("  containers:\n  - name: c\n    image: nginx:1\n    volumeMounts:\n    - {name: data, mountPath: /data}\n"), false},
		{"bad env name and port", pod("  containers:\n  - name: c\n    image: nginx:1\n    env:\n    - {name: 1BAD, value: x}\n    ports:\n    - containerPort: 70000\n"), false},
		{"dnsPolicy None without nameservers", pod("  dnsPolicy: None\n  containers:\n  - name: c\n    image: nginx:1\n"), false},
		{"probe with two handlers", pod("  containers:\n  - name: c\n    image: nginx:1\n    livenessProbe:\n      httpGet: {port: 80}\n      tcpSocket: {port: 80}\n"), false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/etc/kubernetes/manifests/web.yaml"
			parsed, fileErr := manifest.Parse(path, []byte(tt.file), node)
			if (fileErr == nil) != tt.ok {
				t.Fatalf("Parse: %v, want ok=%v", fileErr, tt.ok)
			}

			// The mirror pod, as sent before any defaulting: the file's pod
			// with a mirror pod's name, node, annotations and owner, and the
			// toleration of NoExecute taints the node gives static pods.
			var m corev1.Pod
			if err := yaml.UnmarshalStrict([]byte(tt.file), &m); err != nil {
				t.Fatal(err)
			}
			m.Name = fmt.Sprintf("web%d-%s", i, node)
			m.Namespace = "default"
			m.Spec.NodeName = node
			m.Annotations = map[string]string{wellknown.AnnotationConfigMirror: "h", wellknown.AnnotationManifest: path}
			m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node, UID: "u1"}}
			if tt.ok {
				m.Spec.Tolerations = parsed[0].Spec.Tolerations
			}
			var created corev1.Pod
			code, body := e.do("POST", "/api/v1/namespaces/default/pods", "node:"+node, "", &m, &created)

			if tt.ok {
				e.must(code, body, 201)
				got, _ := json.Marshal(created.Spec)
				want, _ := json.Marshal(parsed[0].Spec)
				if string(got) != string(want) {
					t.Errorf("the API defaults the pod differently from the node:\nAPI:  %s\nnode: %s", got, want)
				}
				return
			}
			e.must(code, body, 422)
			var st metav1.Status
			if err := json.Unmarshal([]byte(body), &st); err != nil || st.Details == nil {
				t.Fatalf("not a Status with details: %s", body)
			}
			var fromFile, fromAPI []string
			for _, fe := range manifest.Errors(fileErr) {
				fromFile = append(fromFile, fe.Field+": "+fe.Msg)
			}
			for _, c := range st.Details.Causes {
				fromAPI = append(fromAPI, c.Field+": "+c.Message)
			}
			sort.Strings(fromFile)
			sort.Strings(fromAPI)
			if strings.Join(fromFile, "\n") != strings.Join(fromAPI, "\n") {
				t.Errorf("the API refuses the pod differently from the node:\nAPI:\n  %s\nnode:\n  %s", strings.Join(fromAPI, "\n  "), strings.Join(fromFile, "\n  "))
			}
			for _, f := range fromFile {
				if !strings.Contains(st.Message, f) {
					t.Errorf("the Status message lacks %q: %s", f, st.Message)
				}
			}
		})
	}
}
