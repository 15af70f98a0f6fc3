package e2e

// Regression tests of issue 12 (reliability under faults and abuse), each
// on a real containerd.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/wellknown"
	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// runtimeOf lists what the runtime holds for the pod named name (every
// state): its sandboxes and containers.
func runtimeOf(t *testing.T, env *harness.Env, name string) ([]*runtimeapi.PodSandbox, []*runtimeapi.Container) {
	t.Helper()
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	sel := map[string]string{"io.kubernetes.pod.name": name}
	sbs, err := env.Runtime().ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
	if err != nil {
		t.Fatalf("listing sandboxes: %v", err)
	}
	cs, err := env.Runtime().ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	return sbs.Items, cs.Containers
}

// upKubeClient is a client-go client with `ballast up`'s admin kubeconfig.
func upKubeClient(t *testing.T, u *upProcess) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", u.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mirrorChanges counts the creations and deletions of one mirror pod seen
// on a watch.
type mirrorChanges struct {
	mu               sync.Mutex
	created, deleted int
}

func (m *mirrorChanges) counts() (int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.created, m.deleted
}

// watchMirror counts the creations and deletions of mirror pod name from now on.
func watchMirror(t *testing.T, c kubernetes.Interface, name string) *mirrorChanges {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pods := c.CoreV1().Pods("default")
	sel := "metadata.name=" + name
	l, err := pods.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: l.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	m := &mirrorChanges{}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			m.mu.Lock()
			switch ev.Type {
			case watch.Added:
				m.created++
			case watch.Deleted:
				m.deleted++
			}
			m.mu.Unlock()
		}
	}()
	return m
}

// A second file defining a running pod's name (issue 12, point 1): one name
// is one running pod, the file that loses is reported, and the mirror pod
// does not flap.
func TestDuplicateNameFromNewFile(t *testing.T) {
	env := harness.Start(t)
	u := startUp(t, env)
	name := "dup-" + u.name
	u.write("dup1.yaml", manifest{Name: "dup", Image: env.HelloImage(), Env: map[string]string{"GREETING": "one"}}.yaml())
	first := u.waitPod("dup", "running", running)
	u.eventually("the mirror pod Running", 60*time.Second, func() error { return kubectlShowsRunning(u.k, name) })
	c := upKubeClient(t, u)
	changes := watchMirror(t, c, name)

	// dup0.yaml sorts first: its pod takes the name, dup1.yaml's gives way.
	u.write("dup0.yaml", manifest{Name: "dup", Image: env.HelloImage(), Env: map[string]string{"GREETING": "zero"}}.yaml())
	won := u.waitPod("dup", "dup0.yaml's pod running", func(p *corev1.Pod) error {
		if !strings.HasSuffix(p.Annotations[wellknown.AnnotationManifest], "/dup0.yaml") {
			return fmt.Errorf("from %s", p.Annotations[wellknown.AnnotationManifest])
		}
		return running(p)
	})
	if won.UID == first.UID {
		t.Fatalf("the pod of dup0.yaml has dup1.yaml's UID")
	}
	u.eventually("one pod of that name, one sandbox, one container", 60*time.Second, func() error {
		n := 0
		for _, p := range u.pods() {
			if p.Name == name {
				n++
			}
		}
		sbs, cs := runtimeOf(t, env, name)
		if n != 1 || len(sbs) != 1 || len(cs) != 1 {
			return fmt.Errorf("%d pods named %s listed, %d sandboxes, %d containers in the runtime", n, name, len(sbs), len(cs))
		}
		return nil
	})
	u.eventually("dup1.yaml reported by ballast pods and as a Node event", 60*time.Second, func() error {
		out, err := u.run("pods")
		if err != nil || !strings.Contains(out, "dup1.yaml") || !strings.Contains(out, "already defined by") {
			return fmt.Errorf("ballast pods: %v\n%s", err, out)
		}
		out, err = u.k("get", "events", "--field-selector", "involvedObject.kind=Node,type=Warning", "-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}")
		if err != nil || !strings.Contains(out, "dup1.yaml") {
			return fmt.Errorf("Node warnings: %v\n%s", err, out)
		}
		return nil
	})
	hash := won.Annotations[wellknown.AnnotationConfigHash]
	u.eventually("the mirror pod is dup0.yaml's, Running", 60*time.Second, func() error {
		m, err := c.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if m.Annotations[wellknown.AnnotationConfigMirror] != hash {
			return fmt.Errorf("mirror of %s", m.Annotations[wellknown.AnnotationConfigMirror])
		}
		return kubectlShowsRunning(u.k, name)
	})
	created, deleted := changes.counts()
	if created > 1 || deleted > 1 {
		t.Errorf("replacing the mirror pod took %d creations and %d deletions, want 1 each", created, deleted)
	}

	// Three other mirror pods come and go: the sync had every chance to
	// flap, and the dup mirror stays as it is.
	for i := range 3 {
		m := fmt.Sprintf("marker%d", i)
		u.write(m+".yaml", manifest{Name: m, Image: env.HelloImage()}.yaml())
		u.eventually(m+"'s mirror Running", 60*time.Second, func() error { return kubectlShowsRunning(u.k, m+"-"+u.name) })
		u.remove(m + ".yaml")
		u.eventually(m+"'s mirror gone", 60*time.Second, func() error {
			_, err := c.CoreV1().Pods("default").Get(context.Background(), m+"-"+u.name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (%v)", err)
		})
	}
	if c2, d2 := changes.counts(); c2 != created || d2 != deleted {
		t.Errorf("the mirror pod flapped: %d more creations, %d more deletions", c2-created, d2-deleted)
	}
	if p := u.pod("dup"); p == nil || containerID(p) != containerID(won) || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("dup0.yaml's pod did not stay as it was: %v", p)
	}

	// The loser's file removed: nothing changes but the report.
	u.remove("dup1.yaml")
	u.eventually("dup1.yaml no longer reported", 60*time.Second, func() error {
		out, err := u.run("pods")
		if err != nil || strings.Contains(out, "dup1.yaml") {
			return fmt.Errorf("ballast pods: %v\n%s", err, out)
		}
		return nil
	})
	if p := u.pod("dup"); p == nil || containerID(p) != containerID(won) {
		t.Errorf("removing the losing file changed the pod: %v", p)
	}
}

