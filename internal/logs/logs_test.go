package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil"
)

var t0 = time.Date(2016, 10, 6, 0, 17, 9, 669794202, time.UTC)

func rec(i int, stream, tag, content string) string {
	return fmt.Sprintf("%s %s %s %s\n", t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), stream, tag, content)
}

func writeFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "")); err != nil {
		t.Error(err)
	}
}

// syncBuf is a bytes.Buffer safe for a reader goroutine and the test.
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

func read(t *testing.T, path string, opts ReadOptions) (string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := Read(context.Background(), path, opts, &out, &errOut); err != nil {
		t.Fatalf("Read: %v", err)
	}
	return out.String(), errOut.String()
}

func TestPaths(t *testing.T) {
	if got := PodLogDir("/var/lib/ballast", "default", "web-node1", "abc"); got != "/var/lib/ballast/pods/default_web-node1_abc" {
		t.Errorf("PodLogDir = %q", got)
	}
	if got := ContainerLogPath("nginx", 3); got != "nginx/3.log" {
		t.Errorf("ContainerLogPath = %q", got)
	}
	if got := PreviousPath("/p", "nginx", 3); got != "/p/nginx/2.log" {
		t.Errorf("PreviousPath = %q", got)
	}
	if got := PreviousPath("/p", "nginx", 0); got != "" {
		t.Errorf("PreviousPath(0) = %q", got)
	}
}

func TestPruneAndRemove(t *testing.T) {
	data := t.TempDir()
	dir := PodLogDir(data, "ns", "p", "u")
	for _, n := range []string{"0.log", "1.log", "1.log.20200101-000000", "2.log", "3.log"} {
		writeFile(t, filepath.Join(dir, "c", n), "x\n")
	}
	if err := PruneContainerLogs(dir, "c", 3); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "c"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, ","); got != "2.log,3.log" {
		t.Errorf("after prune: %s", got)
	}
	if err := RemovePodLogs(data, "ns", "p", "u"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("pod dir still there: %v", err)
	}
}

func TestReadBasics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c", "0.log")
	writeFile(t, path,
		rec(0, "stdout", "F", "one"),
		rec(1, "stdout", "P", "tw"),
		rec(2, "stderr", "F", "err line"),
		rec(3, "stdout", "P", "o-"),
		rec(4, "stdout", "F", "joined"),
		rec(5, "stdout", "F", ""),
		"not a cri line\n",
		rec(6, "stdout", "F", "last with  spaces "),
	)
	all := int64(-1)
	out, errOut := read(t, path, ReadOptions{TailLines: all})
	if want := "one\ntwo-joined\n\nnot a cri line\nlast with  spaces \n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	if errOut != "err line\n" {
		t.Errorf("stderr = %q", errOut)
	}

	out, _ = read(t, path, ReadOptions{TailLines: all, Timestamps: true})
	first := strings.SplitN(out, "\n", 3)
	if first[0] != "2016-10-06T00:17:09.669794202Z one" {
		t.Errorf("timestamped line = %q", first[0])
	}
	// A joined line carries the time of its first part.
	if want := t0.Add(time.Second).Format(timestampFormat) + " two-joined"; first[1] != want {
		t.Errorf("joined timestamped line = %q, want %q", first[1], want)
	}

	since := t0.Add(3 * time.Second)
	out, errOut = read(t, path, ReadOptions{TailLines: all, SinceTime: &since})
	if want := "\nnot a cri line\nlast with  spaces \n"; out != want || errOut != "" {
		t.Errorf("since: stdout %q stderr %q", out, errOut)
	}

	// The limit counts what both streams got, in the order it was written.
	out, errOut = read(t, path, ReadOptions{TailLines: all, LimitBytes: 6})
	if out != "one\n" || errOut != "er" {
		t.Errorf("limit: stdout %q stderr %q", out, errOut)
	}
}

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	var lines []string
	for i := range 10 {
		lines = append(lines, rec(i, "stdout", "P", fmt.Sprintf("l%d-", i)), rec(i, "stdout", "F", "end"))
	}
	writeFile(t, path, lines...)
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, ""},
		{1, "l9-end\n"},
		{3, "l7-end\nl8-end\nl9-end\n"},
		{10, strings.Repeat("x", 0)},
		{100, ""},
	} {
		out, _ := read(t, path, ReadOptions{TailLines: tc.n})
		want := tc.want
		if tc.n >= 10 {
			for i := range 10 {
				want += fmt.Sprintf("l%d-end\n", i)
			}
		}
		if out != want {
			t.Errorf("tail %d = %q, want %q", tc.n, out, want)
		}
	}

	// A trailing partial line counts as a line.
	appendFile(t, path, rec(20, "stdout", "P", "unfinished"))
	out, _ := read(t, path, ReadOptions{TailLines: 2})
	if out != "l9-end\nunfinished" {
		t.Errorf("tail with trailing partial = %q", out)
	}
	out, _ = read(t, path, ReadOptions{TailLines: 1})
	if out != "unfinished" {
		t.Errorf("tail 1 with trailing partial = %q", out)
	}
}

