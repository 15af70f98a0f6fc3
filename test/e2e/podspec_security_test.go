package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// procField returns a field of /proc/self/status ("Uid", "Groups"...).
func procField(status, key string) string {
	for _, l := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// podGet reads path from the hello server of a pod (on port 8080 or port).
func podGet(t *testing.T, p *corev1.Pod, port int, path string) string {
	t.Helper()
	if port == 0 {
		port = harness.HelloPort
	}
	b, err := get(fmt.Sprintf("http://%s:%d%s", p.Status.PodIP, port, path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return b
}

func waitingWith(reason, msg string) func(p *corev1.Pod) error {
	return func(p *corev1.Pod) error {
		for _, c := range p.Status.ContainerStatuses {
			if w := c.State.Waiting; w != nil && strings.Contains("|"+reason+"|", "|"+w.Reason+"|") && strings.Contains(w.Message, msg) {
				return nil
			}
		}
		return fmt.Errorf("want waiting %s %q; have %s", reason, msg, reasons(p))
	}
}

// securityContext (pod and container), resources and their cgroup limits,
// QoS class, sysctls, seccomp, runAsNonRoot, OOMKilled, host namespaces.
func TestPodSpecSecurity(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	if err := os.MkdirAll(filepath.Join(n.dataDir, "seccomp", "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.dataDir, "seccomp", "profiles", "allow.json"), []byte(`{"defaultAction": "SCMP_ACT_ALLOW"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	n.start()
	img := env.HelloImage()
	n.write("sec.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: sec
spec:
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    supplementalGroups: [4000]
    fsGroup: 2000
    seccompProfile: {type: RuntimeDefault}
    sysctls: [{name: kernel.shm_rmid_forced, value: "1"}]
  volumes:
  - name: scratch
    emptyDir: {}
  containers:
  - name: app
    image: %[1]s
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: 500m, memory: 128Mi}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  - name: local
    image: %[1]s
    env: [{name: PORT, value: "8081"}]
    securityContext:
      runAsUser: 0
      seccompProfile: {type: Localhost, localhostProfile: profiles/allow.json}
`, img))
	p := n.waitPod("sec", "running", running)

	// The process's identity and restrictions, as it sees them.
	st := podGet(t, p, 0, "/file?path=/proc/self/status")
	checks := map[string]string{"Uid": "1000\t1000\t1000\t1000", "Gid": "3000\t3000\t3000\t3000", "NoNewPrivs": "1", "Seccomp": "2", "CapBnd": "0000000000000400"}
	for k, want := range checks {
		if got := procField(st, k); got != want {
			t.Errorf("app /proc/self/status %s = %q, want %q", k, got, want)
		}
	}
	if g := procField(st, "Groups"); !strings.Contains(g, "2000") || !strings.Contains(g, "4000") {
		t.Errorf("supplementary groups %q, want fsGroup 2000 and 4000", g)
	}
	logs, _ := n.run("logs", "sec", "-c", "app")
	if !strings.Contains(logs, "uid=1000") {
		t.Errorf("startup log has no uid=1000:\n%s", logs)
	}
	// Read-only root, writable emptyDir owned by the fsGroup with setgid.
	if got := podGet(t, p, 0, "/write?path=/root-file&content=x"); !strings.Contains(got, "read-only file system") {
		t.Errorf("write to the read-only root: %q", got)
	}
	if got := podGet(t, p, 0, "/write?path=/scratch/f&content=x"); strings.TrimSpace(got) != "ok" {
		t.Errorf("write to the emptyDir: %q", got)
	}
	scratch := filepath.Join(n.dataDir, "volumes", string(p.UID), "empty-dir", "scratch")
	if fi, err := os.Stat(scratch); err != nil {
		t.Error(err)
	} else if sys := fi.Sys().(*syscall.Stat_t); sys.Gid != 2000 || fi.Mode()&os.ModeSetgid == 0 {
		t.Errorf("emptyDir on the host: gid %d mode %v, want gid 2000 with setgid", sys.Gid, fi.Mode())
	}
	// Resources: the cgroup (v1) limits the container sees, and the QoS class.
	cg := map[string]string{
		"/sys/fs/cgroup/memory/memory.limit_in_bytes": "134217728",
		"/sys/fs/cgroup/cpu/cpu.shares":               "256",
		"/sys/fs/cgroup/cpu/cpu.cfs_quota_us":         "50000",
		"/sys/fs/cgroup/cpu/cpu.cfs_period_us":        "100000",
	}
	for f, want := range cg {
		if got := strings.TrimSpace(podGet(t, p, 0, "/file?path="+f)); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if p.Status.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("QOS class %s, want Burstable", p.Status.QOSClass)
	}
	if got := strings.TrimSpace(podGet(t, p, 0, "/file?path=/proc/sys/kernel/shm_rmid_forced")); got != "1" {
		t.Errorf("sysctl kernel.shm_rmid_forced = %q", got)
	}
	// The second container: root by runAsUser 0, the Localhost profile.
	st2 := podGet(t, p, 8081, "/file?path=/proc/self/status")
	if procField(st2, "Uid") != "0\t0\t0\t0" || procField(st2, "Seccomp") != "2" {
		t.Errorf("local container: Uid %q Seccomp %q", procField(st2, "Uid"), procField(st2, "Seccomp"))
	}

	// runAsNonRoot with an image that runs as root: refused, as the kubelet.
	n.write("nonroot.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: nonroot}
spec:
  securityContext: {runAsNonRoot: true}
  containers: [{name: app, image: %s}]
`, img))
	n.waitPod("nonroot", "refused", waitingWith("CreateContainerConfigError", "container has runAsNonRoot and image will run as root"))

	// Privileged with the host's PID and IPC namespaces; Unconfined seccomp.
	n.write("priv.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  hostPID: true
  hostIPC: true
  containers:
  - name: app
    image: %s
    resources:
      limits: {cpu: 100m, memory: 64Mi}
    securityContext: {privileged: true}
`, img))
	pp := n.waitPod("priv", "running", running)
	st3 := podGet(t, pp, 0, "/file?path=/proc/self/status")
	if capEff, err := strconv.ParseUint(procField(st3, "CapEff"), 16, 64); err != nil || capEff&(1<<21) == 0 {
		t.Errorf("privileged CapEff %q: no CAP_SYS_ADMIN", procField(st3, "CapEff"))
	}
	if procField(st3, "Seccomp") != "0" {
		t.Errorf("privileged Seccomp %q, want 0", procField(st3, "Seccomp"))
	}
	if got := podGet(t, pp, 0, "/file?path=/proc/1/cmdline"); strings.Contains(got, "hello") || strings.Contains(got, "pause") {
		t.Errorf("hostPID: pid 1 is %q, want the host's init", got)
	}
	if pp.Status.QOSClass != corev1.PodQOSGuaranteed {
		t.Errorf("QOS %s, want Guaranteed", pp.Status.QOSClass)
	}

	// shareProcessNamespace: pid 1 is the sandbox's pause process.
	n.write("share.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: share}
spec:
  shareProcessNamespace: true
  containers: [{name: app, image: %s}]
`, img))
	sp := n.waitPod("share", "running", running)
	if got := podGet(t, sp, 0, "/file?path=/proc/1/cmdline"); !strings.Contains(got, "pause") {
		t.Errorf("shareProcessNamespace: pid 1 is %q, want pause", got)
	}
	if sp.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("QOS %s, want BestEffort", sp.Status.QOSClass)
	}

	// Over its memory limit: OOMKilled.
	n.write("oom.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: %s
    env: [{name: ALLOC_MB, value: "256"}]
    resources:
      limits: {memory: 32Mi}
`, img))
	n.waitPod("oom", "OOMKilled", func(p *corev1.Pod) error {
		for _, c := range p.Status.ContainerStatuses {
			if t := c.State.Terminated; t != nil && t.Reason == "OOMKilled" {
				return nil
			}
		}
		return fmt.Errorf("%s", reasons(p))
	})
}
