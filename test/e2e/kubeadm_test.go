package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// kubeadmManifest is a control-plane component's manifest in the shape
// `kubeadm init` writes (host network, probes on 127.0.0.1, hostPath
// certificates and data, requests, seccomp RuntimeDefault, priority class,
// creationTimestamp: null and status: {}), with the test image standing in
// for the component.
func kubeadmManifest(component, image, pkiDir, dataDir string, port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/component-port: "%[4]d"
  creationTimestamp: null
  labels:
    component: %[1]s
    tier: control-plane
  name: %[1]s
  namespace: kube-system
spec:
  containers:
  - command:
    - /hello
    - --%[1]s
    - --bind-address=127.0.0.1
    - --secure-port=%[4]d
    - --cert-dir=/etc/kubernetes/pki
    env:
    - name: PORT
      value: "%[4]d"
    image: %[2]s
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 127.0.0.1
        path: /healthz
        port: %[4]d
        scheme: HTTP
      initialDelaySeconds: 1
      periodSeconds: 1
      timeoutSeconds: 15
    name: %[1]s
    readinessProbe:
      failureThreshold: 3
      httpGet:
        host: 127.0.0.1
        path: /healthz
        port: %[4]d
        scheme: HTTP
      periodSeconds: 1
      timeoutSeconds: 15
    resources:
      requests:
        cpu: 100m
        memory: 100Mi
    startupProbe:
      failureThreshold: 24
      httpGet:
        host: 127.0.0.1
        path: /healthz
        port: %[4]d
        scheme: HTTP
      initialDelaySeconds: 1
      periodSeconds: 1
      timeoutSeconds: 15
    volumeMounts:
    - mountPath: /etc/kubernetes/pki
      name: k8s-certs
      readOnly: true
    - mountPath: /var/lib/%[1]s
      name: data
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  volumes:
  - hostPath:
      path: %[3]s
      type: DirectoryOrCreate
    name: k8s-certs
  - hostPath:
      path: %[5]s
      type: DirectoryOrCreate
    name: data
status: {}
`, component, image, pkiDir, port, dataDir)
}

// kubeadm's control-plane manifests run unchanged and become Ready.
func TestKubeadmControlPlane(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	pki := filepath.Join(env.Dir, "etc-kubernetes", "pki")
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		n.write(c+".yaml", kubeadmManifest(c, env.HelloImage(), pki, filepath.Join(env.Dir, "var-lib", c), freePort(t)))
	}
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		p := n.waitPod(c, "Ready", running)
		if p.Namespace != "kube-system" || p.Spec.Priority == nil || *p.Spec.Priority != 2000001000 {
			t.Errorf("%s: namespace %s priority %v", c, p.Namespace, p.Spec.Priority)
		}
		if p.Status.QOSClass != corev1.PodQOSBurstable {
			t.Errorf("%s: QoS %s, want Burstable (requests only)", c, p.Status.QOSClass)
		}
		if p.Status.PodIP != p.Status.HostIP {
			t.Errorf("%s: host network pod IP %s != host IP %s", c, p.Status.PodIP, p.Status.HostIP)
		}
	}
	if _, err := os.Stat(pki); err != nil {
		t.Errorf("hostPath DirectoryOrCreate did not create %s: %v", pki, err)
	}
	out, err := n.run("pods", "-o", "wide")
	if err != nil || strings.Count(out, "Running") != 4 {
		t.Errorf("ballast pods:\n%s %v", out, err)
	}
}
