package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/imagebuild"
	"github.com/ballast-dev/ballast/internal/testutil"
	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// TestPackageServiceUpgrade builds the .deb twice (versions 1.0.0 and
// 1.0.1, with hack/package.sh, which also checks the units with
// systemd-analyze verify), installs 1.0.0, runs its service, stops and
// starts it, upgrades to 1.0.1 while it runs and restarts it as the
// package's postinst would: the pod it runs keeps its container and its
// restart count all along. Then it purges the package.
//
// What it does to this machine: the package is installed with dpkg into a
// root of its own (dpkg --root, maintainer scripts run outside a chroot
// with DPKG_ROOT set, so they touch nothing of the machine), whose dpkg
// database lists the machine's own containerd, runc and CNI plugins, so
// dpkg checks the package's dependencies against what is really installed.
// PID 1 is not systemd here: the service is the unit's ExecStart, started
// by hand with the installed /etc/ballast/config.yaml (given with
// --config-file, as it lives in the package's root), and stopped as
// KillMode=process stops it (SIGTERM to the main process only). The config
// file points the agent at the test's own containerd, data dir and
// manifest dir. Nothing is written outside temp dirs: not /etc, /usr,
// /var/lib/ballast, nor any system service; the harness removes the pod,
// its containerd and its bridge.
func TestPackageServiceUpgrade(t *testing.T) {
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-query", "go", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Need(t, tool+" is not installed: the package test builds and installs a .deb (apt-get install -y dpkg-dev systemd)")
		}
	}
	env := harness.Start(t)
	repo, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	images := filepath.Join(work, "images")
	buildImageTarballs(t, repo, images)
	debA := buildPackage(t, repo, "1.0.0", images, work)
	debB := buildPackage(t, repo, "1.0.1", images, work)

	depends := mustRun(t, "dpkg-deb", "-f", debA, "Depends")
	for _, dep := range []string{"containerd", "runc", "containernetworking-plugins"} {
		if !strings.Contains(depends, dep) {
			t.Errorf("the package does not depend on %s: %s", dep, depends)
		}
	}
	root := dpkgRoot(t, work)
	dpkg := func(args ...string) string {
		return mustRun(t, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless"}, args...)...)
	}
	dpkg("-i", debA)

	// The units, as installed.
	unit := mustRead(t, filepath.Join(root, "lib/systemd/system/ballast-node.service"))
	for _, want := range []string{"KillMode=process", "Restart=always", "After=network-online.target", "After=containerd.service"} {
		if !strings.Contains(unit, want) {
			t.Errorf("ballast-node.service lacks %s", want)
		}
	}
	if up := mustRead(t, filepath.Join(root, "lib/systemd/system/ballast.service")); !strings.Contains(up, "ExecStart=/usr/bin/ballast up") || !strings.Contains(up, "KillMode=process") {
		t.Errorf("ballast.service:\n%s", up)
	}
	execStart := unitExecStart(t, unit)
	if execStart[0] != "/usr/bin/ballast" {
		t.Fatalf("ExecStart runs %s", execStart[0])
	}

	// The service's settings, in the installed configuration file.
	n := &node{t: t, env: env, bin: filepath.Join(root, "usr/bin/ballast"), name: "pkg-node",
		dataDir: filepath.Join(env.Dir, "ballast"), manifests: filepath.Join(env.Dir, "manifests")}
	if err := os.MkdirAll(n.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, "etc/ballast/config.yaml")
	installed := mustRead(t, conf)
	if !strings.Contains(installed, "#pod-manifest-path: /etc/kubernetes/manifests") {
		t.Errorf("the installed configuration is not the commented default:\n%s", installed)
	}
	settings := fmt.Sprintf("data-dir: %s\npod-manifest-path: %s\nnode-name: %s\ncontainer-runtime-endpoint: %s\nlog-level: debug\n",
		n.dataDir, n.manifests, n.name, env.Endpoint)
	if err := os.WriteFile(conf, []byte(installed+"\n# the test's node\n"+settings), 0o644); err != nil {
		t.Fatal(err)
	}
	svc := &service{t: t, n: n, argv: append([]string{n.bin}, append(execStart[1:], "--config-file", conf)...)}
	t.Cleanup(svc.stop)

	svc.start()
	if v := mustRun(t, n.bin, "version"); !strings.Contains(v, "ballast 1.0.0") {
		t.Errorf("installed version:\n%s", v)
	}
	n.write("web.yaml", manifest{Name: "web", Image: env.HelloImage()}.yaml())
	before := n.waitPod("web", "running", running)
	id := before.Status.ContainerStatuses[0].ContainerID

	// Stopping and starting the service stops no pod.
	svc.stop()
	assertContainerRunning(t, env, id)
	svc.start()
	n.waitPod("web", "running, the same container", sameContainer(id))

	// An upgrade under the running service, then the restart the
	// package's postinst does (systemctl try-restart).
	dpkg("-i", debB)
	if v := mustRun(t, n.bin, "version"); !strings.Contains(v, "ballast 1.0.1") {
		t.Errorf("upgraded version:\n%s", v)
	}
	if got := mustRead(t, conf); !strings.Contains(got, "# the test's node") {
		t.Errorf("the upgrade replaced the edited configuration file")
	}
	svc.stop()
	assertContainerRunning(t, env, id)
	svc.start()
	if !strings.Contains(n.logText(), "version=1.0.1") {
		t.Errorf("the restarted agent is not 1.0.1:\n%s", n.logText())
	}
	n.waitPod("web", "running, the same container after the upgrade", sameContainer(id))

	svc.stop()
	dpkg("-P", "ballast")
	for _, p := range []string{"usr/bin/ballast", "etc/ballast/config.yaml", "lib/systemd/system/ballast-node.service", "var/lib/ballast/images/ballast-pause.tar"} {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("/%s is left after the purge: %v", p, err)
		}
	}
	if out, err := exec.Command("dpkg", "--root="+root, "-s", "ballast").CombinedOutput(); err == nil {
		t.Errorf("still known to dpkg after the purge:\n%s", out)
	}
}

