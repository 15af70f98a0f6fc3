package etcd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/storage"
)

// A backup of a running server's store, restored into a new directory,
// holds every object; revisions only go forward.
func TestBackupRestoreRoundTrip(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "etcd")
	s := open(t, Config{DataDir: dir})
	ctx := t.Context()
	for i := range 20 {
		if _, err := s.Create(ctx, fmt.Sprintf("/pods/ns/p%02d", i), []byte(fmt.Sprintf(`{"n":%d}`, i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	before, err := s.List(ctx, "/", storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !serving(dir) {
		t.Fatalf("the running store answers on no socket at %s", SocketPath(dir))
	}
	snap := filepath.Join(t.TempDir(), "backup.db")
	if _, err := Backup(ctx, Config{DataDir: dir, Log: testLog()}, snap); err != nil {
		t.Fatal(err)
	}

	restored := filepath.Join(shortTempDir(t), "etcd")
	if err := Restore(snap, restored, testLog()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(restored); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("restored dir: %v %v", fi, err)
	}
	if err := Restore(snap, restored, testLog()); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restoring over existing data: %v", err)
	}
	r := open(t, Config{DataDir: restored})
	after, err := r.List(ctx, "/", storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Objects) != len(before.Objects) {
		t.Fatalf("restored %d objects, backed up %d", len(after.Objects), len(before.Objects))
	}
	for i, o := range after.Objects {
		if o.Key != before.Objects[i].Key || string(o.Value) != string(before.Objects[i].Value) {
			t.Errorf("object %d: %s %s, want %s %s", i, o.Key, o.Value, before.Objects[i].Key, before.Objects[i].Value)
		}
	}
	if after.Revision < before.Revision+RestoreRevisionBump {
		t.Errorf("restored revision %d, want at least %d", after.Revision, before.Revision+RestoreRevisionBump)
	}
	// The new store takes writes.
	if _, err := r.Create(ctx, "/pods/ns/new", []byte(`{}`), 0); err != nil {
		t.Fatal(err)
	}
}

// With no server running on the data dir, Backup opens it itself.
func TestBackupOfAStoppedServer(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "etcd")
	ctx := t.Context()
	s, err := Open(ctx, Config{DataDir: dir, CompactInterval: -1, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "/nodes/n1", []byte(`{"n":1}`), 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	snap := filepath.Join(t.TempDir(), "b.db")
	if _, err := Backup(ctx, Config{DataDir: dir, Log: testLog()}, snap); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "etcd")
	if err := Restore(snap, restored, testLog()); err != nil {
		t.Fatal(err)
	}
	r := open(t, Config{DataDir: restored})
	if o, err := r.Get(ctx, "/nodes/n1"); err != nil || string(o.Value) != `{"n":1}` {
		t.Errorf("restored /nodes/n1: %s %v", o.Value, err)
	}
	if _, err := Backup(ctx, Config{DataDir: t.TempDir()}, snap+"2"); err == nil || !strings.Contains(err.Error(), "no etcd data") {
		t.Errorf("backup of an empty dir: %v", err)
	}
}

// Serve runs a member alone (the etcd static pod); a Store reaches it on
// its socket.
func TestServeOnSocket(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "etcd")
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, dir, testLog(), func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(time.Minute):
		t.Fatal("etcd did not serve within a minute")
	}
	s := open(t, Config{Endpoints: []string{SocketURL(dir)}})
	if _, err := s.Create(ctx, "/k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the socket's directory is not private: %v %v", fi, err)
	}
	s.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, strings.Repeat("x", maxSocketPath))
	if err := Serve(t.Context(), long, testLog(), nil); err == nil || !strings.Contains(err.Error(), "longer than a unix socket allows") {
		t.Errorf("too long a socket path: %v", err)
	}
}

// shortTempDir is a temp dir with a path short enough for a unix socket
// under it (t.TempDir's can be too long).
func shortTempDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "be")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
