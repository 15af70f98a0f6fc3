package diskspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/logs"
	"github.com/ballast-dev/ballast/internal/storage"
)

func usage(freePct float64) Usage { return Usage{Free: uint64(freePct * (1 << 20)), Total: 100 << 20} }

func TestThresholds(t *testing.T) {
	th := Thresholds{Enter: 10, Leave: 15}
	for _, c := range []struct {
		free      float64
		was, want bool
	}{
		{50, false, false},
		{10, false, false}, // at the threshold: not yet
		{9.9, false, true},
		{12, true, true}, // between: stays as it was
		{12, false, false},
		{15, true, false},
		{0, true, true},
	} {
		if got := th.Pressure(usage(c.free), c.was); got != c.want {
			t.Errorf("%.1f%% free, was %v: pressure %v, want %v", c.free, c.was, got, c.want)
		}
	}
	if (Usage{}).FreePercent() != 100 {
		t.Errorf("an unknown size is not full")
	}
	if got := (Usage{Free: 12 << 20, Total: 512 << 20}).String(); got != "12 MiB free of 512 MiB (2.3%)" {
		t.Errorf("String: %q", got)
	}
}

type recorded struct {
	mu     sync.Mutex
	events []string
}

func (r *recorded) Event(ref corev1.ObjectReference, eventType, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ref.Kind+"/"+ref.Name+" "+eventType+" "+reason+": "+message)
}

