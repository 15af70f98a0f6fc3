package source

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

const testNode = "node1"

func podYAML(name, image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  containers:
  - name: c
    image: %s
`, name, image)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	t       *testing.T
	dir     string
	ch      chan Snapshot
	logs    *syncBuf
	last    Snapshot
	markers int
}

func start(t *testing.T, dir string, tweak func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, ch: make(chan Snapshot, 100), logs: &syncBuf{}}
	opts := Options{Dir: dir, NodeName: testNode, Log: slog.New(slog.NewTextHandler(h.logs, nil)), Settle: time.Second}
	if tweak != nil {
		tweak(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts, h.ch) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
		if t.Failed() {
			t.Logf("logs:\n%s", h.logs.String())
		}
	})
	h.last = h.next()
	return h
}

// next returns the next snapshot, failing after a generous timeout.
func (h *harness) next() Snapshot {
	h.t.Helper()
	select {
	case s := <-h.ch:
		h.last = s
		return s
	case <-time.After(10 * time.Second):
		h.t.Fatalf("no snapshot within 10s; last: %s", describe(h.last))
	}
	return Snapshot{}
}

// waitFor returns the first snapshot for which cond holds; every snapshot
// received before it is passed to each (if not nil).
func (h *harness) waitFor(what string, cond func(Snapshot) bool, each func(Snapshot)) Snapshot {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-h.ch:
			h.last = s
			if each != nil {
				each(s)
			}
			if cond(s) {
				return s
			}
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s; last snapshot: %s", what, describe(h.last))
		}
	}
}

// unchanged proves that the watcher changed nothing since h.last: it
// writes a marker manifest, waits for the snapshot that adds its pod,
// removes it and waits for the snapshot without it. Events are handled in
// order, so whatever earlier changes caused would show by then; every
// snapshot on the way must be h.last but for the marker.
func (h *harness) unchanged() {
	h.t.Helper()
	want := describe(withoutMarkers(h.last))
	h.markers++
	name := fmt.Sprintf("%s%d", markerPrefix, h.markers)
	path := filepath.Join(h.dir, name+".yaml")
	check := func(s Snapshot) {
		h.t.Helper()
		if got := describe(withoutMarkers(s)); got != want {
			h.t.Fatalf("the snapshot changed:\n got  %s\n want %s", got, want)
		}
	}
	write(h.t, path, podYAML(name, "marker"))
	h.waitFor("marker "+name, func(s Snapshot) bool { return image(s, name) == "marker" }, check)
	if err := os.Remove(path); err != nil {
		h.t.Fatal(err)
	}
	h.waitFor("marker "+name+" gone", func(s Snapshot) bool { return image(s, name) == "" }, check)
}

const markerPrefix = "zz-marker-"

func withoutMarkers(s Snapshot) Snapshot {
	out := s
	out.Pods = nil
	for _, d := range s.Pods {
		if !strings.HasPrefix(d.Pod.Name, markerPrefix) {
			out.Pods = append(out.Pods, d)
		}
	}
	return out
}

// rescan makes the watcher rescan (see Options.rescanTick) and returns
// once it has: the loop takes the second tick only after it has handled
// the first, and sent any snapshot that caused.
func (h *harness) rescan(tick chan time.Time) {
	h.t.Helper()
	for range 2 {
		select {
		case tick <- time.Now():
		case <-time.After(10 * time.Second):
			h.t.Fatal("the watcher does not take a rescan tick")
		}
	}
}

// noSnapshot fails if a snapshot is waiting.
func (h *harness) noSnapshot() {
	h.t.Helper()
	select {
	case s := <-h.ch:
		h.t.Fatalf("unexpected snapshot: %s", describe(s))
	default:
	}
}

func describe(s Snapshot) string {
	var parts []string
	for _, d := range s.Pods {
		parts = append(parts, fmt.Sprintf("pod %s/%s uid=%s image=%s file=%s", d.Pod.Namespace, d.Pod.Name, d.Pod.UID, d.Pod.Spec.Containers[0].Image, d.File))
	}
	for _, c := range s.Configs {
		parts = append(parts, fmt.Sprintf("%s file=%s keys=%v", c.Key(), c.File, c.Keys()))
	}
	for _, p := range s.Problems {
		parts = append(parts, fmt.Sprintf("problem %s: %v (pods %v)", p.File, p.Err, p.Pods))
	}
	for _, w := range s.Warnings {
		parts = append(parts, fmt.Sprintf("warning %s: %s", w.File, w.Message))
	}
	parts = append(parts, fmt.Sprintf("ignored %v", s.Ignored))
	return "{" + strings.Join(parts, "; ") + "}"
}

func image(s Snapshot, name string) string {
	for _, d := range s.Pods {
		if d.Pod.Name == name+"-"+testNode {
			return d.Pod.Spec.Containers[0].Image
		}
	}
	return ""
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCreateModifyRemove(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, nil)
	if len(h.last.Pods)+len(h.last.Problems) != 0 {
		t.Fatalf("first snapshot not empty: %s", describe(h.last))
	}
	began := time.Now()
	write(t, filepath.Join(dir, "web.yaml"), podYAML("web", "nginx:1"))
	s := h.next()
	t.Logf("file written -> snapshot in %v", time.Since(began))
	if len(s.Pods) != 1 || image(s, "web") != "nginx:1" || s.Pods[0].File != filepath.Join(dir, "web.yaml") {
		t.Fatalf("got %s", describe(s))
	}
	p := s.Pods[0].Pod
	if p.Spec.NodeName != testNode || p.Annotations[wellknown.AnnotationConfigSeen] == "" || p.Annotations[wellknown.AnnotationConfigSource] != wellknown.ConfigSourceFile {
		t.Errorf("identity: %+v", p.ObjectMeta)
	}
	if _, err := time.Parse(time.RFC3339Nano, p.Annotations[wellknown.AnnotationConfigSeen]); err != nil {
		t.Errorf("config.seen: %v", err)
	}

	write(t, filepath.Join(dir, "web.yaml"), podYAML("web", "nginx:2"))
	s = h.next()
	if image(s, "web") != "nginx:2" || s.Pods[0].Pod.UID == p.UID {
		t.Fatalf("modify: got %s", describe(s))
	}

	// Writing the same content again changes nothing.
	write(t, filepath.Join(dir, "web.yaml"), podYAML("web", "nginx:2"))
	h.unchanged()

	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	s = h.next()
	if len(s.Pods) != 0 || len(s.Problems) != 0 {
		t.Fatalf("remove: got %s", describe(s))
	}
}

func TestAtomicRename(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "web.yaml"), podYAML("web", "nginx:1"))
	h := start(t, dir, nil)
	if image(h.last, "web") != "nginx:1" {
		t.Fatalf("first snapshot: %s", describe(h.last))
	}
	tmp := filepath.Join(dir, ".web.yaml.tmp")
	write(t, tmp, podYAML("web", "nginx:2"))
	if err := os.Rename(tmp, filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("nginx:2", func(s Snapshot) bool { return image(s, "web") == "nginx:2" }, func(s Snapshot) {
		if len(s.Pods) != 1 || len(s.Problems) != 0 {
			t.Errorf("intermediate snapshot: %s", describe(s))
		}
	})
}

func TestEditorSaveKeepsPod(t *testing.T) {
	// vim without writebackup-in-place: rename the file away, write a new one.
	dir := t.TempDir()
	path := filepath.Join(dir, "web.yaml")
	write(t, path, podYAML("web", "nginx:1"))
	h := start(t, dir, nil)
	uid := h.last.Pods[0].Pod.UID
	if err := os.Rename(path, path+"~"); err != nil {
		t.Fatal(err)
	}
	write(t, path, podYAML("web", "nginx:1"))
	os.Remove(path + "~")
	// Same content back: nothing changes, the pod never goes away.
	h.unchanged()
	// Delete and recreate at once (another editor style).
	os.Remove(path)
	write(t, path, podYAML("web", "nginx:1"))
	h.unchanged()
	if len(h.last.Pods) != 1 || h.last.Pods[0].Pod.UID != uid {
		t.Fatalf("pod changed: %s", describe(h.last))
	}
}

func TestTwoStepWrite(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, func(o *Options) { o.Settle = 10 * time.Second })
	f, err := os.Create(filepath.Join(dir, "web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data := podYAML("web", "nginx:1")
	half := strings.Index(data, "spec:")
	if _, err := f.WriteString(data[:half] + "spec:\n  containers:\n  - name: c\n"); err != nil {
		t.Fatal(err)
	}
	// The writer pauses (for less than Settle): the half-written file is
	// neither a pod nor a problem.
	h.unchanged()
	if _, err := f.WriteString("    image: nginx:1\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	s := h.next()
	if len(s.Problems) != 0 || image(s, "web") != "nginx:1" {
		t.Fatalf("first snapshot after the write is not the complete pod: %s", describe(s))
	}
}

func TestSettleWithoutClose(t *testing.T) {
	// A file whose writer never closes it is read once no event came for Settle.
	dir := t.TempDir()
	h := start(t, dir, func(o *Options) { o.Settle = 200 * time.Millisecond })
	f, err := os.Create(filepath.Join(dir, "web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(podYAML("web", "nginx:1")); err != nil {
		t.Fatal(err)
	}
	s := h.next()
	if image(s, "web") != "nginx:1" {
		t.Fatalf("got %s", describe(s))
	}
}

func TestIgnoredFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"web.yaml.bak", "web.yaml~", "4913", "#web.yaml#", "README.md", "web.yaml.orig"} {
		write(t, filepath.Join(dir, n), podYAML("bak", "nginx:0"))
	}
	h := start(t, dir, nil)
	if len(h.last.Pods) != 0 || len(h.last.Ignored) != 6 {
		t.Fatalf("got %s", describe(h.last))
	}
	write(t, filepath.Join(dir, ".web.yaml.swp"), "binary junk")
	write(t, filepath.Join(dir, "web.yaml"), podYAML("web", "nginx:1"))
	s := h.waitFor("web", func(s Snapshot) bool { return len(s.Pods) > 0 }, nil)
	if len(s.Pods) != 1 || image(s, "web") != "nginx:1" || len(s.Problems) != 0 {
		t.Fatalf("got %s", describe(s))
	}
	if n := strings.Count(h.logs.String(), "ignoring file"); n != 6 {
		t.Errorf("want 6 'ignoring file' log lines, got %d", n)
	}
}

func TestSymlink(t *testing.T) {
	dir, store := t.TempDir(), t.TempDir()
	real1, real2 := filepath.Join(store, "web-v1.yaml"), filepath.Join(store, "web-v2.yaml")
	write(t, real1, podYAML("web", "nginx:1"))
	write(t, real2, podYAML("web", "nginx:2"))
	link := filepath.Join(dir, "web.yaml")
	if err := os.Symlink(real1, link); err != nil {
		t.Fatal(err)
	}
	h := start(t, dir, nil)
	if image(h.last, "web") != "nginx:1" || h.last.Pods[0].File != link {
		t.Fatalf("got %s", describe(h.last))
	}
	uid1 := h.last.Pods[0].Pod.UID

	// The target changes in place.
	write(t, real1, podYAML("web", "nginx:1.1"))
	s := h.next()
	if image(s, "web") != "nginx:1.1" {
		t.Fatalf("target edit: got %s", describe(s))
	}

	// The target is replaced by a rename in its directory.
	tmp := filepath.Join(store, "tmp")
	write(t, tmp, podYAML("web", "nginx:1.2"))
	if err := os.Rename(tmp, real1); err != nil {
		t.Fatal(err)
	}
	s = h.next()
	if image(s, "web") != "nginx:1.2" {
		t.Fatalf("target rename: got %s", describe(s))
	}

	// The link is retargeted atomically (ln -sfn).
	tmpLink := filepath.Join(dir, ".web.yaml.new")
	if err := os.Symlink(real2, tmpLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmpLink, link); err != nil {
		t.Fatal(err)
	}
	s = h.next()
	if image(s, "web") != "nginx:2" || s.Pods[0].Pod.UID == uid1 {
		t.Fatalf("retarget: got %s", describe(s))
	}

	// The link is replaced non-atomically (rm + ln -s) with the same target: no change.
	os.Remove(link)
	if err := os.Symlink(real2, link); err != nil {
		t.Fatal(err)
	}
	h.unchanged()

	// The target disappears: keep the pod, report the problem.
	os.Remove(real2)
	s = h.next()
	if image(s, "web") != "nginx:2" || len(s.Problems) != 1 || !strings.Contains(s.Problems[0].Err.Error(), "does not exist") {
		t.Fatalf("dangling: got %s", describe(s))
	}
}

func TestKubernetesAtomicWriterLayout(t *testing.T) {
	// dir/web.yaml -> store/..data/web.yaml, store/..data -> ..v1 (swapped by rename)
	dir, store := t.TempDir(), t.TempDir()
	for v, img := range map[string]string{"..v1": "nginx:1", "..v2": "nginx:2"} {
		os.Mkdir(filepath.Join(store, v), 0o755)
		write(t, filepath.Join(store, v, "web.yaml"), podYAML("web", img))
	}
	if err := os.Symlink("..v1", filepath.Join(store, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(store, "..data", "web.yaml"), filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	h := start(t, dir, func(o *Options) { o.Rescan = time.Hour })
	if image(h.last, "web") != "nginx:1" {
		t.Fatalf("got %s", describe(h.last))
	}
	if err := os.Symlink("..v2", filepath.Join(store, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(store, "..data_tmp"), filepath.Join(store, "..data")); err != nil {
		t.Fatal(err)
	}
	s := h.next()
	if image(s, "web") != "nginx:2" {
		t.Fatalf("got %s", describe(s))
	}
}

func TestInvalidKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.yaml")
	write(t, path, podYAML("web", "nginx:1"))
	tick := make(chan time.Time)
	h := start(t, dir, func(o *Options) { o.rescanTick = tick })
	uid := h.last.Pods[0].Pod.UID
	seen := h.last.Pods[0].Pod.Annotations[wellknown.AnnotationConfigSeen]

	write(t, path, strings.Replace(podYAML("web", "nginx:2"), "    image:", "    livenessProbe: {}\n    image:", 1))
	s := h.next()
	if len(s.Pods) != 1 || s.Pods[0].Pod.UID != uid || len(s.Problems) != 1 {
		t.Fatalf("got %s", describe(s))
	}
	pr := s.Problems[0]
	if pr.File != path || len(pr.Pods) != 1 || pr.Pods[0] != "web-"+testNode {
		t.Errorf("problem: %+v", pr)
	}
	if es := manifest.Errors(pr.Err); len(es) != 1 || es[0].Field != "spec.containers[0].livenessProbe" {
		t.Errorf("problem error: %v", pr.Err)
	}
	if got := s.Pods[0].Pod.Annotations[wellknown.AnnotationConfigSeen]; got != seen {
		t.Errorf("config.seen changed: %s -> %s", seen, got)
	}
	// Rescans do not send again nor log again.
	h.rescan(tick)
	h.rescan(tick)
	h.noSnapshot()
	if n := strings.Count(h.logs.String(), "manifest file problem"); n != 1 {
		t.Errorf("problem logged %d times, want once", n)
	}
	// Another error: logged again.
	write(t, path, "apiVersion: v1\nkind: Pod\nmetadata: [\n")
	s = h.next()
	if len(s.Pods) != 1 || s.Pods[0].Pod.UID != uid || len(s.Problems) != 1 || !strings.Contains(s.Problems[0].Err.Error(), "invalid YAML") {
		t.Fatalf("got %s", describe(s))
	}
	// Emptied file: still the last good pod.
	write(t, path, "")
	s = h.next()
	if len(s.Pods) != 1 || !strings.Contains(s.Problems[0].Err.Error(), "file holds no pod") {
		t.Fatalf("got %s", describe(s))
	}
	if n := strings.Count(h.logs.String(), "manifest file problem"); n != 3 {
		t.Errorf("problem logged %d times, want 3", n)
	}
	// Fixed.
	write(t, path, podYAML("web", "nginx:3"))
	s = h.next()
	if len(s.Problems) != 0 || image(s, "web") != "nginx:3" {
		t.Fatalf("got %s", describe(s))
	}
}

func TestNewInvalidFile(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, nil)
	write(t, filepath.Join(dir, "bad.yaml"), "apiVersion: v1\nkind: Pod\n")
	s := h.next()
	if len(s.Pods) != 0 || len(s.Problems) != 1 || len(s.Problems[0].Pods) != 0 {
		t.Fatalf("got %s", describe(s))
	}
}

func TestDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.yaml"), podYAML("web", "nginx:b"))
	h := start(t, dir, nil)
	write(t, filepath.Join(dir, "a.yaml"), podYAML("web", "nginx:a"))
	s := h.next()
	if len(s.Pods) != 1 || image(s, "web") != "nginx:a" || len(s.Problems) != 1 {
		t.Fatalf("got %s", describe(s))
	}
	pr := s.Problems[0]
	if pr.File != filepath.Join(dir, "b.yaml") || !strings.Contains(pr.Err.Error(), filepath.Join(dir, "a.yaml")) {
		t.Errorf("problem: %s", describe(s))
	}
	os.Remove(filepath.Join(dir, "a.yaml"))
	s = h.next()
	if len(s.Pods) != 1 || image(s, "web") != "nginx:b" || len(s.Problems) != 0 {
		t.Fatalf("got %s", describe(s))
	}
}

func TestMissingDirAppears(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "etc", "manifests")
	h := start(t, dir, func(o *Options) { o.Rescan = time.Hour })
	if len(h.last.Pods) != 0 {
		t.Fatalf("got %s", describe(h.last))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "web.yaml"), podYAML("web", "nginx:1"))
	h.waitFor("web", func(s Snapshot) bool { return image(s, "web") == "nginx:1" }, nil)

	// The directory goes away and comes back.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	h.waitFor("no pods", func(s Snapshot) bool { return len(s.Pods) == 0 }, nil)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "web.yaml"), podYAML("web", "nginx:2"))
	h.waitFor("web again", func(s Snapshot) bool { return image(s, "web") == "nginx:2" }, nil)
}

func TestSeenStable(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); clock = clock.Add(time.Second); return clock }
	write(t, filepath.Join(dir, "a.yaml"), podYAML("a", "nginx:1"))
	h := start(t, dir, func(o *Options) { o.Now = now })
	seenA := h.last.Pods[0].Pod.Annotations[wellknown.AnnotationConfigSeen]
	write(t, filepath.Join(dir, "b.yaml"), podYAML("b", "nginx:1"))
	s := h.next()
	if len(s.Pods) != 2 || s.Pods[0].Pod.Annotations[wellknown.AnnotationConfigSeen] != seenA {
		t.Fatalf("got %s", describe(s))
	}
	if s.Pods[1].Pod.Annotations[wellknown.AnnotationConfigSeen] == seenA {
		t.Errorf("b has a's seen time")
	}
}

func TestManyFilesAtOnce(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, nil)
	for i := range 20 {
		write(t, filepath.Join(dir, fmt.Sprintf("p%02d.yaml", i)), podYAML(fmt.Sprintf("p%02d", i), "nginx:1"))
	}
	h.waitFor("20 pods", func(s Snapshot) bool { return len(s.Pods) == 20 }, nil)
}
