package testutil

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNeedNothing(t *testing.T) {
	Need(t, "") // must neither skip nor fail
}

func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(time.Minute, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, n)
	}
	err := Poll(3*PollInterval, func() error { return errors.New("never") })
	if err == nil || !strings.Contains(err.Error(), "never") || !strings.Contains(err.Error(), "still not true after") {
		t.Fatalf("Poll of a condition that never holds = %v", err)
	}
}
