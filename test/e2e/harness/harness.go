// Package harness gives end-to-end tests a real, private containerd: its
// own root, state, socket and CNI bridge under a temp dir (started through
// internal/containerd), an in-process OCI registry on 127.0.0.1 set as a
// mirror, the hello test image pushed to it, and the pause image imported
// as the sandbox image. Everything is removed when the test ends.
//
// It needs root and containerd, runc and the CNI plugins
// (apt-get install -y containerd runc containernetworking-plugins). Without
// them a test is skipped, or fails when CI=true.
package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/images/hello/toolbox"
	"github.com/ballast-dev/ballast/internal/containerd"
	"github.com/ballast-dev/ballast/internal/imagebuild"
	"github.com/ballast-dev/ballast/internal/images"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// SandboxImage is the pause image the harness imports and configures.
const SandboxImage = containerd.DefaultSandboxImage

// HelloTarballRef is the name of the image in HelloTarball's tarball.
const HelloTarballRef = "ballast.local/hello:v1"

// HelloPort is the port the hello image listens on by default.
const HelloPort = 8080

// Env is one private containerd and registry for a test.
type Env struct {
	Dir          string // everything lives here; removed at the end
	Endpoint     string // CRI endpoint, unix:///...
	Socket       string // containerd socket path
	RegistryHost string // 127.0.0.1:PORT of the in-process registry
	BridgeName   string // the CNI bridge device, unique per Env
	Subnet       string // the pod subnet, a random 10.2xx.N.0/24
	LogDir       string // a directory for pod logs (Dir/logs)
	Containerd   *containerd.Process

	cfg      containerd.Config
	registry *httptest.Server
	connMu   sync.Mutex
	conn     *grpc.ClientConn
	log      *slog.Logger
}

var (
	buildOnce sync.Once
	buildErr  error
	helloBin  []byte
	pauseBin  []byte
)

// builtBinaries builds images/hello and images/pause once per test binary.
func builtBinaries() (hello, pause []byte, err error) {
	buildOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		tmp, err := os.MkdirTemp("", "ballast-bin-")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(tmp)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, prog := range []string{"hello", "pause"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = imagebuild.BuildProgram(ctx, filepath.Join(root, "images", prog), filepath.Join(tmp, prog))
			}()
		}
		wg.Wait()
		for _, e := range errs {
			if e != nil {
				buildErr = e
				return
			}
		}
		helloBin, buildErr = os.ReadFile(filepath.Join(tmp, "hello"))
		if buildErr == nil {
			pauseBin, buildErr = os.ReadFile(filepath.Join(tmp, "pause"))
		}
	})
	return helloBin, pauseBin, buildErr
}

// programImage makes an image from a built binary named prog. The hello
// image also has its toolbox commands (/bin/sh, /bin/tar, ...).
func programImage(prog string, bin []byte, entrypoint, env []string) (v1.Image, error) {
	tmp, err := os.MkdirTemp("", "ballast-img-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	p := filepath.Join(tmp, prog)
	if err := os.WriteFile(p, bin, 0o755); err != nil {
		return nil, err
	}
	var opts []imagebuild.Option
	if prog == "hello" {
		opts = append(opts, imagebuild.Links(toolbox.Commands...))
	}
	return imagebuild.Image(p, entrypoint, env, opts...)
}

var (
	ballastOnce sync.Once
	ballastPath string
	ballastErr  error
)

// BallastBinary builds cmd/ballast once per test binary and returns its path.
func BallastBinary(t testing.TB) string {
	t.Helper()
	ballastOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			ballastErr = err
			return
		}
		dir, err := os.MkdirTemp("", "ballast-bin")
		if err != nil {
			ballastErr = err
			return
		}
		ballastPath = filepath.Join(dir, "ballast")
		cmd := exec.Command("go", "build", "-o", ballastPath, "./cmd/ballast")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			ballastErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if ballastErr != nil {
		t.Fatal(ballastErr)
	}
	return ballastPath
}

// RepoRoot finds the module root (the directory with Ballast's go.mod),
// walking up from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/ballast-dev/ballast\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("cannot find the ballast module root above the working directory")
		}
		dir = parent
	}
}

// Requirements returns why real-container tests cannot run here, or "".
func Requirements() string {
	if os.Geteuid() != 0 {
		return "needs root (runs a real containerd)"
	}
	for _, b := range []string{"containerd", "ctr", "runc", "ip"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Sprintf("needs %s on PATH: apt-get install -y containerd runc containernetworking-plugins iproute2", b)
		}
	}
	ok := false
	for _, d := range containerd.DefaultCNIBinDirs {
		if _, err := os.Stat(filepath.Join(d, "bridge")); err == nil {
			ok = true
		}
	}
	if !ok {
		return "needs the CNI plugins: apt-get install -y containernetworking-plugins"
	}
	return ""
}

// Require skips t (or fails it under CI) unless real containers can run.
func Require(t testing.TB) {
	t.Helper()
	testutil.Need(t, Requirements())
}

