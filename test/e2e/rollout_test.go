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

// rolloutPod is the hello pod "web" at a version, with short rollout times.
func rolloutPod(image, version, extraAnnotations, containerExtra string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    ballast.dev/rollout-settle: 2s
    ballast.dev/rollout-deadline: 15s
%sspec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: %s
    env:
    - {name: VERSION, value: %q}
%s`, extraAnnotations, image, version, containerExtra)
}

func version(p *corev1.Pod) string {
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == "VERSION" {
			return e.Value
		}
	}
	return ""
}

// servesVersion is a condition: the pod runs the given version and answers.
func servesVersion(v string) func(p *corev1.Pod) error {
	return func(p *corev1.Pod) error {
		if got := version(p); got != v {
			return fmt.Errorf("version %q, want %q", got, v)
		}
		if err := running(p); err != nil {
			return err
		}
		_, err := get(fmt.Sprintf("http://%s:%d/", p.Status.PodIP, harness.HelloPort))
		return err
	}
}

// settled waits until version v of web is its file's last good pod: the
// rollout record on disk says so.
func (n *node) settled(v string) {
	n.t.Helper()
	n.waitPod("web", "version "+v+" the last good pod", func(p *corev1.Pod) error {
		if err := servesVersion(v)(p); err != nil {
			return err
		}
		recs, err := n.rolloutRecords()
		if err != nil {
			return err
		}
		if !strings.Contains(recs, `"uid":"`+string(p.UID)+`"`) {
			return fmt.Errorf("not yet the last good pod: %s", recs)
		}
		return nil
	})
}

// reverted waits for the RolloutReverted event naming reason, then for the
// last good version v to serve again, and checks `ballast pods` says why.
func (n *node) reverted(v, reason string) {
	n.t.Helper()
	n.eventually("RolloutReverted event: "+reason, 90*time.Second, func() error {
		out, err := n.run("events")
		if err != nil {
			return err
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "RolloutReverted") && strings.Contains(l, reason) && strings.Contains(l, "web.yaml") {
				return nil
			}
		}
		return fmt.Errorf("no such event in:\n%s", out)
	})
	n.waitPod("web", "the last good version serving again", servesVersion(v))
	out, err := n.run("pods")
	if err != nil || !strings.Contains(out, "reverted") || !strings.Contains(out, reason) {
		n.t.Errorf("ballast pods does not say the pod was reverted and why (%q): %v\n%s", reason, err, out)
	}
}

func TestRolloutRevert(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env, "--crash-backoff-initial", "1s", "--crash-backoff-max", "2s")
	n.start()
	hello := env.HelloImage()

	n.write("web.yaml", rolloutPod(hello, "1", "", ""))
	n.settled("1")

	// A good edit rolls forward.
	n.write("web.yaml", rolloutPod(hello, "2", "", ""))
	n.settled("2")

	// A bad image tag, a crash-looping command, a pod that never becomes
	// Ready: each goes back to version 2.
	n.write("web.yaml", rolloutPod(env.RegistryHost+"/hello:typo", "3", "", ""))
	n.reverted("2", "ErrImagePull")

	n.write("web.yaml", rolloutPod(hello, "4", "", "    - {name: EXIT_AFTER, value: 300ms}\n    - {name: EXIT_CODE, value: \"3\"}\n"))
	n.reverted("2", "crash-loops")

	n.write("web.yaml", rolloutPod(hello, "5", "", "    readinessProbe:\n      tcpSocket: {port: 9999}\n      periodSeconds: 1\n"))
	n.reverted("2", "not Ready within the rollout deadline of 15s")

	// kill -9 of the agent during a rollout: the restarted agent finishes it
	// the same way.
	n.write("web.yaml", rolloutPod(hello, "6", "", "    readinessProbe:\n      tcpSocket: {port: 9999}\n      periodSeconds: 1\n"))
	n.waitPod("web", "version 6 started", func(p *corev1.Pod) error {
		if version(p) != "6" || p.Status.ContainerStatuses[0].State.Running == nil {
			return fmt.Errorf("%s %s", version(p), reasons(p))
		}
		return nil
	})
	n.kill9()
	n.start()
	n.reverted("2", "not Ready within the rollout deadline of 15s")

	// ballast.dev/rollout: replace behaves as the kubelet: the broken pod stays.
	n.write("web.yaml", rolloutPod(env.RegistryHost+"/hello:typo", "7", "    ballast.dev/rollout: replace\n", ""))
	n.waitPod("web", "version 7 failing to pull", func(p *corev1.Pod) error {
		if version(p) != "7" {
			return fmt.Errorf("version %s", version(p))
		}
		if w := p.Status.ContainerStatuses[0].State.Waiting; w == nil || (w.Reason != "ImagePullBackOff" && w.Reason != "ErrImagePull") {
			return fmt.Errorf("%s", reasons(p))
		}
		return nil
	})
	// Past its deadline it is still the file's pod (15s, plus the decision).
	n.eventually("the opted-out pod still in place past its deadline", 40*time.Second, func() error {
		p := n.pod("web")
		if p == nil || version(p) != "7" {
			n.t.Fatalf("the opted-out pod was replaced: %v", p)
		}
		if time.Since(p.CreationTimestamp.Time) < 20*time.Second {
			return fmt.Errorf("not past its deadline yet")
		}
		return nil
	})
}

// rolloutRecords returns the rollout records the agent keeps on disk.
func (n *node) rolloutRecords() (string, error) {
	return readDir(filepath.Join(n.dataDir, "rollouts"))
}

func TestStartOrder(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	pod := func(name, after, extra string) string {
		ann := ""
		if after != "" {
			ann = "  annotations:\n    ballast.dev/after: " + after + "\n"
		}
		return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n%sspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: app\n    image: %s\n%s", name, ann, env.HelloImage(), extra)
	}
	// db takes 3 s to be Ready; api waits for it, web for api.
	n.write("web.yaml", pod("web", "api", ""))
	n.write("api.yaml", pod("api", "db", ""))
	n.write("db.yaml", pod("db", "", "    readinessProbe:\n      tcpSocket: {port: 8080}\n      initialDelaySeconds: 3\n      periodSeconds: 1\n"))
	check := func() {
		t.Helper()
		web := n.waitPod("web", "running", running)
		api, db := n.pod("api"), n.pod("db")
		dbReady, apiReady := readySince(db), readySince(api)
		apiStart := api.Status.ContainerStatuses[0].State.Running.StartedAt.Time
		webStart := web.Status.ContainerStatuses[0].State.Running.StartedAt.Time
		// Times in status are whole seconds: a start may share db's second.
		if apiStart.Before(dbReady) || webStart.Before(apiReady) {
			t.Errorf("out of order: db Ready %s, api started %s and Ready %s, web started %s", dbReady, apiStart, apiReady, webStart)
		}
		for _, p := range []*corev1.Pod{web, api} {
			if rc := p.Status.ContainerStatuses[0].RestartCount; rc != 0 {
				t.Errorf("%s restarted %d times", p.Name, rc)
			}
		}
	}
	// db needs 3 s to be Ready: api says it waits for db all that time.
	n.eventually("api waiting for db", 30*time.Second, func() error {
		p := n.pod("api")
		if p == nil {
			return fmt.Errorf("no api pod")
		}
		if p.Status.ContainerStatuses[0].State.Running != nil {
			t.Fatalf("api runs before it was seen waiting for db (db %s)", reasons(n.pod("db")))
		}
		if w := p.Status.ContainerStatuses[0].State.Waiting; w != nil && w.Reason == "WaitingForDependency" && strings.Contains(w.Message, "db-") {
			return nil
		}
		return fmt.Errorf("%s", reasons(p))
	})
	check()

	// A reboot: the agent stops, the runtime is emptied, the agent starts.
	n.stop()
	env.RemoveAllPods(t)
	n.start()
	check()

	// Pods that wait for each other in a cycle: reported by file.
	n.write("x.yaml", pod("x", "y", ""))
	n.write("y.yaml", pod("y", "x", ""))
	n.eventually("the cycle reported", 30*time.Second, func() error {
		out, err := n.run("pods")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "x.yaml") || !strings.Contains(out, "cycle") {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
}

func readySince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// readDir returns the contents of every file in dir, one after the other.
func readDir(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		b.Write(data)
		b.WriteByte('\n')
	}
	return b.String(), nil
}
