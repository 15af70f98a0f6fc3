package rest

import (
	"testing"
	"time"
)

// A quiet stream flushes a burst at once; one that keeps receiving flushes
// at most once per FlushInterval; after a quiet spell, at once again.
func TestFlushPace(t *testing.T) {
	p := newFlushPace()
	t0 := time.Now()
	for i := range FlushBurst {
		if d := p.next(t0); d != 0 {
			t.Fatalf("flush %d of a burst: wait %v, want none", i+1, d)
		}
	}
	if d := p.next(t0); d != FlushInterval {
		t.Fatalf("the flush after a burst: wait %v, want %v", d, FlushInterval)
	}

	// Events every millisecond for a second: the stream flushes when its
	// wait is over, then waits again.
	p = newFlushPace()
	flushes, due := 0, t0
	for now := t0; now.Before(t0.Add(time.Second)); now = now.Add(time.Millisecond) {
		if now.Before(due) {
			continue // a flush is already due, which sends this event too
		}
		flushes++
		due = now.Add(p.next(now))
	}
	if most := FlushBurst + int(time.Second/FlushInterval); flushes > most || flushes < most-2 {
		t.Errorf("%d flushes in a second of events, want about %d", flushes, most)
	}

	// After a quiet second, a burst goes out at once again.
	later := t0.Add(3 * time.Second)
	for i := range FlushBurst {
		if d := p.next(later); d != 0 {
			t.Fatalf("after a quiet spell, flush %d: wait %v, want none", i+1, d)
		}
	}
}
