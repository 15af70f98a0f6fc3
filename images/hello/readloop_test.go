package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/atomicfile"
)

// The reader sees a directory written by atomicfile.WriteDir (the kubelet's
// ..data swap, as Ballast updates ConfigMap volumes) go from one version to
// the next, never a mix, and never fails to open a file; a set written file
// by file in place is torn, and the reader says so.
func TestReadLoop(t *testing.T) {
	dir := t.TempDir()
	write := func(v string) {
		if _, err := atomicfile.WriteDir(dir, map[string]atomicfile.File{"a": {Data: []byte(v), Mode: 0o644}, "b": {Data: []byte(v), Mode: 0o644}}, atomicfile.DirOptions{}); err != nil {
			t.Error(err)
		}
	}
	write("v0")
	done := make(chan string)
	go func() {
		rec := httptest.NewRecorder()
		readLoop(rec, httptest.NewRequest("GET", "/readloop?dir="+dir+"&files=a,b&until=v200&timeout=30s", nil))
		done <- rec.Body.String()
	}()
	for i := 1; i <= 200; i++ {
		write("v" + strconv.Itoa(i))
	}
	got := <-done
	// broken (a file by name not found) is not checked here: 200 versions
	// back to back can outrun a reader stalled between resolving "..data"
	// and opening a file (WriteDir keeps only the version it replaced);
	// test/e2e checks it across one update, where it must be 0.
	if !strings.Contains(got, " mixed=0 ") || !strings.Contains(got, "v200") {
		t.Errorf("readloop: %s", got)
	}

	// A set caught half-written (a changed in place, b not yet) is seen as
	// torn: the check above can fail.
	torn := t.TempDir()
	version := filepath.Join(torn, "v")
	os.MkdirAll(version, 0o755)
	os.Symlink("v", filepath.Join(torn, "..data"))
	for f, v := range map[string]string{"a": "x1", "b": "x2"} {
		os.WriteFile(filepath.Join(version, f), []byte(v), 0o644)
		os.Symlink(filepath.Join("..data", f), filepath.Join(torn, f))
	}
	rec := httptest.NewRecorder()
	readLoop(rec, httptest.NewRequest("GET", "/readloop?dir="+torn+"&files=a,b&until=x2&timeout=50ms", nil))
	if got := rec.Body.String(); strings.Contains(got, " mixed=0 ") || !strings.Contains(got, "seen=x1,x2") {
		t.Errorf("a torn set: %s", got)
	}
}