// bigPod is a pod of n hello containers, each on its own port.
func bigPod(name, image string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  terminationGracePeriodSeconds: 5\n  containers:\n", name)
	for i := range n {
		fmt.Fprintf(&b, "  - name: c%02d\n    image: %s\n    env:\n    - name: PORT\n      value: \"%d\"\n", i, image, 9000+i)
	}
	return b.String()
}

// A pod of 60 containers whose file is removed while it starts (issue 12,
// point 3): the start is cancelled, not finished, the pod stops, and
// nothing of it is left (containers, sandbox, logs, volumes).
func TestRemovedWhileStartingStops(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	n.write("other.yaml", manifest{Name: "other", Image: env.HelloImage()}.yaml())
	other := n.waitPod("other", "running", running)

	const total = 60
	name := "huge-" + n.name
	n.write("huge.yaml", bigPod("huge", env.HelloImage(), total))
	n.eventually("the first containers of the huge pod created", 60*time.Second, func() error {
		if _, cs := runtimeOf(t, env, name); len(cs) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	n.remove("huge.yaml")
	most := 0
	n.eventually("the huge pod gone from the runtime", 120*time.Second, func() error {
		sbs, cs := runtimeOf(t, env, name)
		most = max(most, len(cs))
		if len(sbs) > 0 || len(cs) > 0 {
			return fmt.Errorf("%d sandboxes and %d containers left", len(sbs), len(cs))
		}
		return nil
	})
	if most >= total {
		t.Errorf("all %d containers were created after the file was removed: the start was not cancelled", most)
	}
	n.eventually("the huge pod gone from ballast pods", 30*time.Second, func() error {
		if p := n.pod("huge"); p != nil {
			return fmt.Errorf("still listed: %s", p.Status.Phase)
		}
		return nil
	})
	for _, d := range []string{filepath.Join(n.dataDir, "pods"), filepath.Join(n.dataDir, "volumes")} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if strings.Contains(e.Name(), "huge") {
				t.Errorf("left behind: %s", filepath.Join(d, e.Name()))
			}
		}
	}
	// The other pod was not disturbed.
	if p := n.pod("other"); p == nil || containerID(p) != containerID(other) || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("the other pod was disturbed: %v", p)
	}
}

