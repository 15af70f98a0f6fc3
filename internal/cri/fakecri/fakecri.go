// Package fakecri is an in-process container runtime for unit tests. It serves
// the CRI v1 runtime and image services and containerd's events service on a
// unix socket, keeps sandboxes, containers and images in memory, and behaves as
// a runtime does rather than as a mock: a container must be created in a ready
// sandbox from an image that is present, a running container cannot be
// removed, stopping a container that ignores SIGTERM takes its whole grace
// period, and every process that ends is reported as a /tasks/exit event.
//
// Tests drive it with the real client, then act as the world would: make a
// container crash (Exit, AutoExit), make pulls fail, take the runtime down, or
// inject one failure into one call.
//
//	rt := fakecri.Start(t)
//	rt.AddImage("registry.example/app:v1")
//	client, _ := cri.Dial(rt.Endpoint())
//	... run the code under test ...
//	rt.ExitByName("web", "app", 1)
package fakecri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "github.com/containerd/containerd/api/services/events/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Exit codes of a process killed by a signal, as a shell and the kubelet see them.
const (
	ExitSIGKILL int32 = 137
	ExitSIGTERM int32 = 143
)

// Sandbox is a snapshot of one pod sandbox.
type Sandbox struct {
	ID          string
	Name        string
	Namespace   string
	UID         string
	Attempt     uint32
	Labels      map[string]string
	Annotations map[string]string
	State       runtimeapi.PodSandboxState
	CreatedAt   time.Time
	// IP is empty for a sandbox in the host's network namespace.
	IP           string
	HostNetwork  bool
	LogDirectory string
}

// Ready reports whether the sandbox is SANDBOX_READY.
func (s Sandbox) Ready() bool { return s.State == runtimeapi.PodSandboxState_SANDBOX_READY }

// Container is a snapshot of one container.
type Container struct {
	ID          string
	SandboxID   string
	PodName     string // the sandbox's metadata name
	Name        string
	Attempt     uint32
	Image       string // as given in the container config
	ImageRef    string // the image ID, "sha256:..."
	Labels      map[string]string
	Annotations map[string]string
	State       runtimeapi.ContainerState
	CreatedAt   time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	ExitCode    int32
	Reason      string
	Message     string
	LogPath     string
}

type sandbox struct {
	Sandbox
	key string // reserved name
	pid uint32
}

type container struct {
	Container
	key    string        // reserved name
	pid    uint32        // of the running process
	exited chan struct{} // closed when the running process ends
}

type autoExit struct {
	code  int32
	after time.Duration
}

// Runtime is the fake runtime. Its methods are safe for concurrent use.
type Runtime struct {
	srv    *grpc.Server
	socket string

	mu sync.Mutex
	// Guarded by mu:
	sandboxes  map[string]*sandbox
	containers map[string]*container
	names      map[string]string // reserved sandbox and container names -> ID
	images     map[string]string // normalized ref -> image ID
	pullable   map[string]string // normalized ref -> "" (pull works) or an error message
	ignoreTERM map[string]bool   // container names
	autoExit   map[string]autoExit
	failNext   map[string][]error
	calls      map[string]int
	subs       map[*subscriber]bool
	timers     map[*time.Timer]bool
	down       bool
	closed     bool
	second     time.Duration // how long one second of a CRI timeout lasts
	nextIP     int
	nextPID    uint32
	last       time.Time // last timestamp handed out, so timestamps strictly increase
	stopped    chan struct{}
}

// New returns a runtime that serves nothing until Serve.
func New() *Runtime {
	return &Runtime{
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*container{},
		names:      map[string]string{},
		images:     map[string]string{},
		pullable:   map[string]string{},
		ignoreTERM: map[string]bool{},
		autoExit:   map[string]autoExit{},
		failNext:   map[string][]error{},
		calls:      map[string]int{},
		subs:       map[*subscriber]bool{},
		timers:     map[*time.Timer]bool{},
		second:     time.Second,
		nextIP:     2,
		nextPID:    1000,
		stopped:    make(chan struct{}),
	}
}

