package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/containerd"
	"github.com/ballast-dev/ballast/internal/imagebuild"
)

// Managed is the setting for a `ballast node` that starts its own containerd
// (no --container-runtime-endpoint): a data dir, a bridge and subnet of the
// test's own, and an images directory holding the pause and hello tarballs.
// Its cleanup adopts the containerd the agent started (through its pid file)
// and removes it, its pods, mounts and bridge, as Start's cleanup does.
type Managed struct {
	Dir        string // the agent's --data-dir
	ImagesDir  string
	BridgeName string
	Subnet     string
}

// ContainerdConfig is the config `ballast node` uses for its containerd
// with these flags.
func (m *Managed) ContainerdConfig() containerd.Config {
	return containerd.Config{Dir: filepath.Join(m.Dir, "containerd"), SandboxImage: SandboxImage, BridgeName: m.BridgeName, Subnet: m.Subnet}
}

// NewManaged prepares a Managed setting for t.
func NewManaged(t testing.TB) *Managed {
	t.Helper()
	Require(t)
	hello, pause, err := builtBinaries()
	if err != nil {
		t.Fatalf("e2e: building test images: %v", err)
	}
	dir, err := os.MkdirTemp("/tmp", "bm-")
	if err != nil {
		t.Fatal(err)
	}
	subnet, err := randomSubnet()
	if err != nil {
		t.Fatal(err)
	}
	m := &Managed{Dir: dir, ImagesDir: filepath.Join(dir, "images"), BridgeName: fmt.Sprintf("bm%08x", rand.Uint32()), Subnet: subnet}
	t.Cleanup(func() { m.cleanup(t) })
	if err := os.MkdirAll(m.ImagesDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, im := range []struct {
		prog string
		bin  []byte
		ref  string
	}{{"pause", pause, SandboxImage}, {"hello", hello, HelloTarballRef}} {
		img, err := programImage(im.prog, im.bin, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := imagebuild.WriteTarball(img, im.ref, filepath.Join(m.ImagesDir, im.prog+".tar")); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *Managed) cleanup(t testing.TB) {
	e := &Env{Dir: m.Dir, BridgeName: m.BridgeName, Subnet: m.Subnet, cfg: m.ContainerdConfig(), log: slogFor(t)}
	e.Socket = filepath.Join(m.Dir, "containerd", "containerd.sock")
	e.Endpoint = "unix://" + e.Socket
	if _, err := os.Stat(filepath.Join(m.Dir, "containerd", "containerd.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		p, err := containerd.Start(ctx, e.cfg, e.log)
		cancel()
		if err != nil {
			t.Errorf("e2e cleanup: adopting the agent's containerd: %v", err)
		} else {
			e.Containerd = p
		}
	}
	e.cleanup(t)
}
