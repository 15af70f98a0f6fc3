//go:build integration

package containerd_test

// These tests start a real containerd: they need root and containerd
// (hack/test.sh runs them with -tags integration).

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/containerd"
	"github.com/ballast-dev/ballast/internal/imagebuild"
	"github.com/ballast-dev/ballast/internal/images"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// testEnv is a Config under a short temp dir with its own bridge and subnet.
type testEnv struct {
	cfg    containerd.Config
	bridge string
	subnet string
}

func requireRoot(t *testing.T) {
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	} else if _, err := exec.LookPath("containerd"); err != nil {
		why = "needs containerd: apt-get install -y containerd runc containernetworking-plugins"
	}
	testutil.Need(t, why)
}

func newEnv(t *testing.T) *testEnv {
	requireRoot(t)
	dir, err := os.MkdirTemp("/tmp", "bct-")
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{
		bridge: fmt.Sprintf("bc%08x", rand.Uint32()),
		subnet: fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256)),
	}
	e.cfg = containerd.Config{Dir: dir, Socket: filepath.Join(dir, "c.sock"), BridgeName: e.bridge, Subnet: e.subnet}
	t.Cleanup(func() {
		// Stop whatever containerd runs on dir (by the pid file), then
		// remove mounts, the bridge and the dir.
		if b, err := os.ReadFile(filepath.Join(dir, "containerd.pid")); err == nil {
			var pid int
			fmt.Sscan(string(b), &pid)
			if pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		unmountUnder(t, dir)
		if _, err := net.InterfaceByName(e.bridge); err == nil {
			exec.Command("ip", "link", "del", e.bridge).Run()
		}
		os.RemoveAll(dir)
	})
	return e
}

func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 4 && strings.HasPrefix(fs[4], dir+"/") {
			mps = append(mps, fs[4])
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		t.Logf("unmounting leftover %s", mp)
		syscall.Unmount(mp, syscall.MNT_DETACH)
	}
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, nil))
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

func pauseTarball(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	bin := filepath.Join(dir, "pause")
	if err := imagebuild.BuildProgram(context.Background(), filepath.Join(root, "images", "pause"), bin); err != nil {
		t.Fatal(err)
	}
	img, err := imagebuild.Image(bin, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "pause.tar")
	if err := imagebuild.WriteTarball(img, containerd.DefaultSandboxImage, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func version(ctx context.Context, socket string) error {
	conn, err := containerd.Dial(socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{})
	if err == nil && v.RuntimeName != "containerd" {
		err = fmt.Errorf("runtime %q", v.RuntimeName)
	}
	return err
}

func TestStartSandboxStop(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := containerd.Start(ctx, e.cfg, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Adopted() || p.Pid() <= 0 {
		t.Fatalf("adopted=%v pid=%d", p.Adopted(), p.Pid())
	}
	if err := version(ctx, p.Socket()); err != nil {
		t.Fatal(err)
	}
	conf, _ := os.ReadFile(p.ConfigPath())
	if want := fmt.Sprintf("restrict_oom_score_adj = %t", containerd.LacksSysResource()); !strings.Contains(string(conf), want) {
		t.Errorf("config lacks %q", want)
	}

	im := images.Importer{Socket: p.Socket(), Snapshotter: p.Snapshotter()}
	if err := im.Import(ctx, pauseTarball(t)); err != nil {
		t.Fatal(err)
	}
	conn, err := containerd.Dial(p.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "t", Namespace: "default", Uid: "uid-1"},
		LogDirectory: filepath.Join(e.cfg.Dir, "logs"),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v\n%s", err, containerd.LogTail(p.LogPath(), 20))
	}
	st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.PodSandboxId})
	if err != nil {
		t.Fatal(err)
	}
	_, subnet, _ := net.ParseCIDR(e.subnet)
	if ip := net.ParseIP(st.GetStatus().GetNetwork().GetIp()); ip == nil || !subnet.Contains(ip) {
		t.Errorf("sandbox IP %q not in %s", st.GetStatus().GetNetwork().GetIp(), e.subnet)
	}
	if _, err := net.InterfaceByName(e.bridge); err != nil {
		t.Errorf("bridge %s: %v", e.bridge, err)
	}
	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
		t.Fatal(err)
	}

	if b, err := os.ReadFile(p.LogPath()); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "level=error") || strings.Contains(l, "level=warn") {
				t.Logf("containerd.log: %s", l)
			}
		}
	}
	pid := p.Pid()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("containerd pid %d still exists after Stop", pid)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.Dir, "containerd.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left: %v", err)
	}
}

func TestAdoptAndSupervise(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p1, err := containerd.Start(ctx, e.cfg, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	// A second Start (the next agent) adopts the running containerd.
	p2, err := containerd.Start(ctx, e.cfg, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !p2.Adopted() || p2.Pid() != p1.Pid() {
		t.Fatalf("second Start: adopted=%v pid=%d, want pid %d", p2.Adopted(), p2.Pid(), p1.Pid())
	}

	// Supervise restarts it after it dies.
	supCtx, supCancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p2.Supervise(supCtx) }()
	old := p2.Pid()
	syscall.Kill(old, syscall.SIGKILL)
	testutil.Eventually(t, 30*time.Second, func() error {
		if p2.Pid() == old {
			return fmt.Errorf("containerd not restarted (pid %d)\n%s", old, containerd.LogTail(p2.LogPath(), 20))
		}
		return version(ctx, p2.Socket())
	})
	if p2.Adopted() {
		t.Error("restarted process reported as adopted")
	}
	supCancel()
	<-done
	// Supervise returning leaves containerd running.
	if err := version(ctx, p2.Socket()); err != nil {
		t.Fatalf("after Supervise returned: %v", err)
	}
	// Stop is final: Supervise would not restart it.
	go func() { done <- p2.Supervise(ctx) }()
	newPid := p2.Pid()
	if err := p2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Supervise did not return after Stop")
	}
	if syscall.Kill(newPid, 0) == nil {
		t.Errorf("pid %d alive after Stop", newPid)
	}
}