// kill -9 of the agent while it starts several pods (issue 12, point 4):
// the next agent finishes the starts, and no container shows a restart or
// a StartError it never had.
func TestKill9DuringStartsCountsNoRestarts(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	const pods, each = 6, 6
	for i := range pods {
		n.write(fmt.Sprintf("p%d.yaml", i), bigPod(fmt.Sprintf("p%d", i), env.HelloImage(), each))
	}
	// Kill it once containers are being created, before all run.
	n.eventually("containers being created", 60*time.Second, func() error {
		ctx, cancel := ctxTimeout(10 * time.Second)
		defer cancel()
		r, err := env.Runtime().ListContainers(ctx, &runtimeapi.ListContainersRequest{})
		if err != nil {
			return err
		}
		if len(r.Containers) == 0 {
			return fmt.Errorf("none yet")
		}
		running := 0
		for _, c := range r.Containers {
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				running++
			}
		}
		if running == pods*each {
			t.Logf("every container already runs: the kill comes too late to interrupt a start")
		}
		return nil
	})
	n.kill9()
	n.start()
	for i := range pods {
		p := n.waitPod(fmt.Sprintf("p%d", i), "running", running)
		for _, cs := range p.Status.ContainerStatuses {
			last := cs.LastTerminationState.Terminated
			if cs.RestartCount != 0 || last != nil {
				why := ""
				if last != nil {
					why = fmt.Sprintf("%s exit %d: %s", last.Reason, last.ExitCode, last.Message)
				}
				t.Errorf("pod %s container %s: RESTARTS %d, last state %q", p.Name, cs.Name, cs.RestartCount, why)
			}
		}
	}
	out, err := n.run("pods")
	if err != nil || strings.Contains(out, "StartError") {
		t.Errorf("ballast pods: %v\n%s", err, out)
	}
	// One sandbox per pod, one running container per container: nothing
	// doubled.
	for i := range pods {
		name := fmt.Sprintf("p%d-%s", i, n.name)
		sbs, cs := runtimeOf(t, env, name)
		ready, live := 0, 0
		for _, sb := range sbs {
			if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
				ready++
			}
		}
		for _, c := range cs {
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING || c.State == runtimeapi.ContainerState_CONTAINER_CREATED {
				live++
			}
		}
		if ready != 1 || live != each {
			t.Errorf("%s: %d ready sandboxes (of %d), %d live containers (of %d), want 1 and %d", name, ready, len(sbs), live, len(cs), each)
		}
	}
}

// keptRunning fails unless each pod named in ids runs the container given.
func keptRunning(t *testing.T, n *node, ids map[string]string, what string) {
	t.Helper()
	for name, id := range ids {
		p := n.pod(name)
		if p == nil || containerID(p) != id || running(p) != nil {
			t.Fatalf("%s: pod %s did not keep running as it was: %v", what, name, p)
		}
	}
}

// cleared checks that a pod's manifest has no problem.
func cleared(p *corev1.Pod) error {
	if msg := p.Annotations[wellknown.AnnotationManifestError]; msg != "" {
		return fmt.Errorf("manifest-error %q", msg)
	}
	return nil
}