// service is the packaged unit's ExecStart, run by hand.
type service struct {
	t      *testing.T
	n      *node
	argv   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

func (s *service) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.argv[0], s.argv[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = lockedWriter{s.n}, lockedWriter{s.n}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { _ = c.Wait(); close(ch) }(s.cmd, s.exited)
	s.n.eventually("the service's agent answers on its socket", 30*time.Second, func() error {
		select {
		case <-s.exited:
			s.t.Fatalf("the service exited:\n%s", s.n.logText())
		default:
		}
		_, err := s.n.run("pods")
		return err
	})
}

// stop stops the service as systemd does with KillMode=process: SIGTERM to
// the main process only.
func (s *service) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.t.Errorf("the service did not stop on SIGTERM within 30s")
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

func sameContainer(id string) func(p *corev1.Pod) error {
	return func(p *corev1.Pod) error {
		if err := running(p); err != nil {
			return err
		}
		c := p.Status.ContainerStatuses[0]
		if c.ContainerID != id || c.RestartCount != 0 {
			return fmt.Errorf("container %s with %d restarts, want %s with none", c.ContainerID, c.RestartCount, id)
		}
		return nil
	}
}

// assertContainerRunning checks, in the runtime itself, that the container
// runs while no agent does.
func assertContainerRunning(t *testing.T, env *harness.Env, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := env.Runtime().ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: strings.TrimPrefix(id, "containerd://")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container %s is %s with the agent stopped", id, resp.Status.State)
	}
}

// unitExecStart is a unit's ExecStart command line.
func unitExecStart(t *testing.T, unit string) []string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ExecStart="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatalf("no ExecStart in:\n%s", unit)
	return nil
}

// buildImageTarballs writes pause.tar and hello.tar, as `make images` does.
func buildImageTarballs(t *testing.T, repo, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, prog := range []string{"pause", "hello"} {
		bin := filepath.Join(dir, "bin", prog)
		if err := imagebuild.BuildProgram(ctx, filepath.Join(repo, "images", prog), bin); err != nil {
			t.Fatal(err)
		}
		img, err := imagebuild.Image(bin, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := imagebuild.WriteTarball(img, "ballast.local/"+prog+":v1", filepath.Join(dir, prog+".tar")); err != nil {
			t.Fatal(err)
		}
	}
}

// buildPackage builds ballast at version (static, as `make build` does) and
// packages it with hack/package.sh.
func buildPackage(t *testing.T, repo, version, images, work string) string {
	t.Helper()
	bin := filepath.Join(work, version, "ballast")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags",
		"-s -w -X github.com/ballast-dev/ballast/internal/cli.Version="+version+" -X github.com/ballast-dev/ballast/internal/cli.Commit=e2e", "-o", bin, "./cmd/ballast")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := mustRun(t, filepath.Join(repo, "hack", "package.sh"), version, bin, images, filepath.Join(work, "debs"))
	deb := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	if !strings.HasSuffix(deb, "ballast_"+version+"_amd64.deb") {
		t.Fatalf("hack/package.sh printed %q", out)
	}
	return deb
}

// dpkgRoot makes an empty root for dpkg whose database holds the
// machine's own containerd, runc and CNI plugins (as installed).
func dpkgRoot(t *testing.T, work string) string {
	t.Helper()
	root := filepath.Join(work, "root")
	info := filepath.Join(root, "var/lib/dpkg/info")
	for _, d := range []string{info, filepath.Join(root, "var/lib/dpkg/updates")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	deps := []string{"containerd", "runc", "containernetworking-plugins"}
	status := mustRun(t, "dpkg-query", append([]string{"-W", "-f",
		"Package: ${Package}\nStatus: install ok installed\nVersion: ${Version}\nArchitecture: ${Architecture}\nMaintainer: ${Maintainer}\nDescription: ${binary:Summary}\n\n"}, deps...)...)
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range deps {
		if err := os.WriteFile(filepath.Join(info, d+".list"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
