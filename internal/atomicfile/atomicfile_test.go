package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, content := range []string{"one", "two, longer"} {
		if err := WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != content {
			t.Errorf("content %q, want %q", b, content)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 whatever the umask", fi.Mode().Perm())
	}
	if got := names(t, dir); strings.Join(got, ",") != "token" {
		t.Errorf("directory holds %v: a temporary file was left", got)
	}
}

func TestWriteWithFailureKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "image.tar")
	if err := WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteWith(p, 0o600, func(w io.Writer) error {
		io.WriteString(w, "half of the new")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the writer's", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("content %q after a failed write, want the old one", b)
	}
	if got := names(t, dir); strings.Join(got, ",") != "image.tar" {
		t.Errorf("directory holds %v: a temporary file was left", got)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func versions(t *testing.T, dir string) []string {
	var out []string
	for _, n := range names(t, dir) {
		if strings.HasPrefix(n, "..2") {
			out = append(out, n)
		}
	}
	return out
}

func TestWriteDirCreatesUpdatesAndSkipsUnchanged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	v1 := map[string]File{
		"labels":    {Data: []byte("a=1"), Mode: 0o644},
		"gone":      {Data: []byte("x"), Mode: 0o644},
		"meta/name": {Data: []byte("web"), Mode: 0o600},
	}
	changed, err := WriteDir(dir, v1, DirOptions{})
	if err != nil || !changed {
		t.Fatalf("first write: changed %v, %v", changed, err)
	}
	for name, f := range v1 {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(b, f.Data) {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}
	if l, _ := os.Readlink(filepath.Join(dir, "labels")); l != "..data/labels" {
		t.Errorf("labels is a link to %q, want ..data/labels", l)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "meta")); l != "..data/meta" {
		t.Errorf("meta is a link to %q, want ..data/meta", l)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "meta/name")); fi.Mode().Perm() != 0o600 {
		t.Errorf("meta/name mode %v", fi.Mode().Perm())
	}
	first := versions(t, dir)

	changed, err = WriteDir(dir, v1, DirOptions{})
	if err != nil || changed {
		t.Fatalf("same files again: changed %v, %v", changed, err)
	}
	if got := versions(t, dir); strings.Join(got, ",") != strings.Join(first, ",") {
		t.Errorf("an unchanged write made a new version: %v -> %v", first, got)
	}

	v2 := map[string]File{
		"labels":    {Data: []byte("a=2"), Mode: 0o644},
		"meta/name": {Data: []byte("web"), Mode: 0o600},
		"new":       {Data: []byte("n"), Mode: 0o644},
	}
	changed, err = WriteDir(dir, v2, DirOptions{})
	if err != nil || !changed {
		t.Fatalf("update: changed %v, %v", changed, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "labels")); string(b) != "a=2" {
		t.Errorf("labels after the update: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "gone")); !os.IsNotExist(err) {
		t.Errorf("a name dropped by the update is still there: %v", err)
	}
	current, _ := os.Readlink(filepath.Join(dir, "..data"))
	if got := versions(t, dir); len(got) != 2 || !slices.Contains(got, first[0]) || !slices.Contains(got, current) || current == first[0] {
		t.Errorf("versions after the update: %v (before: %v), want the new one %s and the one it replaced", got, first, current)
	}
	want := append([]string{"..data", "labels", "meta", "new"}, versions(t, dir)...)
	sort.Strings(want)
	if got := names(t, dir); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("directory holds %v, want %v", got, want)
	}
	// A mode change alone is a change.
	v2["new"] = File{Data: []byte("n"), Mode: 0o600}
	if changed, err := WriteDir(dir, v2, DirOptions{}); err != nil || !changed {
		t.Errorf("mode change: changed %v, %v", changed, err)
	}
	// A reader that resolved ..data just before that switch still opens the
	// version it resolved; the one before it is gone.
	if b, err := os.ReadFile(filepath.Join(dir, current, "labels")); err != nil || string(b) != "a=2" {
		t.Errorf("the replaced version's labels: %q, %v", b, err)
	}
	if got := versions(t, dir); len(got) != 2 || slices.Contains(got, first[0]) || !slices.Contains(got, current) {
		t.Errorf("versions after a second update: %v, want the new one and %s (not %s)", got, current, first[0])
	}
}

func TestWriteDirRefusesEscapingNames(t *testing.T) {
	for _, name := range []string{"", "/etc/passwd", "../x", "a/../../x", "..data", "..x", "a//b", "./a"} {
		if _, err := WriteDir(t.TempDir(), map[string]File{name: {}}, DirOptions{}); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
}

func TestWriteDirGroup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	gid := int64(os.Getgid())
	if _, err := WriteDir(dir, map[string]File{"f": {Data: []byte("x"), Mode: 0o600}}, DirOptions{Group: &gid}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "f"))
	if fi.Mode().Perm() != 0o640 || int64(fi.Sys().(*syscall.Stat_t).Gid) != gid {
		t.Errorf("file mode %v gid %d, want 0640 and group %d", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, gid)
	}
	if di, _ := os.Stat(dir); di.Mode()&os.ModeSetgid == 0 {
		t.Errorf("directory mode %v, want setgid", di.Mode())
	}
	if changed, err := WriteDir(dir, map[string]File{"f": {Data: []byte("x"), Mode: 0o600}}, DirOptions{Group: &gid}); err != nil || changed {
		t.Errorf("same files and group again: changed %v, %v", changed, err)
	}
}

// A reader looping while the directory is updated sees every file whole and
// the files of one version together, never a mix of two.
func TestWriteDirReadersNeverSeeAMix(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	set := func(gen int) map[string]File {
		big := bytes.Repeat([]byte{byte('a' + gen%26)}, 64<<10)
		return map[string]File{
			"a":     {Data: big, Mode: 0o644},
			"sub/b": {Data: []byte(fmt.Sprint(gen)), Mode: 0o644},
			"c":     {Data: []byte(fmt.Sprint(gen)), Mode: 0o644},
		}
	}
	if _, err := WriteDir(dir, set(0), DirOptions{}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			// A reader resolving ..data once sees one version.
			version, err := os.Readlink(filepath.Join(dir, "..data"))
			if err != nil {
				errs <- err
				return
			}
			b, errB := os.ReadFile(filepath.Join(dir, version, "sub/b"))
			c, errC := os.ReadFile(filepath.Join(dir, version, "c"))
			if errB == nil && errC == nil && !bytes.Equal(b, c) {
				errs <- fmt.Errorf("version %s holds b=%q and c=%q", version, b, c)
				return
			}
			// A reader going through the top-level links sees whole files.
			a, err := os.ReadFile(filepath.Join(dir, "a"))
			if err == nil && (len(a) != 64<<10 || bytes.Count(a, a[:1]) != len(a)) {
				errs <- fmt.Errorf("a is a mix or a part: %d bytes", len(a))
				return
			}
			reads.Add(1)
		}
	}()
	for gen := 1; gen <= 100 || reads.Load() < 100; gen++ {
		if _, err := WriteDir(dir, set(gen), DirOptions{Now: func() time.Time { return time.Unix(int64(gen), 0) }}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}
