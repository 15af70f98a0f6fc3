package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// A pod starts from its file, carries the node in its name, serves, reports
// true status, and its logs are readable through `ballast logs`.
func TestPodStartsServesAndLogs(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	n.write("web.yaml", manifest{Name: "web", Image: env.HelloImage(), Env: map[string]string{"LOG_LINES": "5"}}.yaml())
	p := n.waitPod("web", "running", running)

	if want := "web-" + n.name; p.Name != want {
		t.Errorf("pod name %q, want %q", p.Name, want)
	}
	if p.Spec.NodeName != n.name || p.Namespace != "default" {
		t.Errorf("nodeName %q namespace %q", p.Spec.NodeName, p.Namespace)
	}
	for _, a := range []string{"kubernetes.io/config.hash", "kubernetes.io/config.source", "kubernetes.io/config.seen", "ballast.dev/manifest"} {
		if p.Annotations[a] == "" {
			t.Errorf("annotation %s missing: %v", a, p.Annotations)
		}
	}
	if string(p.UID) != p.Annotations["kubernetes.io/config.hash"] {
		t.Errorf("uid %s != config.hash %s", p.UID, p.Annotations["kubernetes.io/config.hash"])
	}
	cs := p.Status.ContainerStatuses[0]
	if !strings.HasPrefix(cs.ContainerID, "containerd://") || cs.ImageID == "" || cs.RestartCount != 0 || cs.Started == nil || !*cs.Started {
		t.Errorf("container status %+v", cs)
	}
	if p.Status.PodIP == "" || p.Status.HostIP == "" || p.Status.StartTime == nil {
		t.Errorf("podIP %q hostIP %q startTime %v", p.Status.PodIP, p.Status.HostIP, p.Status.StartTime)
	}
	var ready bool
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		t.Errorf("pod not Ready: %+v", p.Status.Conditions)
	}
	body, err := get(fmt.Sprintf("http://%s:%d/", p.Status.PodIP, harness.HelloPort))
	if err != nil || !strings.Contains(body, "hello from "+p.Name) {
		t.Errorf("GET pod: %q %v", body, err)
	}

	out, err := n.run("pods", "-o", "wide")
	if err != nil || !strings.Contains(out, p.Name) || !strings.Contains(out, "Running") || !strings.Contains(out, "1/1") {
		t.Errorf("ballast pods -o wide:\n%s %v", out, err)
	}
	logs, err := n.run("logs", "web")
	if err != nil || !strings.Contains(logs, "line 5") {
		t.Errorf("ballast logs web:\n%s %v", logs, err)
	}
	tail, err := n.run("logs", p.Name, "--tail", "1")
	if err != nil || strings.Count(strings.TrimSpace(tail), "\n") != 0 {
		t.Errorf("ballast logs --tail 1:\n%q %v", tail, err)
	}
	// The kubelet's layout: pods/<ns>_<pod>_<uid>/<container>/<restart>.log
	logFile := filepath.Join(n.dataDir, "pods", fmt.Sprintf("default_%s_%s", p.Name, p.UID), "app", "0.log")
	if _, err := os.Stat(logFile); err != nil {
		t.Errorf("log file: %v", err)
	}
}

// A crashing container restarts with back-off; lastState keeps the exit.
func TestCrashLoopBackOff(t *testing.T) {
	env := harness.Start(t)
	// Back-off windows long enough to be seen by polling on a loaded machine.
	n := newNode(t, env, "--crash-backoff-initial", "3s", "--crash-backoff-max", "6s")
	n.start()
	n.write("crash.yaml", manifest{Name: "crash", Image: env.HelloImage(), Env: map[string]string{"EXIT_AFTER": "200ms", "EXIT_CODE": "3"}}.yaml())
	sawBackOff := false
	p := n.waitPod("crash", "restarted at least 3 times", func(p *corev1.Pod) error {
		cs := p.Status.ContainerStatuses[0]
		if cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff" {
			sawBackOff = true
			if !strings.Contains(cs.State.Waiting.Message, "back-off") {
				return fmt.Errorf("back-off message %q", cs.State.Waiting.Message)
			}
		}
		if cs.RestartCount < 3 {
			return fmt.Errorf("restartCount %d", cs.RestartCount)
		}
		return nil
	})
	if !sawBackOff {
		t.Errorf("never saw CrashLoopBackOff")
	}
	cs := p.Status.ContainerStatuses[0]
	if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 3 || cs.LastTerminationState.Terminated.Reason != "Error" {
		t.Errorf("lastState %+v", cs.LastTerminationState)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running (restartPolicy Always)", p.Status.Phase)
	}
	prev, err := n.run("logs", "crash", "--previous")
	if err != nil || !strings.Contains(prev, "starting") {
		t.Errorf("logs --previous: %q %v", prev, err)
	}
}

