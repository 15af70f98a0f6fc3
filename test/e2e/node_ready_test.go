package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// The Node's Ready condition follows the container runtime: it turns False
// (with the reason) while containerd is down and True when it is back, and
// the pod keeps running throughout.
func TestNodeReadyFollowsRuntime(t *testing.T) {
	env := harness.Start(t)
	u := startUp(t, env)
	u.write("steady.yaml", manifest{Name: "steady", Image: env.HelloImage()}.yaml())
	before := u.waitPod("steady", "running", running)
	ready := func(want string) func() error {
		return func() error {
			out, err := u.k("get", "node", u.name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].message}`)
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if !strings.HasPrefix(out, want+" ") {
				return fmt.Errorf("Ready is %q", out)
			}
			return nil
		}
	}
	u.eventually("node Ready", 30*time.Second, ready("True"))
	env.StopContainerd(t)
	u.eventually("node NotReady while containerd is down", 40*time.Second, ready("False"))
	out, _ := u.k("get", "node", u.name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].message}`)
	if !strings.Contains(out, "container runtime is down") {
		t.Errorf("NotReady message: %q", out)
	}
	env.StartContainerd(t)
	u.eventually("node Ready again", 40*time.Second, ready("True"))
	if after := u.waitPod("steady", "running", running); containerID(after) != containerID(before) {
		t.Errorf("pod restarted across the runtime outage")
	}
}
