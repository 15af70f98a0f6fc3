package containerd

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeCRIEnv, when set, makes the test binary a fake containerd: it serves
// CRI Version on the socket it names, until it is killed.
const fakeCRIEnv = "BALLAST_TEST_FAKE_CRI_SOCKET"

func TestMain(m *testing.M) {
	if sock := os.Getenv(fakeCRIEnv); sock != "" {
		serveFakeCRI(sock)
		return
	}
	os.Exit(m.Run())
}

type versionOnly struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

func (versionOnly) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "fake", RuntimeVersion: "0", RuntimeApiVersion: "v1"}, nil
}

func serveFakeCRI(sock string) {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		os.Exit(3)
	}
	s := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(s, versionOnly{})
	_ = s.Serve(ln)
	os.Exit(0)
}

// answerAfterBusy is a fake containerd that burns CPU, as one cleaning up
// a thousand dead shims does, until the file go exists, then answers CRI.
func answerAfterBusy(t *testing.T, dir string) (script, goFile string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	goFile = filepath.Join(dir, "go")
	return "while [ ! -e '" + goFile + "' ]; do :; done\n" +
		"export " + fakeCRIEnv + "='" + filepath.Join(dir, "containerd.sock") + "'\n" +
		"exec '" + exe + "' -test.run='^$'", goFile
}

// The scenario: a containerd that takes far longer than HungAfter
// to answer because it is working is waited for until it answers, and is
// neither killed nor restarted (issue 12, point 2).
func TestSlowContainerdAnswersInTheEnd(t *testing.T) {
	dir := t.TempDir()
	script, goFile := answerAfterBusy(t, dir)
	p, logs := fakeProcessIn(t, dir, script, time.Second)
	p.slowLogEvery = time.Second
	done := make(chan error, 1)
	go func() { done <- p.startProcess(context.Background()) }()
	pid := waitPidFile(t, p)
	// Reported at HungAfter, then every HungAfter: three reports, and an
	// idle containerd would have been killed long ago.
	logs.waitForCount(t, "containerd is busy but does not answer yet", 3)
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("startProcess: %v", err)
	}
	if !alive(pid) || p.Pid() != pid {
		t.Fatalf("the slow containerd (pid %d) was not kept (now pid %d)", pid, p.Pid())
	}
	if strings.Contains(logs.String(), "hung") {
		t.Errorf("a busy containerd was called hung:\n%s", logs.String())
	}
	logs.waitFor(t, "containerd ready")
}

// A containerd that keeps hanging is killed each time, and the restarts
// back off, doubling up to the maximum, instead of one every HungAfter.
func TestSuperviseBacksOffHungRestarts(t *testing.T) {
	p, logs := fakeProcess(t, "exec sleep 600", 100*time.Millisecond)
	p.backoffMin, p.backoffMax = 10*time.Millisecond, 40*time.Millisecond
	justExited(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Supervise(ctx) }()
	logs.waitForCount(t, "containerd exited; restarting", 5)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Supervise: %v", err)
	}
	var waits []string
	for _, m := range regexp.MustCompile(`containerd exited; restarting.* in=(\S+)`).FindAllStringSubmatch(logs.String(), -1) {
		waits = append(waits, m[1])
	}
	want := []string{"10ms", "20ms", "40ms", "40ms", "40ms"}
	if strings.Join(waits[:5], " ") != strings.Join(want, " ") {
		t.Errorf("waits between restarts %v, want %v", waits, want)
	}
	if n := strings.Count(logs.String(), "containerd is hung"); n < 4 {
		t.Errorf("%d hung containerds killed, want at least 4", n)
	}
}

func TestNextRestartBackoff(t *testing.T) {
	lo, hi := time.Second, 30*time.Second
	for _, c := range []struct {
		last, upFor, want time.Duration
	}{
		{0, 0, lo},                             // the first restart
		{lo, 0, 2 * lo},                        // it never answered
		{8 * lo, 59 * time.Second, 16 * lo},    // up, but not for long
		{16 * lo, 0, hi},                       // capped
		{hi, 0, hi},                            // stays capped
		{hi, restartBackoffReset, lo},          // it stayed up: start over
		{4 * lo, 10 * restartBackoffReset, lo}, // long ago
	} {
		if got := nextRestartBackoff(c.last, c.upFor, lo, hi); got != c.want {
			t.Errorf("nextRestartBackoff(%v, up %v) = %v, want %v", c.last, c.upFor, got, c.want)
		}
	}
}
