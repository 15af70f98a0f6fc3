package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	// defaultHungAfter is Config.HungAfter's default.
	defaultHungAfter = 60 * time.Second
	// defaultStopTimeout is Config.StopTimeout's default.
	defaultStopTimeout = 15 * time.Second
	// adoptHungAfter is how long a containerd from an earlier run may stay
	// silent and idle before Start refuses to adopt it.
	adoptHungAfter = 15 * time.Second
	// slowLogEvery is how often a containerd that is busy but not yet
	// answering is reported while Ballast waits for it.
	slowLogEvery = 30 * time.Second
	maxLogSize   = 20 << 20
)

// Process is a containerd started (or adopted) by Ballast.
type Process struct {
	cfg        Config // resolved
	binDirs    []string
	configPath string
	bin        string
	log        *slog.Logger

	mu       sync.Mutex
	pid      int
	exited   chan struct{} // closed when the current process is gone
	adopted  bool
	started  time.Time
	stopping bool
}

// ErrNotInstalled is returned by Start when there is no containerd on PATH.
var ErrNotInstalled = errors.New("containerd is not installed (no containerd on PATH); install it with: apt-get install -y containerd runc containernetworking-plugins")

// Start writes the config and starts containerd detached (its own session,
// so stopping the agent stops no pod), logging to <Dir>/containerd.log and
// writing <Dir>/containerd.pid, then waits until the socket answers CRI
// Version. If a containerd from a previous run with the same config is
// alive (pid file, process with our --config, socket answering), it is
// adopted instead of starting another.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Process, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return nil, ErrNotInstalled
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, errors.New("runc is not installed (no runc on PATH); install it with: apt-get install -y containerd runc containernetworking-plugins")
	}
	c, binDirs, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	p := &Process{cfg: c, binDirs: binDirs, configPath: ConfigPath(c.Dir), bin: bin, log: log.With("component", "containerd")}

	oldConf, _ := os.ReadFile(p.configPath)
	if _, err := writeResolved(c, binDirs); err != nil {
		return nil, err
	}
	newConf, _ := os.ReadFile(p.configPath)

	if pid, ok := p.findRunning(); ok {
		if err := p.adopt(ctx, pid); err == nil {
			if !bytes.Equal(oldConf, newConf) {
				p.log.Warn("adopted containerd runs with an older config; restart it to apply the new one", "pid", pid, "config", p.configPath)
			}
			return p, nil
		} else {
			p.log.Warn("containerd from a previous run does not answer; not adopting it", "pid", pid, "err", err)
			return nil, fmt.Errorf("containerd (pid %d, from %s) is running but does not answer on %s: %w; stop it or remove the pid file", pid, p.pidPath(), c.Socket, err)
		}
	}
	if _, err := os.Stat(c.Socket); err == nil {
		if err := p.waitReady(ctx, 0, nil, time.Second); err == nil {
			return nil, fmt.Errorf("a containerd not recorded in %s already serves %s; stop it first", p.pidPath(), c.Socket)
		}
	}
	if err := p.startProcess(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is the current containerd process ID.
func (p *Process) Pid() int { p.mu.Lock(); defer p.mu.Unlock(); return p.pid }

// Adopted reports whether the current process was started by an earlier run.
func (p *Process) Adopted() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.adopted }

// Socket is containerd's gRPC socket path.
func (p *Process) Socket() string { return p.cfg.Socket }

// Endpoint is the CRI endpoint, "unix://" + Socket().
func (p *Process) Endpoint() string { return "unix://" + p.cfg.Socket }

// Config is the configuration in effect, with defaults and detections filled in.
func (p *Process) Config() Config { return p.cfg }

// ConfigPath is the config.toml path.
func (p *Process) ConfigPath() string { return p.configPath }

// LogPath is containerd's log file.
func (p *Process) LogPath() string { return filepath.Join(p.cfg.Dir, "containerd.log") }

// Snapshotter is the CRI snapshotter in use ("overlayfs" or "native");
// images imported with ctr must be unpacked into it.
func (p *Process) Snapshotter() string { return p.cfg.Snapshotter }

func (p *Process) pidPath() string { return filepath.Join(p.cfg.Dir, "containerd.pid") }

// findRunning returns the pid from the pid file if that process is alive
// and is a containerd running our config.
func (p *Process) findRunning() (int, bool) {
	b, err := os.ReadFile(p.pidPath())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !alive(pid) {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) == 0 || filepath.Base(args[0]) != "containerd" {
		return 0, false
	}
	for i, a := range args {
		if (a == "--config" || a == "-c") && i+1 < len(args) && args[i+1] == p.configPath {
			return pid, true
		}
		if a == "--config="+p.configPath {
			return pid, true
		}
	}
	return 0, false
}