func TestRestartPolicies(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	n.write("never.yaml", manifest{Name: "never", Image: env.HelloImage(), RestartPolicy: "Never", Env: map[string]string{"EXIT_AFTER": "100ms", "EXIT_CODE": "1"}}.yaml())
	n.write("onfail-ok.yaml", manifest{Name: "onfail-ok", Image: env.HelloImage(), RestartPolicy: "OnFailure", Env: map[string]string{"EXIT_AFTER": "100ms", "EXIT_CODE": "0"}}.yaml())
	n.write("onfail-bad.yaml", manifest{Name: "onfail-bad", Image: env.HelloImage(), RestartPolicy: "OnFailure", Env: map[string]string{"EXIT_AFTER": "100ms", "EXIT_CODE": "2"}}.yaml())
	n.write("always-ok.yaml", manifest{Name: "always-ok", Image: env.HelloImage(), Env: map[string]string{"EXIT_AFTER": "100ms", "EXIT_CODE": "0"}}.yaml())

	n.waitPod("never", "Failed without restarts", func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodFailed {
			return fmt.Errorf("phase %s", p.Status.Phase)
		}
		if c := p.Status.ContainerStatuses[0]; c.RestartCount != 0 || c.State.Terminated == nil || c.State.Terminated.ExitCode != 1 {
			return fmt.Errorf("status %s", reasons(p))
		}
		return nil
	})
	n.waitPod("onfail-ok", "Succeeded", func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodSucceeded {
			return fmt.Errorf("phase %s", p.Status.Phase)
		}
		return nil
	})
	n.waitPod("onfail-bad", "restarted", func(p *corev1.Pod) error {
		if p.Status.ContainerStatuses[0].RestartCount < 1 {
			return fmt.Errorf("restartCount 0 (%s)", reasons(p))
		}
		return nil
	})
	n.waitPod("always-ok", "restarted after success", func(p *corev1.Pod) error {
		if p.Status.ContainerStatuses[0].RestartCount < 1 {
			return fmt.Errorf("restartCount 0 (%s)", reasons(p))
		}
		return nil
	})
	// A finished pod stays finished: no restart later. Proof that the
	// agent had its chance: onfail-bad, which fails the same way, has since
	// been restarted again (after its back-off).
	never := n.pod("never")
	restarts := n.pod("onfail-bad").Status.ContainerStatuses[0].RestartCount
	n.waitPod("onfail-bad", "restarted once more", func(p *corev1.Pod) error {
		if c := p.Status.ContainerStatuses[0].RestartCount; c <= restarts {
			return fmt.Errorf("restartCount %d", c)
		}
		return nil
	})
	if again := n.pod("never"); again.Status.ContainerStatuses[0].RestartCount != 0 || containerID(again) != containerID(never) {
		t.Errorf("Never pod was restarted: %s", reasons(again))
	}
}

// A changed file replaces its pod (old stopped first); a removed file stops
// its pod gracefully, and SIGKILL follows the grace period.
func TestFileChangeAndRemoval(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	n.write("app.yaml", manifest{Name: "app", Image: env.HelloImage(), Grace: 30, Env: map[string]string{"IGNORE_SIGTERM_FOR": "500ms", "GREETING": "one"}}.yaml())
	old := n.waitPod("app", "running", running)

	n.write("app.yaml", manifest{Name: "app", Image: env.HelloImage(), Grace: 30, Env: map[string]string{"IGNORE_SIGTERM_FOR": "500ms", "GREETING": "two"}}.yaml())
	nu := n.waitPod("app", "replaced", func(p *corev1.Pod) error {
		if p.UID == old.UID {
			return fmt.Errorf("still the old pod")
		}
		return running(p)
	})
	if containerID(nu) == containerID(old) {
		t.Errorf("container not replaced")
	}
	// The old container got SIGTERM and stopped by itself within its grace.
	if !strings.Contains(n.logText(), "pod stopped") {
		t.Errorf("no 'pod stopped' in the agent log")
	}
	oldLog := filepath.Join(n.dataDir, "pods", fmt.Sprintf("default_%s_%s", old.Name, old.UID))
	if _, err := os.Stat(oldLog); !os.IsNotExist(err) {
		t.Errorf("old pod's logs not removed: %v", err)
	}
	if len(n.pods()) != 1 {
		t.Errorf("pods after replace: %d", len(n.pods()))
	}

	// Removal: the container ignores SIGTERM far longer than its 1 s grace,
	// so it is gone only if SIGKILL follows.
	n.write("stubborn.yaml", manifest{Name: "stubborn", Image: env.HelloImage(), Grace: 1, Env: map[string]string{"IGNORE_SIGTERM_FOR": "10m"}}.yaml())
	n.waitPod("stubborn", "running", running)
	n.remove("stubborn.yaml")
	n.remove("app.yaml")
	n.eventually("pods removed", 60*time.Second, func() error {
		if ps := n.pods(); len(ps) != 0 {
			return fmt.Errorf("%d pods left", len(ps))
		}
		return nil
	})
	n.eventually("sandboxes removed from the runtime", 30*time.Second, func() error {
		return noSandboxes(env)
	})
}

