package manifest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/validation"
)

func TestBallastAnnotations(t *testing.T) {
	pod := func(annotations string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: api\n  annotations:\n" + annotations +
			"spec:\n  containers:\n  - name: c\n    image: img\n"
	}
	for _, c := range []struct {
		annotations string
		want        string // "" for valid
	}{
		{"    ballast.dev/after: etcd\n", ""},
		{"    ballast.dev/after: \"etcd, scheduler\"\n", ""},
		{"    ballast.dev/after: etcd,,x\n", `x.yaml:6: metadata.annotations[ballast.dev/after]: Invalid value: "etcd,,x": list pod names separated by commas`},
		{"    ballast.dev/after: api\n", `a pod cannot wait for itself`},
		{"    ballast.dev/after: Etcd\n", `Invalid value: "Etcd": a lowercase RFC 1123 subdomain`},
		{"    ballast.dev/rollout: replace\n", ""},
		{"    ballast.dev/rollout: never\n", `Unsupported value: "never"`},
		{"    ballast.dev/rollout-deadline: 90s\n    ballast.dev/rollout-settle: 10s\n", ""},
		{"    ballast.dev/rollout-deadline: \"90\"\n", `metadata.annotations[ballast.dev/rollout-deadline]: Invalid value: "90": give a positive duration`},
		{"    ballast.dev/rollout-settle: -1s\n", `Invalid value: "-1s"`},
	} {
		_, err := Parse("x.yaml", []byte(pod(c.annotations)), "node")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.annotations, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want %q", c.annotations, err, c.want)
		}
	}
}

func TestContainerLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Pod\nmetadata:\n  name: huge\nspec:\n  containers:\n")
	for i := 0; i <= validation.MaxContainersPerPod; i++ {
		fmt.Fprintf(&b, "  - name: c%d\n    image: img\n", i)
	}
	_, err := Parse("huge.yaml", []byte(b.String()), "node")
	if err == nil || !strings.Contains(err.Error(), "huge.yaml:6: spec.containers: Too many: 101 containers") {
		t.Fatalf("error %v", err)
	}
}