// Start serves a new runtime on a unix socket in a temporary directory until
// the test ends.
func Start(t testing.TB) *Runtime {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 90 { // a unix socket path must fit in 108 bytes
		d, err := os.MkdirTemp("", "fakecri")
		if err != nil {
			t.Fatalf("fakecri: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	r := New()
	if err := r.Serve(filepath.Join(dir, "cri.sock")); err != nil {
		t.Fatalf("fakecri: %v", err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Serve listens on the unix socket at socketPath and serves in the background
// until Stop. A socket left there by an earlier process is replaced.
func (r *Runtime) Serve(socketPath string) error {
	if fi, err := os.Lstat(socketPath); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(socketPath)
	}
	lis, err := net.Listen("unix", socketPath)
	if err != nil {
		return fmt.Errorf("fake runtime: listening on %s: %w", socketPath, err)
	}
	r.mu.Lock()
	if r.srv != nil || r.closed {
		r.mu.Unlock()
		lis.Close()
		return errors.New("fake runtime: Serve called twice or after Stop")
	}
	r.srv = grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := r.gate(info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := r.gate(info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
		grpc.WaitForHandlers(true),
	)
	r.socket = socketPath
	runtimeapi.RegisterRuntimeServiceServer(r.srv, &runtimeService{r: r})
	runtimeapi.RegisterImageServiceServer(r.srv, &imageService{r: r})
	eventsv1.RegisterEventsServer(r.srv, &eventsService{r: r})
	srv := r.srv
	r.mu.Unlock()
	go srv.Serve(lis)
	return nil
}

// Endpoint returns the runtime's address, "unix:///path/to.sock".
func (r *Runtime) Endpoint() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return "unix://" + r.socket
}

// Stop ends every call in progress and stops serving. Containers stop changing.
func (r *Runtime) Stop() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.stopped)
	for tm := range r.timers {
		tm.Stop()
	}
	r.dropSubscribersLocked()
	srv := r.srv
	r.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
	if r.socket != "" {
		os.Remove(r.socket)
	}
}

// gate counts a call and fails it when the runtime is down or a failure was
// injected for it.
func (r *Runtime) gate(fullMethod string) error {
	m := path.Base(fullMethod)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[m]++
	if r.down {
		return status.Error(codes.Unavailable, "fake runtime is down")
	}
	if q := r.failNext[m]; len(q) > 0 {
		err := q[0]
		if len(q) == 1 {
			delete(r.failNext, m)
		} else {
			r.failNext[m] = q[1:]
		}
		return err
	}
	return nil
}

// --- test controls ---

// AddImage makes an image present, as if it had been pulled or imported.
func (r *Runtime) AddImage(ref string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := normalizeRef(ref)
	r.images[n] = imageID(n)
}

// SetPullable says whether pulling ref from its registry succeeds. An image
// that is not pullable fails to pull as one missing from its registry.
func (r *Runtime) SetPullable(ref string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ok {
		r.pullable[normalizeRef(ref)] = ""
	} else {
		delete(r.pullable, normalizeRef(ref))
	}
}

// SetPullError makes pulling ref fail with msg, as a registry that refuses it.
func (r *Runtime) SetPullError(ref, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if msg == "" {
		msg = "unknown error"
	}
	r.pullable[normalizeRef(ref)] = msg
}

// SetIgnoreSIGTERM makes containers named name (their CRI metadata name)
// ignore SIGTERM: StopContainer then kills them only when the grace period ends.
func (r *Runtime) SetIgnoreSIGTERM(containerName string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ignoreTERM[containerName] = true
}

// SetTimeScale sets how long one second of a CRI timeout (StopContainer's grace
// period) lasts; by default a second. Tests use a few milliseconds.
func (r *Runtime) SetTimeScale(second time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.second = second
}

// AutoExit makes containers started from image exit by themselves with code
// after running for the given time, like a program that crashes or finishes.
// It applies to containers started after the call.
func (r *Runtime) AutoExit(image string, code int32, after time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.autoExit[normalizeRef(image)] = autoExit{code: code, after: after}
}

// FailNext makes the next call of method (a gRPC method name such as
// "RunPodSandbox", "PullImage" or "Subscribe") fail with err. A plain error
// reaches the client as codes.Unknown; use status.Error for another code.
// Several calls queue several failures.
func (r *Runtime) FailNext(method string, err error) {
	if !knownMethods[method] {
		panic(fmt.Sprintf("fakecri: FailNext: no method %q in the runtime, image or events services", method))
	}
	if err == nil {
		panic("fakecri: FailNext with a nil error")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext[method] = append(r.failNext[method], err)
}

// SetDown simulates a runtime that is down (true) or back (false). While down,
// every call fails with codes.Unavailable and event subscriptions are cut.
// Containers keep running, as they do while containerd restarts.
func (r *Runtime) SetDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
	if down {
		r.dropSubscribersLocked()
	}
}

// Calls returns how many times each method was called, failed calls included.
func (r *Runtime) Calls() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.calls)
}

// Subscribers returns how many event subscriptions are open, so a test can
// wait until the code under test listens before making something exit.
func (r *Runtime) Subscribers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs)
}

