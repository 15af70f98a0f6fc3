package cri_test

import (
	"testing"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/cri/critest"
	"github.com/ballast-dev/ballast/internal/cri/fakecri"
)

// TestFakeRuntime runs the runtime suite against the fake runtime; test/e2e
// runs the same suite against a real containerd.
func TestFakeRuntime(t *testing.T) {
	f := fakecri.Start(t)
	f.AddImage("registry.example/app:v1")
	rt, err := cri.Dial(f.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	critest.Run(t, critest.Env{Runtime: rt, Image: "registry.example/app:v1", Missing: "registry.example/missing:v1", Dir: t.TempDir()})
}
