package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// kill -9 of the agent loses nothing: the restarted agent adopts what runs
// without restarting it, and restart counts carry over.
func TestAgentKill9Adopts(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	n.write("steady.yaml", manifest{Name: "steady", Image: env.HelloImage()}.yaml())
	n.write("crashy.yaml", manifest{Name: "crashy", Image: env.HelloImage(), Env: map[string]string{"EXIT_AFTER": "300ms", "EXIT_CODE": "1"}}.yaml())
	steady := n.waitPod("steady", "running", running)
	n.waitPod("crashy", "restarted twice", func(p *corev1.Pod) error {
		if p.Status.ContainerStatuses[0].RestartCount < 2 {
			return fmt.Errorf("restarts %d", p.Status.ContainerStatuses[0].RestartCount)
		}
		return nil
	})
	before := n.pod("crashy").Status.ContainerStatuses[0].RestartCount

	n.kill9()
	n.start()
	again := n.waitPod("steady", "running", running)
	if containerID(again) != containerID(steady) || again.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("steady pod restarted by the agent restart: %s -> %s", containerID(steady), containerID(again))
	}
	c := n.waitPod("crashy", "listed", func(*corev1.Pod) error { return nil })
	if got := c.Status.ContainerStatuses[0].RestartCount; got < before {
		t.Errorf("restart count went back from %d to %d", before, got)
	}
	body, err := get(fmt.Sprintf("http://%s:%d/", again.Status.PodIP, harness.HelloPort))
	if err != nil || !strings.Contains(body, "hello") {
		t.Errorf("GET after adoption: %q %v", body, err)
	}
}

// Stopping and starting containerd loses no pod, and the agent keeps working.
func TestContainerdRestart(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	n.write("survivor.yaml", manifest{Name: "survivor", Image: env.HelloImage()}.yaml())
	before := n.waitPod("survivor", "running", running)

	env.RestartContainerd(t)

	n.write("newcomer.yaml", manifest{Name: "newcomer", Image: env.HelloImage()}.yaml())
	n.waitPod("newcomer", "running", running)
	after := n.waitPod("survivor", "running", running)
	if containerID(after) != containerID(before) || after.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("survivor restarted: %s", reasons(after))
	}
	// Exits are still seen after the runtime came back.
	n.write("late-crash.yaml", manifest{Name: "late-crash", Image: env.HelloImage(), Env: map[string]string{"EXIT_AFTER": "200ms", "EXIT_CODE": "1"}}.yaml())
	n.waitPod("late-crash", "restarted", func(p *corev1.Pod) error {
		if p.Status.ContainerStatuses[0].RestartCount < 1 {
			return fmt.Errorf("%s", reasons(p))
		}
		return nil
	})
}

// Images arrive offline as tarballs in the images directory; a pod waiting
// for its image starts as soon as the tarball lands.
func TestImagesDirectory(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	n.write("offline.yaml", manifest{Name: "offline", Image: harness.HelloTarballRef, PullPolicy: "Never"}.yaml())
	n.waitPod("offline", "waiting for its image", func(p *corev1.Pod) error {
		w := p.Status.ContainerStatuses[0].State.Waiting
		if w == nil || w.Reason != "ErrImageNeverPull" {
			return fmt.Errorf("%s", reasons(p))
		}
		return nil
	})
	tar := env.HelloTarball(t)
	if err := os.Rename(tar, filepath.Join(n.imagesDir, "hello.tar")); err != nil {
		t.Fatal(err)
	}
	n.waitPod("offline", "running", running)
}

// A missing image in the registry gives ErrImagePull then ImagePullBackOff,
// and the pod starts once the image appears.
func TestImagePullBackOff(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	ref := env.RegistryHost + "/late:v1"
	n.write("late.yaml", manifest{Name: "late", Image: ref}.yaml())
	seen := map[string]bool{}
	n.waitPod("late", "pull back-off", func(p *corev1.Pod) error {
		if w := p.Status.ContainerStatuses[0].State.Waiting; w != nil {
			seen[w.Reason] = true
		}
		if !seen["ImagePullBackOff"] {
			return fmt.Errorf("%s", reasons(p))
		}
		return nil
	})
	env.PushImage(t, "late:v1", nil, nil)
	n.waitPod("late", "running", running)
}