func (p *Process) adopt(ctx context.Context, pid int) error {
	exited := make(chan struct{})
	go watchPid(pid, exited)
	if err := p.waitReady(ctx, pid, exited, adoptHungAfter); err != nil {
		return err
	}
	p.mu.Lock()
	p.pid, p.exited, p.adopted, p.started = pid, exited, true, time.Now()
	p.mu.Unlock()
	p.log.Info("adopted running containerd", "pid", pid, "socket", p.cfg.Socket)
	return nil
}

// startProcess starts a new containerd and waits for it to answer.
func (p *Process) startProcess(ctx context.Context) error {
	// A socket left by a dead containerd would make us talk to nothing.
	os.Remove(p.cfg.Socket)
	os.Remove(p.cfg.Socket + ".ttrpc")
	logPath := p.LogPath()
	if st, err := os.Stat(logPath); err == nil && st.Size() > maxLogSize {
		os.Rename(logPath, logPath+".1")
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(lf, "=== ballast: starting %s --config %s at %s\n", p.bin, p.configPath, time.Now().Format(time.RFC3339))
	cmd := exec.Command(p.bin, "--config", p.configPath, "--log-level", p.cfg.LogLevel)
	cmd.Dir = p.cfg.Dir
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	lf.Close()
	if err != nil {
		return fmt.Errorf("starting containerd: %w", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	if err := writeFileAtomic(p.pidPath(), []byte(strconv.Itoa(pid)+"\n")); err != nil {
		p.log.Warn("writing pid file", "err", err)
	}
	p.mu.Lock()
	p.pid, p.exited, p.adopted, p.started = pid, exited, false, time.Now()
	p.mu.Unlock()
	p.log.Info("started containerd", "pid", pid, "socket", p.cfg.Socket, "log", logPath, "snapshotter", p.cfg.Snapshotter)

	if err := p.waitReady(ctx, pid, exited, p.cfg.HungAfter); err != nil {
		select {
		case <-exited:
			return fmt.Errorf("containerd exited during start-up (%v): %w\n--- tail of %s ---\n%s", waitErr, err, logPath, LogTail(logPath, 30))
		default:
		}
		if ctx.Err() != nil {
			// Our caller is shutting down or gave up waiting: that says
			// nothing about containerd, which keeps starting. Leave it
			// running (its pid file is written): the next Start adopts it.
			p.log.Info("stopped waiting for containerd to answer; leaving it running", "pid", pid, "reason", context.Cause(ctx))
			return fmt.Errorf("waiting for containerd (pid %d) to answer on %s: %w", pid, p.cfg.Socket, err)
		}
		// Hung: silent and idle for HungAfter. Do not leave it behind.
		p.log.Error("containerd is hung (no answer, no CPU used); killing it", "pid", pid, "for", p.cfg.HungAfter)
		syscall.Kill(pid, syscall.SIGKILL)
		<-exited
		os.Remove(p.pidPath())
		return fmt.Errorf("containerd (pid %d) did not answer CRI Version on %s and used no CPU for %v: %w\n--- tail of %s ---\n%s", pid, p.cfg.Socket, p.cfg.HungAfter, err, logPath, LogTail(logPath, 30))
	}
	p.log.Info("containerd ready", "pid", pid, "after", time.Since(p.started).Round(time.Millisecond))
	return nil
}

// errHung is waitReady's error for a containerd that stayed silent and idle.
var errHung = errors.New("containerd is hung")

// waitReady polls CRI Version until it answers, the process exits or ctx
// ends. It also gives up when containerd is hung: it has not answered and
// its CPU time (pid's, read from /proc) has not moved for hungAfter. A
// containerd that is slow because it is working (cleaning up a thousand
// dead shims after a crash, say) keeps being waited for. With pid 0 there
// is no process to watch and hungAfter is a plain timeout.
func (p *Process) waitReady(ctx context.Context, pid int, exited <-chan struct{}, hungAfter time.Duration) error {
	conn, err := Dial(p.cfg.Socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	began := time.Now()
	watch := progress{last: began}
	if pid > 0 {
		watch.cpu, _ = cpuTicks(pid)
	}
	// Say so when a busy containerd is waited for past the point where an
	// idle one would be killed, then every slowLogEvery.
	nextLog := began.Add(hungAfter)
	var lastErr error = errors.New("socket never appeared")
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		if _, err := os.Stat(p.cfg.Socket); err == nil {
			actx, acancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := rt.Version(actx, &runtimeapi.VersionRequest{})
			acancel()
			if err == nil {
				return nil
			}
			lastErr = err
		}
		now := time.Now()
		cpu, ok := uint64(0), false
		if pid > 0 {
			cpu, ok = cpuTicks(pid)
		}
		if watch.hung(now, cpu, ok, hungAfter) {
			return fmt.Errorf("%w (last error: %v)", errHung, lastErr)
		}
		if pid > 0 && now.After(nextLog) {
			p.log.Warn("containerd is busy but does not answer yet; waiting", "pid", pid, "for", now.Sub(began).Round(time.Second), "last_error", lastErr)
			nextLog = now.Add(slowLogEvery)
		}
		select {
		case <-exited:
			return errors.New("process exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
		case <-poll.C:
		}
	}
}

// progress tells a slow process from a hung one by its CPU time.
type progress struct {
	last time.Time // when the CPU time last moved (or watching began)
	cpu  uint64    // the CPU time then, in clock ticks
}

// hung records an observation (now; cpu, when ok) and reports whether the
// process has been idle for longer than after. An observation that could
// not be read counts as no progress.
func (g *progress) hung(now time.Time, cpu uint64, ok bool, after time.Duration) bool {
	if ok && cpu != g.cpu {
		g.cpu, g.last = cpu, now
	}
	return now.Sub(g.last) > after
}

// cpuTicks is the user plus system CPU time of pid, in clock ticks, from
// /proc/<pid>/stat.
func cpuTicks(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	return parseCPUTicks(string(b))
}

// parseCPUTicks reads utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line; the command name (field 2) may hold spaces.
func parseCPUTicks(stat string) (uint64, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return u + s, true
}

// Dial returns a gRPC client connection to a containerd socket path.
func Dial(socket string) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
}

// Stop stops containerd by PID: SIGTERM, then SIGKILL after
// Config.StopTimeout (or the context's deadline). Pods keep running (their shims are separate
// processes). For tests and explicit shutdown; Supervise does not restart a
// stopped process.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopping = true
	pid, exited := p.pid, p.exited
	p.mu.Unlock()
	if pid == 0 || exited == nil {
		return nil
	}
	select {
	case <-exited:
		os.Remove(p.pidPath())
		return nil
	default:
	}
	p.log.Info("stopping containerd", "pid", pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGTERM containerd pid %d: %w", pid, err)
	}
	timeout := p.cfg.StopTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl)-time.Second, 100*time.Millisecond)
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		p.log.Warn("containerd did not exit after SIGTERM; sending SIGKILL", "pid", pid, "waited", timeout)
		syscall.Kill(pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("containerd pid %d did not exit after SIGKILL", pid)
		}
	}
	os.Remove(p.pidPath())
	return nil
}