// Under pressure the node drops rotated logs and truncates big ones with a
// marker, says so in events and in Pressure, and recovers by itself.
func TestMonitor(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "pods", "default_web-n1_u1", "app", "0.log")
	small := filepath.Join(dir, "pods", "default_db-n1_u2", "db", "0.log")
	for _, p := range []string{big, small} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(big, []byte(strings.Repeat("2026-01-01T00:00:00Z stdout F x\n", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big+".20260101-000000", []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(small, []byte("2026-01-01T00:00:00Z stdout F small\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	free := 50.0
	rec := &recorded{}
	m := &Monitor{Dir: dir, NodeName: "n1", Recorder: rec, LogCap: 4096,
		Statfs: func(string) (Usage, error) { return usage(free), nil },
		Now:    func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }}
	cs := []logs.Container{{ID: "c1", Path: big}, {ID: "c2", Path: small}, {ID: "c3", Path: filepath.Join(dir, "gone.log")}}

	m.Check(cs)
	if p, _ := m.Pressure(); p || len(rec.events) != 0 {
		t.Fatalf("no pressure at 50%% free: %v %v", p, rec.events)
	}
	free = 2
	m.Check(cs)
	p, msg := m.Pressure()
	if !p || !strings.Contains(msg, "the disk holding "+dir+" is nearly full (2048 KiB free of 100 MiB (2.0%))") {
		t.Fatalf("pressure at 2%% free: %v %q", p, msg)
	}
	b, _ := os.ReadFile(big)
	if !strings.Contains(string(b), "stderr F ballast: log truncated at 2026-01-02T03:04:05Z: the disk holding "+dir+" is nearly full") || len(b) > 4096 {
		t.Errorf("the big log after truncation: %q", b)
	}
	if r, _ := logs.RotatedFiles(big); len(r) != 0 {
		t.Errorf("rotated logs kept: %v", r)
	}
	if b, _ := os.ReadFile(small); !strings.Contains(string(b), "small") {
		t.Errorf("a small log was truncated: %q", b)
	}
	if len(rec.events) != 2 || !strings.HasPrefix(rec.events[0], "Node/n1 Warning NodeHasDiskPressure: ") ||
		!strings.HasPrefix(rec.events[1], "Node/n1 Warning ContainerLogsTruncated: ") || !strings.Contains(rec.events[1], "1 container logs truncated") {
		t.Errorf("events: %q", rec.events)
	}
	// Still under pressure, nothing more to free: no more events.
	free = 12
	m.Check(cs)
	if p, _ := m.Pressure(); !p || len(rec.events) != 2 {
		t.Errorf("between the thresholds: %v %q", p, rec.events)
	}
	free = 40
	m.Check(cs)
	if p, _ := m.Pressure(); p || len(rec.events) != 3 || !strings.HasPrefix(rec.events[2], "Node/n1 Normal NodeHasNoDiskPressure: ") {
		t.Errorf("recovered: %v %q", p, rec.events)
	}
	// A statfs error changes nothing.
	m.Statfs = func(string) (Usage, error) { return Usage{}, errors.New("boom") }
	m.Check(cs)
	if p, _ := m.Pressure(); p {
		t.Errorf("an unreadable disk is under pressure")
	}
}

type countingStore struct {
	storage.Store
	writes, progress int
}

func (c *countingStore) RequestProgress(context.Context) error {
	c.progress++
	return nil
}

func (c *countingStore) Create(context.Context, string, []byte, time.Duration) (int64, error) {
	c.writes++
	return 1, nil
}

func (c *countingStore) Update(context.Context, string, int64, storage.UpdateFunc) (storage.Object, error) {
	c.writes++
	return storage.Object{}, nil
}

// The guard passes progress requests on: without them the API server's
// watch cache of a kind nobody writes cannot serve a list at a revision
// another kind's write made (a 504 after 3 s).
func TestGuardPassesProgressRequests(t *testing.T) {
	inner := &countingStore{}
	pr, ok := Guard(inner, "/d", nil).(storage.ProgressRequester)
	if !ok {
		t.Fatal("the guard hides the store's RequestProgress")
	}
	if err := pr.RequestProgress(context.Background()); err != nil || inner.progress != 1 {
		t.Errorf("RequestProgress: %v, passed on %d times, want once", err, inner.progress)
	}
}

// The server's guard refuses writes that add data while the disk is
// nearly full, never the nodes' heartbeats, and accepts them again once
// there is space.
func TestGuard(t *testing.T) {
	inner := &countingStore{}
	free := 50.0
	now := time.Unix(1000, 0)
	g := Guard(inner, "/var/lib/ballast/etcd", nil).(*guard)
	g.statfs = func(string) (Usage, error) { return usage(free), nil }
	g.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := g.Create(ctx, "/events/default/e1", nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	free = 1
	now = now.Add(time.Second)
	for _, key := range []string{"/events/default/e2", "/pods/default/web-n1", "/namespaces/x"} {
		_, err := g.Create(ctx, key, nil, 0)
		if !errors.Is(err, storage.ErrInsufficientStorage) || !strings.Contains(err.Error(), "the disk holding the API server's storage (/var/lib/ballast/etcd) is nearly full") {
			t.Errorf("create %s on a full disk: %v", key, err)
		}
		if _, err := g.Update(ctx, key, 0, nil); !errors.Is(err, storage.ErrInsufficientStorage) {
			t.Errorf("update %s on a full disk: %v", key, err)
		}
	}
	for _, key := range []string{"/nodes/n1", "/leases/kube-node-lease/n1"} {
		if _, err := g.Update(ctx, key, 0, nil); err != nil {
			t.Errorf("the heartbeat %s refused: %v", key, err)
		}
	}
	free = 6 // above Enter, below Leave: still refused
	now = now.Add(time.Second)
	if _, err := g.Create(ctx, "/events/default/e3", nil, 0); !errors.Is(err, storage.ErrInsufficientStorage) {
		t.Errorf("between the thresholds: %v", err)
	}
	free = 9
	if _, err := g.Create(ctx, "/events/default/e3", nil, 0); !errors.Is(err, storage.ErrInsufficientStorage) {
		t.Errorf("looked at the disk again within a second: %v", err)
	}
	now = now.Add(time.Second)
	if _, err := g.Create(ctx, "/events/default/e3", nil, 0); err != nil {
		t.Errorf("with space again: %v", err)
	}
	if inner.writes != 4 {
		t.Errorf("%d writes reached the store, want 4", inner.writes)
	}
}