func TestTailLargeRing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	var lines []string
	for i := range 5000 {
		lines = append(lines, rec(i, "stdout", "F", fmt.Sprint(i)))
	}
	writeFile(t, path, lines...)
	out, _ := read(t, path, ReadOptions{TailLines: 4500})
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != 4500 || got[0] != "500" || got[4499] != "4999" {
		t.Errorf("tail 4500: %d lines, first %q", len(got), got[0])
	}
}

func TestTailAcrossRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	writeFile(t, path+".20200101-000000", rec(0, "stdout", "F", "a"), rec(1, "stdout", "F", "b"))
	writeFile(t, path+".20200101-000100", rec(2, "stdout", "F", "c"), rec(3, "stdout", "F", "d"))
	writeFile(t, path+".20200101-000200.gz", "ignored\n")
	writeFile(t, path, rec(4, "stdout", "F", "e"))
	for n, want := range map[int64]string{
		1:  "e\n",
		2:  "d\ne\n",
		4:  "b\nc\nd\ne\n",
		10: "a\nb\nc\nd\ne\n",
		-1: "e\n", // all of the current file
	} {
		if out, _ := read(t, path, ReadOptions{TailLines: n}); out != want {
			t.Errorf("tail %d = %q, want %q", n, out, want)
		}
	}
}

func TestReadMissing(t *testing.T) {
	err := Read(context.Background(), filepath.Join(t.TempDir(), "nope.log"), ReadOptions{TailLines: -1}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() error {
		if !cond() {
			return fmt.Errorf("waiting for %s", what)
		}
		return nil
	})
}

// pollWatch is a Running func for a follower that reports each call: a
// follower asks whether the container runs after each pass over the file.
type pollWatch struct {
	running atomic.Bool
	calls   chan struct{}
}

func newPollWatch() *pollWatch {
	p := &pollWatch{calls: make(chan struct{}, 1)}
	p.running.Store(true)
	return p
}

func (p *pollWatch) Running() bool {
	select {
	case p.calls <- struct{}{}:
	default:
	}
	return p.running.Load()
}

// read waits until the follower has read everything written so far: after
// a call that came after now, it asks again, and the pass over the file
// in between began after what was written.
func (p *pollWatch) read(t *testing.T) {
	t.Helper()
	select {
	case <-p.calls: // may predate the write
	default:
	}
	for range 2 {
		select {
		case <-p.calls:
		case <-time.After(5 * time.Second):
			t.Fatal("the follower stopped polling")
		}
	}
}

func TestFollowUntilStopped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	writeFile(t, path, rec(0, "stdout", "F", "old1"), rec(1, "stdout", "F", "old2"))
	running := newPollWatch()
	var out syncBuf
	done := make(chan error, 1)
	go func() {
		done <- Read(context.Background(), path, ReadOptions{
			Follow: true, TailLines: 1, Running: running.Running, PollInterval: 10 * time.Millisecond,
		}, &out, &out)
	}()
	waitFor(t, "tail", func() bool { return out.String() == "old2\n" })
	appendFile(t, path, rec(2, "stdout", "P", "par"))
	running.read(t)
	// Half a record, then its rest.
	r := rec(3, "stdout", "F", "tial")
	appendFile(t, path, r[:10])
	running.read(t)
	appendFile(t, path, r[10:])
	waitFor(t, "joined line", func() bool { return out.String() == "old2\npartial\n" })
	// The container writes its last line and exits: follow returns after it.
	appendFile(t, path, rec(4, "stderr", "F", "bye"))
	running.running.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not stop when the container stopped")
	}
	if got := out.String(); got != "old2\npartial\nbye\n" {
		t.Errorf("out = %q", got)
	}
}

func TestFollowStopsOnContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	writeFile(t, path, rec(0, "stdout", "F", "x"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out syncBuf
	go func() {
		done <- Read(ctx, path, ReadOptions{Follow: true, TailLines: -1, PollInterval: 10 * time.Millisecond}, &out, &out)
	}()
	waitFor(t, "x", func() bool { return out.String() == "x\n" })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not stop on context")
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	writeFile(t, path, rec(0, "stdout", "F", "before"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuf
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, path, ReadOptions{Follow: true, TailLines: -1, PollInterval: 10 * time.Millisecond}, &out, &out)
	}()
	waitFor(t, "before", func() bool { return out.String() == "before\n" })

	// The runtime writes to its open file, the Rotator renames it, the runtime
	// writes once more to the old file and then opens a new one.
	rot := Rotator{MaxSize: 1, MaxFiles: 3}
	reopen := func(ctx context.Context, id string) error {
		appendFile(t, rotatedName(path, time.Now()), rec(1, "stdout", "F", "late in old file"))
		writeFile(t, path, rec(2, "stdout", "F", "in new file"))
		return nil
	}
	if err := rot.Check(ctx, []Container{{ID: "c1", Path: path}}, reopen); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new file", func() bool { return out.String() == "before\nlate in old file\nin new file\n" })
	appendFile(t, path, rec(3, "stdout", "F", "more"))
	waitFor(t, "more", func() bool { return strings.HasSuffix(out.String(), "in new file\nmore\n") })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestFollowLimitBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	writeFile(t, path, rec(0, "stdout", "F", "abc"))
	done := make(chan error, 1)
	var out syncBuf
	go func() {
		done <- Read(context.Background(), path, ReadOptions{Follow: true, TailLines: -1, LimitBytes: 6, PollInterval: 10 * time.Millisecond}, &out, &out)
	}()
	waitFor(t, "abc", func() bool { return out.String() == "abc\n" })
	appendFile(t, path, rec(1, "stdout", "F", "defgh"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not stop at the byte limit")
	}
	if out.String() != "abc\nde" {
		t.Errorf("out = %q", out.String())
	}
}

func TestRotator(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "a", "0.log")
	small := filepath.Join(dir, "b", "0.log")
	writeFile(t, big, strings.Repeat(rec(0, "stdout", "F", "xxxxxxxx"), 10))
	writeFile(t, small, rec(0, "stdout", "F", "x"))
	// Old rotated files beyond MaxFiles-1.
	for _, ts := range []string{"20200101-000000", "20200102-000000", "20200103-000000"} {
		writeFile(t, big+"."+ts, "old\n")
	}
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	r := Rotator{MaxSize: 100, MaxFiles: 3, Now: func() time.Time { return now }}
	var reopened []string
	reopen := func(ctx context.Context, id string) error {
		reopened = append(reopened, id)
		return nil
	}
	cs := []Container{{ID: "a", Path: big}, {ID: "b", Path: small}, {ID: "gone", Path: filepath.Join(dir, "c", "0.log")}}
	if err := r.Check(context.Background(), cs, reopen); err != nil {
		t.Fatal(err)
	}
	if strings.Join(reopened, ",") != "a" {
		t.Errorf("reopened %v", reopened)
	}
	rotated, _ := RotatedFiles(big)
	want := []string{big + ".20200103-000000", big + ".20240506-070809"}
	if fmt.Sprint(rotated) != fmt.Sprint(want) {
		t.Errorf("rotated = %v, want %v", rotated, want)
	}
	if _, err := os.Stat(big); !os.IsNotExist(err) {
		t.Errorf("current file should be gone until the runtime reopens it: %v", err)
	}

	// A second rotation in the same second gets the next second.
	writeFile(t, big, strings.Repeat("y", 200))
	if err := r.Check(context.Background(), cs, reopen); err != nil {
		t.Fatal(err)
	}
	rotated, _ = RotatedFiles(big)
	want = []string{big + ".20240506-070809", big + ".20240506-070810"}
	if fmt.Sprint(rotated) != fmt.Sprint(want) {
		t.Errorf("rotated = %v, want %v", rotated, want)
	}

	// A failing reopen puts the file back.
	writeFile(t, big, strings.Repeat("z", 200))
	err := r.Check(context.Background(), cs, func(context.Context, string) error { return errors.New("not running") })
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("err = %v", err)
	}
	if b, _ := os.ReadFile(big); len(b) != 200 || b[0] != 'z' {
		t.Errorf("file not restored after failed reopen")
	}
}