// An invalid file keeps the last good pod running, untouched, and says why;
// fixing it clears the problem.
func TestInvalidFileKeepsLastGoodPod(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	good := manifest{Name: "keep", Image: env.HelloImage()}.yaml()
	n.write("keep.yaml", good)
	before := n.waitPod("keep", "running", running)

	n.write("keep.yaml", good+"    bogusField: 1\n")
	n.eventually("the problem is shown", 30*time.Second, func() error {
		out, _ := n.run("pods")
		if !strings.Contains(out, "keep.yaml") || !strings.Contains(out, "bogusField") {
			return fmt.Errorf("ballast pods:\n%s", out)
		}
		return nil
	})
	after := n.pod("keep")
	if after == nil || containerID(after) != containerID(before) || after.UID != before.UID {
		t.Fatalf("pod changed after the file became invalid: %v", after)
	}
	// Even across an agent restart, the pod keeps running from its last good content.
	n.stop()
	n.start()
	n.eventually("problem shown after restart", 30*time.Second, func() error {
		p := n.pod("keep")
		if p == nil || containerID(p) != containerID(before) {
			return fmt.Errorf("pod %v", p)
		}
		if !strings.Contains(p.Annotations["ballast.dev/manifest-error"], "bogusField") {
			return fmt.Errorf("annotations %v", p.Annotations)
		}
		return nil
	})
	n.write("keep.yaml", good)
	n.eventually("problem cleared", 30*time.Second, func() error {
		p := n.pod("keep")
		if p == nil || p.Annotations["ballast.dev/manifest-error"] != "" {
			return fmt.Errorf("pod %v", p)
		}
		return nil
	})
	if p := n.pod("keep"); containerID(p) != containerID(before) {
		t.Errorf("fixing the file restarted the pod")
	}
}

// Editor swap and backup files never become pods.
func TestEditorFilesIgnored(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	y := manifest{Name: "ghost", Image: env.HelloImage()}.yaml()
	for _, f := range []string{".ghost.yaml.swp", "ghost.yaml~", "ghost.yaml.bak", "4913", "ghost.txt"} {
		if err := os.WriteFile(filepath.Join(n.manifests, f), []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n.write("real.yaml", manifest{Name: "real", Image: env.HelloImage()}.yaml())
	// The same pod in a second file: the first in lexical order wins.
	n.write("zz-real-again.yaml", manifest{Name: "real", Image: env.HelloImage(), Env: map[string]string{"X": "y"}}.yaml())
	// A brand-new invalid file: no pod, but reported.
	n.write("broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: broken\nspec:\n  containers: []\n")
	n.waitPod("real", "running", running)
	if ps := n.pods(); len(ps) != 1 {
		t.Errorf("pods: %d, want only real", len(ps))
	}
	n.eventually("problems reported by ballast pods", 30*time.Second, func() error {
		out, err := n.run("pods")
		if err != nil {
			return err
		}
		for _, want := range []string{"broken.yaml", "spec.containers", "zz-real-again.yaml", "real.yaml"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("%q missing from:\n%s", want, out)
			}
		}
		return nil
	})
}

func noSandboxes(env *harness.Env) error {
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	r, err := env.Runtime().ListPodSandbox(ctx, nil)
	if err != nil {
		return err
	}
	if len(r.Items) > 0 {
		return fmt.Errorf("%d sandboxes left", len(r.Items))
	}
	return nil
}

// Container logs are rotated by size; the runtime writes on into a new file
// and `ballast logs` still reads them.
func TestLogRotation(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env, "--container-log-max-size", "2000", "--container-log-max-files", "3", "--container-log-check-interval", "500ms")
	n.start()
	n.write("chatty.yaml", manifest{Name: "chatty", Image: env.HelloImage(), Env: map[string]string{"LOG_LINES": "300"}}.yaml())
	p := n.waitPod("chatty", "running", running)
	dir := filepath.Join(n.dataDir, "pods", fmt.Sprintf("default_%s_%s", p.Name, p.UID), "app")
	n.eventually("a rotated log file", 30*time.Second, func() error {
		m, _ := filepath.Glob(filepath.Join(dir, "0.log.*"))
		if len(m) == 0 {
			return fmt.Errorf("no rotated file in %s", dir)
		}
		return nil
	})
	// The runtime reopened the log: new output lands in the current file.
	if _, err := get(fmt.Sprintf("http://%s:%d/after-rotation", p.Status.PodIP, harness.HelloPort)); err != nil {
		t.Fatal(err)
	}
	n.eventually("new lines after rotation", 30*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(dir, "0.log"))
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "/after-rotation") {
			return fmt.Errorf("current file:\n%s", b)
		}
		return nil
	})
	out, err := n.run("logs", "chatty", "--tail", "1")
	if err != nil || !strings.Contains(out, "/after-rotation") {
		t.Errorf("ballast logs --tail 1: %q %v", out, err)
	}
}