// Sandboxes returns a snapshot of every sandbox, oldest first.
func (r *Runtime) Sandboxes() []Sandbox {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Sandbox, 0, len(r.sandboxes))
	for _, s := range r.sandboxes {
		c := s.Sandbox
		c.Labels, c.Annotations = maps.Clone(c.Labels), maps.Clone(c.Annotations)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// Containers returns a snapshot of every container, oldest first.
func (r *Runtime) Containers() []Container {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Container, 0, len(r.containers))
	for _, c := range r.containers {
		s := c.Container
		s.Labels, s.Annotations = maps.Clone(s.Labels), maps.Clone(s.Annotations)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// Exit makes the process of a running container end with code, as if it had
// exited by itself, and reports a /tasks/exit event. Given a ready sandbox's
// ID, the sandbox's own process ends and the sandbox becomes NOTREADY; its
// containers keep running. IDs may be abbreviated to a unique prefix.
func (r *Runtime) Exit(id string, code int32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, err := resolve(r.containers, id, "container"); err == nil {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			return fmt.Errorf("fake runtime: container %s (%s) is %s, not running", c.ID, c.Name, c.State)
		}
		r.exitLocked(c, code)
		return nil
	}
	s, err := resolve(r.sandboxes, id, "sandbox")
	if err != nil {
		return fmt.Errorf("fake runtime: no container or sandbox %q", id)
	}
	if !s.Ready() {
		return fmt.Errorf("fake runtime: sandbox %s (%s) is not ready", s.ID, s.Name)
	}
	// As in containerd, the sandbox's containers outlive its own process.
	s.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	r.emitExitLocked(s.ID, s.pid, code, r.nowLocked())
	return nil
}

// ExitByName makes the running container containerName of the pod podName (the
// sandbox's metadata name) exit with code.
func (r *Runtime) ExitByName(podName, containerName string, code int32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found *container
	for _, c := range r.containers {
		if c.PodName == podName && c.Name == containerName && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			if found == nil || c.CreatedAt.After(found.CreatedAt) {
				found = c
			}
		}
	}
	if found == nil {
		return fmt.Errorf("fake runtime: no running container %q in pod %q", containerName, podName)
	}
	r.exitLocked(found, code)
	return nil
}

// --- state changes, all with mu held ---

// nowLocked returns the time, later than any returned before.
func (r *Runtime) nowLocked() time.Time {
	t := time.Now()
	if !t.After(r.last) {
		t = r.last.Add(time.Nanosecond)
	}
	r.last = t
	return t
}

// exitLocked ends a running container's process.
func (r *Runtime) exitLocked(c *container, code int32) {
	if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return
	}
	c.State = runtimeapi.ContainerState_CONTAINER_EXITED
	c.FinishedAt = r.nowLocked()
	c.ExitCode = code
	c.Reason = "Completed"
	if code != 0 {
		c.Reason = "Error"
	}
	close(c.exited)
	r.emitExitLocked(c.ID, c.pid, code, c.FinishedAt)
}

// stopSandboxLocked kills a sandbox's containers and its own process.
func (r *Runtime) stopSandboxLocked(s *sandbox, code int32) {
	for _, c := range r.containers {
		if c.SandboxID == s.ID {
			r.exitLocked(c, ExitSIGKILL)
		}
	}
	if s.Ready() {
		s.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		r.emitExitLocked(s.ID, s.pid, code, r.nowLocked())
	}
}

func (r *Runtime) pidLocked() uint32 {
	r.nextPID++
	return r.nextPID
}

// afterLocked runs f with mu held after d, unless the runtime stops first.
func (r *Runtime) afterLocked(d time.Duration, f func()) {
	var tm *time.Timer
	tm = time.AfterFunc(d, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.timers, tm)
		if !r.closed {
			f()
		}
	})
	r.timers[tm] = true
}

// --- helpers ---

func newID() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// resolve finds an object by ID or by a unique prefix of it, as containerd does.
func resolve[T any](m map[string]*T, id, kind string) (*T, error) {
	if id == "" {
		return nil, status.Errorf(codes.InvalidArgument, "%s ID must not be empty", kind)
	}
	if o, ok := m[id]; ok {
		return o, nil
	}
	var found *T
	var n int
	for k, o := range m {
		if strings.HasPrefix(k, id) {
			found = o
			n++
		}
	}
	switch n {
	case 0:
		return nil, status.Errorf(codes.NotFound, "an error occurred when try to find %s %q: not found", kind, id)
	case 1:
		return found, nil
	default:
		return nil, status.Errorf(codes.InvalidArgument, "%s ID %q is ambiguous: it is the prefix of %d IDs", kind, id, n)
	}
}

func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

var knownMethods = func() map[string]bool {
	m := map[string]bool{}
	for _, d := range []grpc.ServiceDesc{runtimeapi.RuntimeService_ServiceDesc, runtimeapi.ImageService_ServiceDesc, eventsv1.Events_ServiceDesc} {
		for _, x := range d.Methods {
			m[x.MethodName] = true
		}
		for _, x := range d.Streams {
			m[x.StreamName] = true
		}
	}
	return m
}()
