package logs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A truncated log keeps a marker line, the writer (O_APPEND, as the
// runtime's) goes on after it, and readers see the marker as a line of the
// container's output.
func TestTruncateWithMarker(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	writeFile(t, path, rec(1, "stdout", "F", "one"), rec(2, "stdout", "F", "two"))
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if d, err := Truncate(path, 1<<20, "kept", now); d != 0 || err != nil {
		t.Fatalf("a small log truncated: %d %v", d, err)
	}
	d, err := Truncate(path, 10, "ballast: log truncated", now)
	if err != nil || d == 0 {
		t.Fatalf("Truncate: %d %v", d, err)
	}
	if _, err := w.WriteString(rec(3, "stdout", "F", "three")); err != nil {
		t.Fatal(err)
	}
	stdout, stderr := read(t, path, ReadOptions{TailLines: -1})
	if strings.TrimSpace(stderr) != "ballast: log truncated" || strings.TrimSpace(stdout) != "three" {
		t.Errorf("after truncation: stdout %q, stderr %q", stdout, stderr)
	}
	if d, err := Truncate(filepath.Join(dir, "gone.log"), 0, "m", now); d != 0 || err != nil {
		t.Errorf("a missing log: %d %v", d, err)
	}
}

func TestDropRotated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	writeFile(t, path, rec(1, "stdout", "F", "current"))
	for _, ts := range []string{"20260101-000000", "20260101-000001"} {
		writeFile(t, path+"."+ts, rec(1, "stdout", "F", "old"))
	}
	freed, err := DropRotated(path)
	if err != nil || freed == 0 {
		t.Fatalf("DropRotated: %d %v", freed, err)
	}
	if r, _ := RotatedFiles(path); len(r) != 0 {
		t.Errorf("left: %v", r)
	}
	var out bytes.Buffer
	if err := Read(context.Background(), path, ReadOptions{TailLines: -1}, &out, &out); err != nil || !strings.Contains(out.String(), "current") {
		t.Errorf("the current log: %q %v", out.String(), err)
	}
}
