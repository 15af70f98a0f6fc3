// Package testutil owns what Ballast's tests share: how a test that needs
// something the machine lacks (root, containerd, kubectl, an etcd binary)
// ends (skipped with the reason on a developer's machine, failed in CI,
// where a skip would hide that the test never ran), and how a test waits
// for a condition it can only poll (Eventually) instead of sleeping.
package testutil

import (
	"fmt"
	"os"
	"testing"
	"time"
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

// PollInterval is how often Eventually checks its condition.
const PollInterval = 20 * time.Millisecond

// Eventually checks cond every PollInterval until it returns nil, and
// fails the test with cond's last error once within has passed. It is for
// conditions nothing signals (another process's state, a file, a socket);
// wait on a channel when there is one.
func Eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(within, cond); err != nil {
		t.Fatal(err)
	}
}

// Poll checks cond every PollInterval until it returns nil (then Poll
// returns nil) or within has passed (then it returns cond's last error).
func Poll(within time.Duration, cond func() error) error {
	return PollEvery(PollInterval, within, cond)
}

// PollEvery is Poll checking every interval: for conditions that are
// costly to check (a kubectl run, an API call).
func PollEvery(interval, within time.Duration, cond func() error) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-deadline.C:
			return fmt.Errorf("still not true after %v: %w", within, err)
		case <-tick.C:
		}
	}
}