func randomSubnet() (string, error) {
	addrs, _ := net.InterfaceAddrs()
	for range 100 {
		cidr := fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256))
		_, sn, _ := net.ParseCIDR(cidr)
		clash := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (sn.Contains(ipn.IP) || ipn.Contains(sn.IP)) {
				clash = true
			}
		}
		if !clash {
			return cidr, nil
		}
	}
	return "", fmt.Errorf("no free 10.2xx.N.0/24 subnet")
}

// Start starts a private containerd and registry for t, removed by
// t.Cleanup.
func Start(t testing.TB) *Env {
	t.Helper()
	Require(t)
	hello, pause, err := builtBinaries()
	if err != nil {
		t.Fatalf("e2e: building test images: %v", err)
	}

	// A short dir: unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("/tmp", "bt-")
	if err != nil {
		t.Fatal(err)
	}
	subnet, err := randomSubnet()
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{
		Dir:        dir,
		Socket:     filepath.Join(dir, "c.sock"),
		BridgeName: fmt.Sprintf("bt%08x", rand.Uint32()),
		Subnet:     subnet,
		LogDir:     filepath.Join(dir, "logs"),
		log:        slogFor(t),
	}
	e.Endpoint = "unix://" + e.Socket
	t.Cleanup(func() { e.cleanup(t) })
	if err := os.MkdirAll(e.LogDir, 0o755); err != nil {
		t.Fatal(err)
	}

	e.registry = httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	e.RegistryHost = strings.TrimPrefix(e.registry.URL, "http://")

	e.cfg = containerd.Config{
		Dir:             filepath.Join(dir, "containerd"),
		Socket:          e.Socket,
		SandboxImage:    SandboxImage,
		BridgeName:      e.BridgeName,
		Subnet:          e.Subnet,
		RegistryMirrors: map[string]string{e.RegistryHost: "http://" + e.RegistryHost},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e.Containerd, err = containerd.Start(ctx, e.cfg, e.log)
	if err != nil {
		t.Fatalf("e2e: starting containerd: %v", err)
	}

	// The sandbox image, imported offline.
	pauseImg, err := programImage("pause", pause, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pauseTar := filepath.Join(dir, "pause.tar")
	if err := imagebuild.WriteTarball(pauseImg, SandboxImage, pauseTar); err != nil {
		t.Fatal(err)
	}
	e.ImportTarball(t, pauseTar)
	os.Remove(pauseTar)

	// The hello image, in the registry.
	helloImg, err := programImage("hello", hello, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.push(t, "hello:v1", helloImg)
	return e
}

type testWriter struct{ t testing.TB }

func slogFor(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (e *Env) push(t testing.TB, repoTag string, img v1.Image) string {
	t.Helper()
	ref := e.RegistryHost + "/" + repoTag
	repo, tag, ok := strings.Cut(repoTag, ":")
	if !ok {
		tag = "latest"
	}
	if err := pushImage(e.RegistryHost, repo, tag, img); err != nil {
		t.Fatalf("e2e: pushing %s: %v", ref, err)
	}
	return ref
}

// HelloImage is the hello image in the registry: RegistryHost+"/hello:v1".
// It is not pulled yet (PullImage through CRI pulls it via the mirror).
func (e *Env) HelloImage() string { return e.RegistryHost + "/hello:v1" }

// PushImage pushes a variant of the hello image with another entrypoint
// and extra env (both may be nil) as RegistryHost+"/"+name (":v1" added if
// name has no tag) and returns its reference. The binary is at /hello.
func (e *Env) PushImage(t testing.TB, name string, entrypoint []string, env []string) string {
	t.Helper()
	hello, _, err := builtBinaries()
	if err != nil {
		t.Fatal(err)
	}
	img, err := programImage("hello", hello, entrypoint, env)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(name, ":") {
		name += ":v1"
	}
	return e.push(t, name, img)
}

// HelloTarball writes the hello image, named HelloTarballRef, as a
// docker-archive tarball under Dir and returns its path (for images-dir
// tests: copy or rename it into the directory).
func (e *Env) HelloTarball(t testing.TB) string {
	t.Helper()
	hello, _, err := builtBinaries()
	if err != nil {
		t.Fatal(err)
	}
	img, err := programImage("hello", hello, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(e.Dir, "tarballs")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d, fmt.Sprintf("hello-%d.tar", time.Now().UnixNano()))
	if err := imagebuild.WriteTarball(img, HelloTarballRef, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// ImportTarball imports an image tarball into the containerd (namespace
// k8s.io, the CRI snapshotter).
func (e *Env) ImportTarball(t testing.TB, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	im := images.Importer{Socket: e.Socket, Snapshotter: e.Containerd.Snapshotter()}
	if err := im.Import(ctx, path); err != nil {
		t.Fatalf("e2e: %v", err)
	}
}

// Conn is a gRPC connection to the containerd socket (it reconnects by
// itself after RestartContainerd).
func (e *Env) Conn() *grpc.ClientConn {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	if e.conn == nil {
		c, err := containerd.Dial(e.Socket)
		if err != nil {
			panic(err) // only fails on invalid options
		}
		e.conn = c
	}
	return e.conn
}

// Runtime is a CRI runtime service client.
func (e *Env) Runtime() runtimeapi.RuntimeServiceClient {
	return runtimeapi.NewRuntimeServiceClient(e.Conn())
}

// Images is a CRI image service client.
func (e *Env) Images() runtimeapi.ImageServiceClient {
	return runtimeapi.NewImageServiceClient(e.Conn())
}

// RestartContainerd stops containerd by PID and starts it again on the
// same root (pods keep running, as when a node's containerd restarts).
func (e *Env) RestartContainerd(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.Containerd.Stop(ctx); err != nil {
		t.Fatalf("e2e: stopping containerd: %v", err)
	}
	p, err := containerd.Start(ctx, e.cfg, e.log)
	if err != nil {
		t.Fatalf("e2e: restarting containerd: %v", err)
	}
	e.Containerd = p
}

// cleanup removes every pod, stops containerd, and removes mounts, the
// bridge and Dir. Problems are reported with t.Errorf.
func (e *Env) cleanup(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if e.Containerd != nil {
		if !alive(e.Containerd.Pid()) {
			// A test stopped it: start it again to remove the pods properly.
			if p, err := containerd.Start(ctx, e.cfg, e.log); err == nil {
				e.Containerd = p
			} else {
				t.Errorf("e2e cleanup: restarting containerd to remove pods: %v", err)
			}
		}
		e.removePods(ctx, t)
	}
	e.connMu.Lock()
	if e.conn != nil {
		e.conn.Close()
		e.conn = nil
	}
	e.connMu.Unlock()
	if e.Containerd != nil {
		if err := e.Containerd.Stop(ctx); err != nil {
			t.Errorf("e2e cleanup: %v", err)
		}
	}
	e.killShims(t)
	if e.registry != nil {
		e.registry.Close()
	}
	if err := unmountUnder(e.Dir); err != nil {
		t.Errorf("e2e cleanup: %v", err)
	}
	if e.BridgeName != "" {
		if _, err := net.InterfaceByName(e.BridgeName); err == nil {
			if out, err := exec.Command("ip", "link", "del", e.BridgeName).CombinedOutput(); err != nil {
				t.Errorf("e2e cleanup: ip link del %s: %v: %s", e.BridgeName, err, out)
			}
		}
	}
	if e.Dir != "" {
		if err := os.RemoveAll(e.Dir); err != nil {
			t.Errorf("e2e cleanup: %v", err)
		}
	}
}

// RemoveAllPods stops and removes every pod sandbox in the runtime, as a
// node's reboot leaves an empty runtime.
func (e *Env) RemoveAllPods(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e.removePods(ctx, t)
}

func (e *Env) removePods(ctx context.Context, t testing.TB) {
	rt := e.Runtime()
	resp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Errorf("e2e cleanup: listing pods: %v", err)
		return
	}
	for _, s := range resp.Items {
		// Right after a containerd restart a call can meet a shim connection
		// being re-established ("ttrpc: closed"): try a few times.
		var err error
		for try := 0; try < 5; try++ {
			if try > 0 {
				time.Sleep(500 * time.Millisecond)
			}
			if _, err = rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
				continue
			}
			if _, err = rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err == nil {
				break
			}
		}
		if err != nil {
			t.Errorf("e2e cleanup: stopping and removing pod %s: %v", s.Id, err)
		}
	}
}

// killShims kills, by PID, any containerd shim still serving our socket
// (only left when removing a pod failed).
func (e *Env) killShims(t testing.TB) {
	// Shims of removed pods exit by themselves shortly after.
	for deadline := time.Now().Add(5 * time.Second); len(e.shims()) > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range e.shims() {
		t.Errorf("e2e cleanup: containerd shim pid %d left running; killing it", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// shims lists the containerd shims serving our socket.
func (e *Env) shims() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i, a := range args {
			if a == "-address" && i+1 < len(args) && args[i+1] == e.Socket && alive(pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// unmountUnder unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) error {
	if dir == "" {
		return nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	var firstErr error
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && firstErr == nil && err != syscall.EINVAL {
			firstErr = fmt.Errorf("unmounting %s: %w", mp, err)
		}
	}
	return firstErr
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// StopContainerd stops containerd by PID (pods keep running under their
// shims); StartContainerd starts it again on the same root.
func (e *Env) StopContainerd(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.Containerd.Stop(ctx); err != nil {
		t.Fatalf("e2e: stopping containerd: %v", err)
	}
}

// StartContainerd starts containerd again after StopContainerd.
func (e *Env) StartContainerd(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := containerd.Start(ctx, e.cfg, e.log)
	if err != nil {
		t.Fatalf("e2e: starting containerd: %v", err)
	}
	e.Containerd = p
}
