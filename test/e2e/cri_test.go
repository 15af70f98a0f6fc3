package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/cri/critest"
	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// TestCRIConformance runs the runtime suite that the fake runtime passes in
// internal/cri against a real containerd: what the agent relies on holds for both.
func TestCRIConformance(t *testing.T) {
	env := harness.Start(t)
	rt, err := cri.Dial(env.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := rt.PullImage(ctx, env.HelloImage(), nil, nil); err != nil {
		t.Fatalf("pulling the test image: %v", err)
	}
	critest.Run(t, critest.Env{Runtime: rt, Image: env.HelloImage(), Missing: env.RegistryHost + "/missing:v1", Dir: env.LogDir})
}