// A vanished manifest directory (issue 12, point 5): `mv manifests
// manifests.old` keeps every pod running (the same containers), says so in
// `ballast pods` and as a Warning event on the Node; moving it back
// resumes, and removing files still stops their pods.
func TestManifestDirectoryVanishes(t *testing.T) {
	env := harness.Start(t)
	u := startUp(t, env)
	u.write("a.yaml", manifest{Name: "a", Image: env.HelloImage()}.yaml())
	u.write("b.yaml", manifest{Name: "b", Image: env.HelloImage()}.yaml())
	ids := map[string]string{}
	for _, p := range []string{"a", "b"} {
		ids[p] = containerID(u.waitPod(p, "running", running))
	}
	same := func(what string) { keptRunning(t, u.node, ids, what) }
	reported := func(why string) func(p *corev1.Pod) error {
		return func(p *corev1.Pod) error {
			if msg := p.Annotations[wellknown.AnnotationManifestError]; !strings.Contains(msg, "the manifest directory "+u.manifests) || !strings.Contains(msg, why) {
				return fmt.Errorf("manifest-error %q", msg)
			}
			return nil
		}
	}

	old := u.manifests + ".old"
	if err := os.Rename(u.manifests, old); err != nil {
		t.Fatal(err)
	}
	u.waitPod("a", "the missing directory reported", reported("no such directory"))
	same("with the directory moved away")
	out, err := u.run("pods")
	if err != nil || !strings.Contains(out, "cannot be read (no such directory)") {
		t.Errorf("ballast pods does not say the directory is missing: %v\n%s", err, out)
	}
	u.eventually("a Warning event on the Node names the directory", 60*time.Second, func() error {
		out, err := u.k("get", "events", "--field-selector", "involvedObject.kind=Node,type=Warning", "-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}")
		if err != nil || !strings.Contains(out, "ManifestDirectoryUnavailable: ") || !strings.Contains(out, u.manifests+" cannot be read") {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
	if err := os.Rename(old, u.manifests); err != nil {
		t.Fatal(err)
	}
	u.waitPod("a", "the directory back", cleared)
	u.waitPod("b", "the directory back", cleared)
	same("with the directory back")

	// Removing files stops their pods, as ever.
	u.remove("a.yaml")
	u.eventually("a stopped", 60*time.Second, func() error {
		if p := u.pod("a"); p != nil {
			return fmt.Errorf("a still listed")
		}
		return nil
	})
	if p := u.pod("b"); p == nil || containerID(p) != ids["b"] {
		t.Errorf("b did not keep running: %v", p)
	}
}

// The volume holding the manifests unmounted (issue 12, point 5): the
// bare mount point left is not an empty manifest directory; the pods keep
// running until the volume is back, or until manifests are written into
// the bare directory, which is then the manifest directory.
func TestManifestVolumeUnmounted(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	files := map[string]string{
		"a.yaml": manifest{Name: "a", Image: env.HelloImage()}.yaml(),
		"b.yaml": manifest{Name: "b", Image: env.HelloImage()}.yaml(),
	}
	mounted := false
	mount := func() {
		t.Helper()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "ballast-e2e", n.manifests).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v: %s", err, out)
		}
		mounted = true
		for f, y := range files {
			if err := os.WriteFile(filepath.Join(n.manifests, f), []byte(y), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	umount := func() {
		t.Helper()
		if out, err := exec.Command("umount", n.manifests).CombinedOutput(); err != nil {
			t.Fatalf("umount: %v: %s", err, out)
		}
		mounted = false
	}
	t.Cleanup(func() {
		if mounted {
			_ = exec.Command("umount", n.manifests).Run()
		}
	})
	mount()
	n.start()
	ids := map[string]string{}
	for _, p := range []string{"a", "b"} {
		ids[p] = containerID(n.waitPod(p, "running", running))
	}
	unmounted := func(p *corev1.Pod) error {
		if msg := p.Annotations[wellknown.AnnotationManifestError]; !strings.Contains(msg, "unmounted") {
			return fmt.Errorf("manifest-error %q", msg)
		}
		return nil
	}
	same := func(what string) { keptRunning(t, n, ids, what) }

	umount()
	n.waitPod("b", "the unmounted volume reported", unmounted)
	same("with the volume unmounted")
	mount() // no inotify event: the next rescan sees it
	n.waitPod("b", "the volume back", cleared)
	same("with the volume mounted again")

	umount()
	n.waitPod("b", "the unmounted volume reported again", unmounted)
	if err := os.WriteFile(filepath.Join(n.manifests, "a.yaml"), []byte(files["a.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	n.eventually("b stopped: the bare directory, with a manifest written into it, holds only a.yaml", 60*time.Second, func() error {
		if p := n.pod("b"); p != nil {
			return fmt.Errorf("b still listed")
		}
		return nil
	})
	if p := n.pod("a"); p == nil || containerID(p) != ids["a"] || cleared(p) != nil {
		t.Errorf("a did not keep running as it was: %v", p)
	}
}
