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

// The API server is killed while the node runs: a manifest removed during
// the outage stops its pod at once; when the server is back on the same
// data dir the node, mirror pods and their status converge (the node probes
// for the server's return rather than waiting out its watch's back-off),
// with no stale mirror left, and the Lease is renewed again.
func TestNodeAPIOutage(t *testing.T) {
	env := harness.Start(t)
	s := startAPIServer(t, env)
	n, _ := startAPINode(t, env, s)
	n.write("a.yaml", manifest{Name: "a", Image: env.HelloImage(), Grace: 1}.yaml())
	n.write("b.yaml", manifest{Name: "b", Image: env.HelloImage(), Grace: 1}.yaml())
	a, b := "a-"+n.name, "b-"+n.name
	n.eventually("both mirror pods Running", 60*time.Second, func() error {
		if err := s.mirrorRunning(a); err != nil {
			return err
		}
		return s.mirrorRunning(b)
	})
	cidA := containerID(n.pod("a"))

	s.kill9()
	killed := time.Now()
	n.remove("b.yaml")
	n.eventually("b stopped during the outage", 15*time.Second, func() error {
		if p := n.pod("b"); p != nil {
			return fmt.Errorf("b still there: %s", p.Status.Phase)
		}
		return nil
	})
	t.Logf("b stopped %s after the file was removed with the API down", time.Since(killed))
	if err := running(n.pod("a")); err != nil {
		t.Errorf("a during the outage: %v", err)
	}
	// A real outage: the node has noticed it.
	n.eventually("the node notices the outage", 30*time.Second, func() error {
		if !strings.Contains(n.logText(), "lost the API server") {
			return fmt.Errorf("the node's log does not say it lost the API server")
		}
		return nil
	})

	s.start()
	back := time.Now()
	c := s.client()
	var took time.Duration
	n.eventually("node, mirrors and status converge", 30*time.Second, func() error {
		ctx := context.Background()
		l, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		seenA := false
		for _, p := range l.Items {
			switch p.Name {
			case b:
				return fmt.Errorf("stale mirror %s still listed", b)
			case a:
				if len(p.Status.ContainerStatuses) == 0 || !p.Status.ContainerStatuses[0].Ready || p.Status.ContainerStatuses[0].ContainerID != cidA {
					return fmt.Errorf("mirror %s status not converged: %+v", a, p.Status.ContainerStatuses)
				}
				seenA = true
			}
		}
		if !seenA {
			return fmt.Errorf("mirror %s missing", a)
		}
		lease, err := c.CoordinationV1().Leases("kube-node-lease").Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if lease.Spec.RenewTime == nil || lease.Spec.RenewTime.Time.Before(killed) {
			return fmt.Errorf("lease not renewed since the restart (renewTime %v)", lease.Spec.RenewTime)
		}
		if took == 0 {
			took = time.Since(back)
		}
		return nil
	})
	t.Logf("converged %s after the API server was back", took)
	if err := s.mirrorRunning(a); err != nil {
		t.Error(err)
	}
	if l := n.logText(); !strings.Contains(l, "lost the API server") || !strings.Contains(l, "API server back") {
		t.Errorf("the node did not notice the outage and the return of the API server")
	}
	// The sync goes on after the outage: a new file becomes a mirror pod.
	n.write("c.yaml", manifest{Name: "c", Image: env.HelloImage(), Grace: 1}.yaml())
	n.eventually("a new pod after the outage is mirrored", 60*time.Second, func() error { return s.mirrorRunning("c-" + n.name) })
	if got := containerID(n.pod("a")); got != cidA {
		t.Errorf("the outage restarted a: %s -> %s", cidA, got)
	}
}
