package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// A separate `ballast node` joined with a token to a separate `ballast
// server`: the static pod shows Running in kubectl; deleting its mirror
// brings it back within a second with its restart count kept; removing the
// file removes the mirror. The Node carries its kubelet port.
func TestNodeAPIMirror(t *testing.T) {
	env := harness.Start(t)
	s := startAPIServer(t, env)
	n, kport := startAPINode(t, env, s)
	n.write("web.yaml", manifest{Name: "web", Image: env.HelloImage(), Grace: 1}.yaml())
	name := "web-" + n.name
	n.eventually("kubectl shows the mirror pod Running", 60*time.Second, func() error { return s.mirrorRunning(name) })

	out, err := s.k("get", "node", n.name, "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port} {.status.conditions[?(@.type=='Ready')].status} {.status.addresses[0].address}")
	if err != nil || out != fmt.Sprintf("%d True 127.0.0.1", kport) {
		t.Errorf("node status: %q %v", out, err)
	}
	out, err = s.k("get", "lease", "-n", "kube-node-lease", n.name, "-o", "jsonpath={.spec.holderIdentity}")
	if err != nil || out != n.name {
		t.Errorf("node lease: %q %v", out, err)
	}

	c := s.client()
	old, err := s.getPod(c, name)
	if err != nil {
		t.Fatal(err)
	}
	cid := containerID(n.pod("web"))
	if out, err := s.k("delete", "pod", name, "--wait=false"); err != nil {
		t.Fatalf("kubectl delete: %s %v", out, err)
	}
	deleted := time.Now()
	var back time.Duration
	n.eventually("the mirror pod comes back", 30*time.Second, func() error {
		p, err := s.getPod(c, name)
		if err != nil || p.UID == old.UID {
			return fmt.Errorf("not back yet: %v", err)
		}
		if back == 0 {
			back = time.Since(deleted)
		}
		if len(p.Status.ContainerStatuses) == 0 || !p.Status.ContainerStatuses[0].Ready {
			return fmt.Errorf("new mirror has no ready status yet")
		}
		if p.Status.ContainerStatuses[0].RestartCount != 0 || p.Status.ContainerStatuses[0].ContainerID != cid {
			return fmt.Errorf("restart count %d, container %s (was %s)", p.Status.ContainerStatuses[0].RestartCount, p.Status.ContainerStatuses[0].ContainerID, cid)
		}
		return nil
	})
	t.Logf("mirror pod back %s after kubectl delete", back)
	if got := containerID(n.pod("web")); got != cid {
		t.Errorf("deleting the mirror restarted the container: %s -> %s", cid, got)
	}
	out, err = s.k("get", "pod", name, "-o", "jsonpath={.metadata.annotations.kubernetes\\.io/config\\.mirror} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}")
	if err != nil || !strings.HasSuffix(out, " Node/"+n.name) || strings.HasPrefix(out, " ") {
		t.Errorf("mirror annotation and owner: %q %v", out, err)
	}

	n.remove("web.yaml")
	n.eventually("the mirror pod is removed with its file", 30*time.Second, func() error {
		l, err := c.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, p := range l.Items {
			if p.Name == name {
				return fmt.Errorf("still listed")
			}
		}
		return nil
	})
}
