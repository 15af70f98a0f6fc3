package etcd

import (
	"context"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/storage"
)

// A watch on a prefix nothing is written to learns, on request, that the
// store has moved on (a watch cache of an empty kind must be able to
// serve a list at a revision another kind's write made).
func TestProgressReachesAnIdleWatch(t *testing.T) {
	s := open(t, Config{DataDir: t.TempDir() + "/etcd", ProgressInterval: time.Hour})
	ctx := t.Context()
	idle, err := s.Watch(ctx, "/b/", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := s.Watch(ctx, "/a/", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := s.Create(ctx, "/a/x", []byte("x"), 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range busy.Events() {
		}
	}()
	deadline, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ask := time.NewTicker(100 * time.Millisecond)
	defer ask.Stop()
	for {
		select {
		case e := <-idle.Events():
			if e.Type == storage.Progress && e.Revision >= rev {
				return
			}
			t.Logf("idle watch: %v at %d", e.Type, e.Revision)
		case <-ask.C:
			if err := s.RequestProgress(ctx); err != nil {
				t.Logf("RequestProgress: %v", err)
			}
		case <-deadline.Done():
			t.Fatalf("the idle watch never learnt of revision %d", rev)
		}
	}
}
