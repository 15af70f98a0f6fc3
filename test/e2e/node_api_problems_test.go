package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// A manifest file that cannot be used raises a Warning event on the Node
// (and on the pod the file defined, which keeps running), naming the file,
// line and field, in kubectl get events.
func TestNodeAPIManifestProblems(t *testing.T) {
	env := harness.Start(t)
	s := startAPIServer(t, env)
	n, _ := startAPINode(t, env, s)
	good := manifest{Name: "web", Image: env.HelloImage(), Grace: 1}.yaml()
	n.write("web.yaml", good)
	name := "web-" + n.name
	n.eventually("kubectl shows the mirror pod Running", 60*time.Second, func() error { return s.mirrorRunning(name) })

	// A new file with an unknown field, and the running pod's file broken.
	n.write("bad.yaml", strings.Replace(good, "name: web", "name: bad", 1)+"    imagePulPolicy: Always\n")
	n.write("web.yaml", strings.Replace(good, "  containers:", "  containerz:", 1))
	written := time.Now()
	var took time.Duration
	n.eventually("Warning events about both files", 30*time.Second, func() error {
		out, err := s.k("get", "events", "-o", "custom-columns=TYPE:.type,REASON:.reason,OBJ:.involvedObject.kind,NAME:.involvedObject.name,MSG:.message", "--no-headers")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		var badNode, webNode, webPod bool
		for _, l := range strings.Split(out, "\n") {
			if !strings.HasPrefix(l, "Warning") || !strings.Contains(l, "InvalidManifest") {
				continue
			}
			switch {
			case strings.Contains(l, " Node ") && strings.Contains(l, "bad.yaml:") && strings.Contains(l, "imagePulPolicy"):
				badNode = true
			case strings.Contains(l, " Node ") && strings.Contains(l, "web.yaml:") && strings.Contains(l, "containerz"):
				webNode = true
			case strings.Contains(l, " Pod ") && strings.Contains(l, name) && strings.Contains(l, "web.yaml:") && strings.Contains(l, "containerz"):
				webPod = true
			}
		}
		if took == 0 && badNode && webNode && webPod {
			took = time.Since(written)
		}
		if !badNode || !webNode || !webPod {
			return fmt.Errorf("node event for bad.yaml %v, for web.yaml %v, pod event %v:\n%s", badNode, webNode, webPod, out)
		}
		return nil
	})
	t.Logf("events visible %s after the files were written", took)
	out, err := s.k("describe", "node", n.name)
	if err != nil || !strings.Contains(out, "InvalidManifest") {
		t.Errorf("kubectl describe node shows no InvalidManifest event:\n%s %v", out, err)
	}
	// Once per distinct error: no repeat counts, also after the sync has
	// gone round again (it reports problems each round) for a new pod.
	n.write("other.yaml", manifest{Name: "other", Image: env.HelloImage(), Grace: 1}.yaml())
	n.eventually("kubectl shows the new mirror pod Running", 60*time.Second, func() error { return s.mirrorRunning("other-" + n.name) })
	out, _ = s.k("get", "events", "--field-selector", "reason=InvalidManifest", "-o", "jsonpath={range .items[*]}{.count}{\"\\n\"}{end}")
	for _, c := range strings.Fields(out) {
		if c != "1" {
			t.Errorf("an InvalidManifest event was repeated (counts %q)", out)
			break
		}
	}
	// The pod keeps running from the file's last good content.
	if err := s.mirrorRunning(name); err != nil {
		t.Error(err)
	}
}
