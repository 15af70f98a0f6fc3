package rest

import (
	"testing"
	"time"
)

func TestFlushSoon(t *testing.T) {
	const interval = 20 * time.Millisecond
	for _, c := range []struct {
		since, want time.Duration
	}{
		{since: time.Hour, want: 0},                                // a quiet stream flushes at once
		{since: interval, want: 0},                                 // the interval has passed
		{since: 0, want: interval},                                 // just flushed: wait a whole interval
		{since: 5 * time.Millisecond, want: 15 * time.Millisecond}, // the rest of it
		{since: interval - time.Nanosecond, want: time.Nanosecond}, // almost over
	} {
		if got := flushSoon(c.since, interval); got != c.want {
			t.Errorf("flushSoon(%v, %v) = %v, want %v", c.since, interval, got, c.want)
		}
	}
}
