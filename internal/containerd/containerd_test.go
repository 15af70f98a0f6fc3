package containerd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/containerd"
)

// fakeCNIBinDir is a CNI plugin directory with empty stand-ins for the
// plugins Ballast's network uses: WriteConfig only looks for them.
func fakeCNIBinDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestWriteConfig(t *testing.T) {
	dir := t.TempDir()
	cniBin := fakeCNIBinDir(t)
	yes := true
	path, err := containerd.WriteConfig(containerd.Config{
		Dir: dir, BridgeName: "bttest0", Subnet: "10.250.3.0/24", CNIBinDirs: []string{t.TempDir(), cniBin},
		RegistryMirrors:     map[string]string{"127.0.0.1:5000": "http://127.0.0.1:5000"},
		RestrictOOMScoreAdj: &yes, Snapshotter: "native",
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{
		"version = 2",
		fmt.Sprintf("root = %q", filepath.Join(dir, "root")),
		fmt.Sprintf("address = %q", filepath.Join(dir, "containerd.sock")),
		"restrict_oom_score_adj = true",
		`sandbox_image = "ballast.local/pause:v1"`,
		`snapshotter = "native"`,
		fmt.Sprintf("conf_dir = %q", filepath.Join(dir, "cni")),
		`[plugins."io.containerd.grpc.v1.cri".registry.mirrors."127.0.0.1:5000"]`,
		`endpoint = ["http://127.0.0.1:5000"]`,
		`"io.containerd.snapshotter.v1.btrfs"`,
		fmt.Sprintf("bin_dir = %q", cniBin),
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %s:\n%s", want, conf)
		}
	}
	cl, err := os.ReadFile(filepath.Join(dir, "cni", "10-bttest0.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Name    string
		Plugins []map[string]any
	}
	if err := json.Unmarshal(cl, &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.Name != "bttest0" || len(parsed.Plugins) != 2 || parsed.Plugins[0]["bridge"] != "bttest0" ||
		!strings.Contains(string(cl), "10.250.3.0/24") || parsed.Plugins[1]["type"] != "portmap" {
		t.Errorf("conflist:\n%s", cl)
	}
}

func TestNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := containerd.Start(context.Background(), containerd.Config{Dir: t.TempDir()}, nil)
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y containerd runc containernetworking-plugins") {
		t.Fatalf("err = %v", err)
	}
}
