package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

func condition(p *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

// events returns the agent's events about a pod, as "Reason: message" lines.
func (n *node) events(pod string) string {
	out, err := n.run("events")
	if err != nil {
		n.t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "pod/"+pod+"-"+n.name) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// probeFailures counts the failures of a pod's probe of kind (Startup,
// Liveness, Readiness) in the agent's events.
func (n *node) probeFailures(pod, kind string) int32 {
	n.t.Helper()
	out, err := n.run("events", "-o", "json")
	if err != nil {
		n.t.Fatal(err)
	}
	var list corev1.EventList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		n.t.Fatalf("ballast events -o json: %v\n%s", err, out)
	}
	var total int32
	for _, e := range list.Items {
		if e.InvolvedObject.Name == pod+"-"+n.name && e.Reason == "Unhealthy" && strings.HasPrefix(e.Message, kind+" probe failed") {
			total += max(e.Count, 1)
		}
	}
	return total
}

// Readiness drives Ready without restarts; liveness kills and restarts;
// the startup probe holds the others off; every failure is an Unhealthy event.
func TestProbes(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	signal := filepath.Join(env.Dir, "signal")
	if err := os.MkdirAll(signal, 0o755); err != nil {
		t.Fatal(err)
	}
	n.write("ready.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: ready}
spec:
  containers:
  - name: app
    image: %s
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 1
      failureThreshold: 1
`, env.HelloImage()))
	n.write("live.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  containers:
  - name: app
    image: %s
    livenessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
      failureThreshold: 2
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
`, env.HelloImage()))
	n.write("slow.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  volumes: [{name: signal, hostPath: {path: %s}}]
  containers:
  - name: app
    image: %s
    volumeMounts: [{name: signal, mountPath: /signal}]
    startupProbe:
      exec: {command: ["/hello", "check", "/signal/started"]}
      periodSeconds: 1
      failureThreshold: 600
    livenessProbe:
      exec: {command: ["/hello", "check", "/signal/never"]}
      periodSeconds: 1
      failureThreshold: 1
`, signal, env.HelloImage()))

	ready := n.waitPod("ready", "Ready", running)
	live := n.waitPod("live", "Ready", running)

	// Readiness failing: not Ready, not restarted.
	if _, err := get(fmt.Sprintf("http://%s:8080/sick", ready.Status.PodIP)); err != nil {
		t.Fatal(err)
	}
	n.waitPod("ready", "not ready", func(p *corev1.Pod) error {
		cs := p.Status.ContainerStatuses[0]
		if cs.Ready || condition(p, corev1.PodReady) != corev1.ConditionFalse {
			return fmt.Errorf("still ready")
		}
		if cs.State.Running == nil || cs.RestartCount != 0 {
			return fmt.Errorf("readiness failure must not restart: %s", reasons(p))
		}
		return nil
	})
	if ev := n.events("ready"); !strings.Contains(ev, "Unhealthy") || !strings.Contains(ev, "Readiness probe failed: HTTP probe failed with statuscode: 500") {
		t.Errorf("no Unhealthy event with the probe's output:\n%s", ev)
	}
	if _, err := get(fmt.Sprintf("http://%s:8080/well", ready.Status.PodIP)); err != nil {
		t.Fatal(err)
	}
	n.waitPod("ready", "Ready again", running)

	// Liveness failing: killed and restarted.
	if _, err := get(fmt.Sprintf("http://%s:8080/sick", live.Status.PodIP)); err != nil {
		t.Fatal(err)
	}
	n.waitPod("live", "restarted by liveness", func(p *corev1.Pod) error {
		cs := p.Status.ContainerStatuses[0]
		if cs.RestartCount < 1 || cs.State.Running == nil {
			return fmt.Errorf("%s restarts %d", reasons(p), cs.RestartCount)
		}
		return nil
	})
	if ev := n.events("live"); !strings.Contains(ev, "failed liveness probe, will be restarted") || !strings.Contains(ev, "Liveness probe failed") {
		t.Errorf("events:\n%s", ev)
	}

	// Startup probe: while it fails the container is not started, and the
	// liveness probe (which would fail at once) does not run.
	p := n.waitPod("slow", "running, not started", func(p *corev1.Pod) error {
		cs := p.Status.ContainerStatuses[0]
		if cs.State.Running == nil {
			return fmt.Errorf("%s", reasons(p))
		}
		if cs.Started == nil || *cs.Started || cs.Ready {
			return fmt.Errorf("started before its startup probe succeeded")
		}
		return nil
	})
	// Three more failed startup probes: the liveness probe (period 1 s,
	// threshold 1) had three chances to run and kill it.
	failed := n.probeFailures("slow", "Startup")
	n.eventually("three more failed startup probes", time.Minute, func() error {
		if got := n.probeFailures("slow", "Startup"); got < failed+3 {
			return fmt.Errorf("%d failed startup probes, want %d", got, failed+3)
		}
		return nil
	})
	if again := n.pod("slow"); again.Status.ContainerStatuses[0].RestartCount != 0 || containerID(again) != containerID(p) {
		t.Fatalf("liveness ran before the startup probe succeeded: %s", reasons(again))
	}
	if err := os.WriteFile(filepath.Join(signal, "started"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Now started, and the failing liveness probe restarts it.
	n.waitPod("slow", "started, then restarted by liveness", func(p *corev1.Pod) error {
		if p.Status.ContainerStatuses[0].RestartCount < 1 {
			return fmt.Errorf("%s", reasons(p))
		}
		return nil
	})
}

// Init containers run in order before the app; a failing one holds the pod
// in Init:...; a sidecar keeps running beside the app.
func TestInitContainers(t *testing.T) {
	env := harness.Start(t)
	// Back-off windows long enough to be seen by polling on a loaded machine.
	n := newNode(t, env, "--crash-backoff-initial", "5s", "--crash-backoff-max", "20s")
	n.start()
	n.write("inited.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: inited}
spec:
  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - name: first
    image: %[1]s
    command: ["/hello", "touch", "/work/first"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: %[1]s
    command: ["/hello", "check", "/work/first"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: sidecar
    image: %[1]s
    restartPolicy: Always
    env: [{name: PORT, value: "8081"}]
  containers:
  - name: app
    image: %[1]s
    volumeMounts: [{name: work, mountPath: /work}]
`, env.HelloImage()))
	p := n.waitPod("inited", "running", running)
	for i, cs := range p.Status.InitContainerStatuses[:2] {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 || cs.State.Terminated.Reason != "Completed" {
			t.Errorf("init container %d: %+v", i, cs.State)
		}
	}
	if side := p.Status.InitContainerStatuses[2]; side.State.Running == nil {
		t.Errorf("sidecar not running: %+v", side.State)
	}
	if condition(p, corev1.PodInitialized) != corev1.ConditionTrue {
		t.Errorf("not Initialized: %+v", p.Status.Conditions)
	}
	if b, err := get(fmt.Sprintf("http://%s:8080/file?path=/work/first", p.Status.PodIP)); err != nil || b == "" {
		t.Errorf("init container's file not seen by the app: %q %v", b, err)
	}
	if b, err := get(fmt.Sprintf("http://%s:8081/healthz", p.Status.PodIP)); err != nil || !strings.Contains(b, "ok") {
		t.Errorf("sidecar not serving: %q %v", b, err)
	}

	n.write("stuck.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: stuck}
spec:
  initContainers:
  - name: wait-for-db
    image: %[1]s
    command: ["/hello", "check", "/nonexistent"]
  containers:
  - name: app
    image: %[1]s
`, env.HelloImage()))
	n.eventually("Init:CrashLoopBackOff in ballast pods", 60*time.Second, func() error {
		out, err := n.run("pods")
		if err != nil {
			return err
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "stuck-") && strings.Contains(l, "Init:CrashLoopBackOff") && strings.Contains(l, "0/1") {
				return nil
			}
		}
		return fmt.Errorf("ballast pods:\n%s", out)
	})
	s := n.pod("stuck")
	if s.Status.Phase != corev1.PodPending || s.Status.ContainerStatuses[0].State.Waiting == nil || s.Status.ContainerStatuses[0].State.Waiting.Reason != "PodInitializing" {
		t.Errorf("stuck pod: phase %s, app %+v", s.Status.Phase, s.Status.ContainerStatuses[0].State)
	}
}

// postStart runs after the start, preStop before the stop; an expired
// activeDeadlineSeconds fails the pod for good.
func TestLifecycleHooksAndDeadline(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	hostDir := filepath.Join(env.Dir, "hooks")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	n.write("hooked.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  terminationGracePeriodSeconds: 20
  volumes: [{name: out, hostPath: {path: %s}}]
  containers:
  - name: app
    image: %s
    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle:
      postStart:
        exec: {command: ["/hello", "touch", "/out/post-start"]}
      preStop:
        exec: {command: ["/hello", "touch", "/out/pre-stop"]}
`, hostDir, env.HelloImage()))
	n.waitPod("hooked", "running", running)
	if _, err := os.Stat(filepath.Join(hostDir, "post-start")); err != nil {
		t.Errorf("postStart hook did not run: %v", err)
	}
	n.remove("hooked.yaml")
	n.eventually("pod gone", 60*time.Second, func() error {
		if n.pod("hooked") != nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(hostDir, "pre-stop")); err != nil {
		t.Errorf("preStop hook did not run: %v", err)
	}

	n.write("deadline.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  activeDeadlineSeconds: 3
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: %s
`, env.HelloImage()))
	n.waitPod("deadline", "failed with DeadlineExceeded", func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "DeadlineExceeded" {
			return fmt.Errorf("phase %s reason %q (%s)", p.Status.Phase, p.Status.Reason, reasons(p))
		}
		if p.Status.ContainerStatuses[0].State.Running != nil {
			return fmt.Errorf("container still running")
		}
		return nil
	})
}
