package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/cri/fakecri"
	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/node"
	"github.com/ballast-dev/ballast/internal/testutil"
)

// TestRunStopsEverything runs a node on the fake runtime, waits until its
// local API answers with the pod of its one manifest, then ends it: Run must
// return only once every goroutine it started has stopped.
func TestRunStopsEverything(t *testing.T) {
	rt := fakecri.Start(t)
	rt.AddImage("registry.example/app:v1")
	dir := t.TempDir()
	manifests := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	pod := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: registry.example/app:v1\n"
	if err := os.WriteFile(filepath.Join(manifests, "web.yaml"), []byte(pod), 0o644); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- node.Run(ctx, node.Config{
			ManifestDir: manifests, NodeName: "n1", Endpoint: rt.Endpoint(), DataDir: filepath.Join(dir, "data"),
			NodeIP: "127.0.0.1", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}, nil)
	}()
	client := localapi.NewClient(localapi.SocketPath(filepath.Join(dir, "data")))
	testutil.Eventually(t, 20*time.Second, func() error {
		list, err := client.Pods(ctx)
		if err == nil && (len(list.Items) != 1 || list.Items[0].Status.Phase != "Running") {
			err = fmt.Errorf("the pod does not run: %v", list)
		}
		return err
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	// Every goroutine Run started is gone (some of the runtime's own and the
	// HTTP client's idle connections may linger for a moment).
	if err := testutil.Poll(10*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before+2 {
			return fmt.Errorf("%d goroutines left running (%d before)", n, before)
		}
		return nil
	}); err != nil {
		buf := make([]byte, 1<<20)
		t.Fatalf("%v:\n%s", err, buf[:runtime.Stack(buf, true)])
	}
}