// Supervise restarts containerd whenever it exits (unless Stop was called),
// with exponential back-off from 1 s to 30 s (reset after a minute of
// running). It returns when ctx ends, leaving containerd running.
func (p *Process) Supervise(ctx context.Context) error {
	backoff := time.Second
	for {
		p.mu.Lock()
		exited, started := p.exited, p.started
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
		}
		p.mu.Lock()
		stopping := p.stopping
		p.mu.Unlock()
		if stopping {
			return nil
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		p.log.Error("containerd exited; restarting", "pid", p.Pid(), "in", backoff, "log_tail", LogTail(p.LogPath(), 10))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
		p.mu.Lock()
		stopping = p.stopping
		p.mu.Unlock()
		if stopping {
			return nil
		}
		if err := p.startProcess(ctx); err != nil {
			p.log.Error("restarting containerd failed", "err", err)
			// startProcess left p.exited closed (the process exited or was
			// killed), so the loop retries after the next back-off.
		}
	}
}

// LogTail returns the last n lines of a log file (at most 8 KiB).
func LogTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	const max = 8 << 10
	off := st.Size() - max
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	n2, _ := f.ReadAt(buf, off)
	lines := strings.Split(strings.TrimRight(string(buf[:n2]), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3 (after "(comm)") is the state.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// watchPid closes ch when pid is gone (for a process that is not our child).
func watchPid(pid int, ch chan struct{}) {
	for alive(pid) {
		time.Sleep(250 * time.Millisecond)
	}
	close(ch)
}
