// Package integration holds tests of one internal package against real
// services that need root: here, importing image tarballs into a real
// containerd (the e2e harness's). Tests that need a package's internals
// stay beside it behind the integration build tag; hack/test.sh runs both.
package integration_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/testutil"
	"github.com/ballast-dev/ballast/test/e2e/harness"
)

func imageStatus(t *testing.T, env *harness.Env, ref string) *runtimeapi.Image {
	t.Helper()
	resp, err := env.Images().ImageStatus(context.Background(), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetImage()
}

func gzipFile(t *testing.T, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestImportRunsInCRI imports the hello tarball with ctr, checks that CRI
// sees it and that a container created from it serves.
func TestImportRunsInCRI(t *testing.T) {
	env := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tarball := env.HelloTarball(t)
	im := images.Importer{Socket: env.Socket, Snapshotter: env.Containerd.Snapshotter()}
	if err := im.Import(ctx, tarball); err != nil {
		t.Fatal(err)
	}
	img := imageStatus(t, env, harness.HelloTarballRef)
	if img == nil {
		t.Fatalf("CRI does not see %s after import", harness.HelloTarballRef)
	}

	rt := env.Runtime()
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "imp", Namespace: "default", Uid: "imp-1"},
		LogDirectory: filepath.Join(env.LogDir, "imp"),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		t.Fatal(err)
	}
	c, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sb.PodSandboxId, SandboxConfig: sbCfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "hello"},
			Image:    &runtimeapi.ImageSpec{Image: harness.HelloTarballRef},
			Envs:     []*runtimeapi.KeyValue{{Key: "POD_NAME", Value: []byte("imported")}},
			LogPath:  "hello.log",
		},
	})
	if err != nil {
		t.Fatalf("CreateContainer from imported image: %v", err)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.PodSandboxId})
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://%s:%d/", st.GetStatus().GetNetwork().GetIp(), harness.HelloPort)
	var body []byte
	testutil.Eventually(t, 20*time.Second, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return err
	})
	if string(body) != "hello from imported\n" {
		t.Errorf("GET %s = %q", url, body)
	}

	// A gzip-compressed tarball imports too.
	if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Images().RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: harness.HelloTarballRef}}); err != nil {
		t.Fatal(err)
	}
	if imageStatus(t, env, harness.HelloTarballRef) != nil {
		t.Fatal("image still there after RemoveImage")
	}
	gz := filepath.Join(t.TempDir(), "hello.tar.gz")
	gzipFile(t, tarball, gz)
	if err := im.Import(ctx, gz); err != nil {
		t.Fatal(err)
	}
	if imageStatus(t, env, harness.HelloTarballRef) == nil {
		t.Fatal("CRI does not see the image imported from .tar.gz")
	}

	// A broken tarball fails with the file named.
	bad := filepath.Join(t.TempDir(), "bad.tar")
	os.WriteFile(bad, []byte("not a tarball"), 0o644)
	if err := im.Import(ctx, bad); err == nil {
		t.Error("importing junk succeeded")
	} else {
		t.Logf("junk: %v", err)
	}
}

// TestWatchImportsIntoContainerd drops a tarball into a watched directory.
func TestWatchImportsIntoContainerd(t *testing.T) {
	env := harness.Start(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	im := images.Importer{Socket: env.Socket, Snapshotter: env.Containerd.Snapshotter()}
	done := make(chan string, 4)
	// The watcher scans the directory once it watches it: the tarball is
	// imported whether it arrives before or after.
	go images.Watch(ctx, dir, im.Import, func(p string) { done <- p }, nil)
	src := env.HelloTarball(t)
	dst := filepath.Join(dir, "hello.tar")
	if err := os.Rename(src, dst); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-done:
		if p != dst {
			t.Fatalf("imported %s", p)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("tarball not imported")
	}
	if imageStatus(t, env, harness.HelloTarballRef) == nil {
		t.Fatal("CRI does not see the watched tarball's image")
	}
}
