// Package testutil owns what Ballast's tests share about their environment:
// a test that needs something the machine lacks (root, containerd, kubectl,
// an etcd binary) is skipped with the reason on a developer's machine, and
// fails in CI, where a skip would hide that the test never ran.
package testutil

import (
	"os"
	"testing"
)

// Need stops the test when why is not empty: it fails under CI (CI set in
// the environment, as .ci/run runs) and is skipped, saying why, elsewhere.
func Need(t testing.TB, why string) {
	t.Helper()
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("this test cannot run here: %s (CI must provide it)", why)
	}
	t.Skipf("skipped: %s", why)
}
