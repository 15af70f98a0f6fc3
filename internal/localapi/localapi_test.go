package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/testutil"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

type fakeProvider struct {
	pods    []corev1.Pod
	files   map[string]string // ns/pod/container[/previous] -> path
	running atomic.Bool
	// asked gets a value (when it has room) each time a log reader asks
	// whether the container runs: a follower does so once it has read to
	// the end of the file.
	asked chan struct{}
}

func (f *fakeProvider) Pods() []corev1.Pod { return f.pods }

func (f *fakeProvider) LogFile(ns, pod, container string, previous bool) (string, func() bool, error) {
	key := ns + "/" + pod + "/" + container
	if previous {
		key += "/previous"
	}
	p, ok := f.files[key]
	if !ok {
		switch {
		case previous && container == "other":
			// The agent's own words, without ErrBadRequest: still a 400.
			return "", nil, fmt.Errorf("previous terminated container %q in pod %s/%s not found", container, ns, pod)
		case previous:
			return "", nil, fmt.Errorf("%w: container %q of pod %s/%s has not restarted", ErrBadRequest, container, ns, pod)
		}
		return "", nil, fmt.Errorf("%w: no log for %s", ErrNotFound, key)
	}
	return p, func() bool {
		select {
		case f.asked <- struct{}{}:
		default:
		}
		return f.running.Load()
	}, nil
}

// forget drops a value left in asked by an earlier reader.
func (f *fakeProvider) forget() {
	select {
	case <-f.asked:
	default:
	}
}

// following waits until a follower has read to the end of its file.
func (f *fakeProvider) following(t *testing.T) {
	t.Helper()
	select {
	case <-f.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("no follower reached the end of the log")
	}
}

func logLine(i int, stream, tag, s string) string {
	ts := time.Date(2024, 1, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339Nano)
	return fmt.Sprintf("%s %s %s %s\n", ts, stream, tag, s)
}

func newFake(t *testing.T) *fakeProvider {
	dir := t.TempDir()
	web := filepath.Join(dir, "web.log")
	prev := filepath.Join(dir, "web-prev.log")
	os.WriteFile(web, []byte(logLine(0, "stdout", "F", "hello")+logLine(1, "stderr", "P", "wor")+logLine(2, "stderr", "F", "ld")+logLine(3, "stdout", "F", "three")), 0o644)
	os.WriteFile(prev, []byte(logLine(0, "stdout", "F", "before the crash")), 0o644)
	f := &fakeProvider{
		asked: make(chan struct{}, 1),
		pods: []corev1.Pod{
			{ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "default", Annotations: map[string]string{wellknown.AnnotationManifest: "/etc/kubernetes/manifests/web.yaml"}},
				Spec: corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "nginx"}, {Name: "sidecar"}, {Name: "other"}}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
					{Name: "nginx", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
					{Name: "sidecar", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}},
				}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "etcd-node1", Namespace: "kube-system"},
				Spec: corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "etcd"}}}},
		},
		files: map[string]string{
			"default/web-node1/nginx":          web,
			"default/web-node1/nginx/previous": prev,
			"default/web-node1/sidecar":        filepath.Join(dir, "missing.log"),
		},
	}
	f.running.Store(true)
	return f
}

func get(t *testing.T, h http.Handler, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	return rec.Code, rec.Body.String()
}

func TestHandler(t *testing.T) {
	f := newFake(t)
	f.running.Store(false)
	h := Handler(f, nil)

	if code, body := get(t, h, "/healthz"); code != 200 || body != "ok" {
		t.Errorf("healthz: %d %q", code, body)
	}

	code, body := get(t, h, "/pods")
	var list corev1.PodList
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("pods: %d %q", code, body)
	}
	if list.Kind != "PodList" || list.APIVersion != "v1" || len(list.Items) != 2 || list.Items[0].Name != "web-node1" || list.Items[0].Status.Phase != corev1.PodRunning {
		t.Errorf("pods: %+v", list)
	}

	for _, tc := range []struct {
		url      string
		code     int
		contains []string
	}{
		{"/containerLogs/default/web-node1/nginx", 200, []string{"hello\nworld\nthree\n"}},
		{"/containerLogs/default/web-node1/nginx?tailLines=1", 200, []string{"three\n"}},
		{"/containerLogs/default/web-node1/nginx?timestamps=true&tailLines=1", 200, []string{"2024-01-01T00:00:03.000000000Z three\n"}},
		{"/containerLogs/default/web-node1/nginx?limitBytes=3", 200, []string{"hel"}},
		{"/containerLogs/default/web-node1/nginx?sinceSeconds=10", 200, []string{""}}, // all lines are from 2024
		{"/containerLogs/default/web-node1/nginx?sinceTime=2024-01-01T00:00:02Z", 200, []string{"three\n"}},
		{"/containerLogs/default/web-node1/nginx?previous=true", 200, []string{"before the crash\n"}},
		{"/containerLogs/default/web-node1/nginx?follow=true", 200, []string{"hello\nworld\nthree\n"}}, // not running: ends
		{"/containerLogs/default/nope/nginx", 404, []string{`pod "nope" not found in namespace "default"`, "default/web-node1", "kube-system/etcd-node1"}},
		{"/containerLogs/default/web-node1/redis", 404, []string{`container "redis" not found in pod default/web-node1`, "nginx, sidecar"}},
		{"/containerLogs/default/web-node1/sidecar", 400, []string{"waiting to start: ContainerCreating"}},
		{"/containerLogs/default/web-node1/sidecar?previous=true", 400, []string{"has not restarted"}},
		{"/containerLogs/default/web-node1/other?previous=true", 400, []string{"previous terminated container"}},
		{"/containerLogs/kube-system/etcd-node1/etcd", 404, []string{"no log for"}},
		{"/containerLogs/default/web-node1/nginx?follow=maybe", 400, []string{`invalid follow="maybe"`}},
		{"/containerLogs/default/web-node1/nginx?tailLines=-2", 400, []string{"tailLines"}},
		{"/containerLogs/default/web-node1/nginx?limitBytes=0", 400, []string{"limitBytes"}},
		{"/containerLogs/default/web-node1/nginx?sinceSeconds=x", 400, []string{"sinceSeconds"}},
		{"/containerLogs/default/web-node1/nginx?sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z", 400, []string{"cannot both"}},
		{"/containerLogs/default/web-node1/nginx?sinceTime=yesterday", 400, []string{"sinceTime"}},
	} {
		code, body := get(t, h, tc.url)
		if code != tc.code {
			t.Errorf("%s: code %d, want %d (%q)", tc.url, code, tc.code, body)
			continue
		}
		for _, c := range tc.contains {
			if code == 200 && body != c {
				t.Errorf("%s: body %q, want %q", tc.url, body, c)
			} else if !strings.Contains(body, c) {
				t.Errorf("%s: body %q does not contain %q", tc.url, body, c)
			}
		}
	}
}

func startServer(t *testing.T, p Provider) (string, context.CancelFunc, chan error) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := SocketPath(filepath.Join(dir, "data"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, sock, Handler(p, nil)) }()
	c := NewClient(sock)
	testutil.Eventually(t, 5*time.Second, func() error { return c.Healthz(context.Background()) })
	return sock, cancel, done
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestClientServer(t *testing.T) {
	f := newFake(t)
	sock, cancel, done := startServer(t, f)
	c := NewClient(sock)
	ctx := context.Background()

	st, err := os.Stat(sock)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v", st.Mode(), err)
	}
	if st, _ := os.Stat(filepath.Dir(sock)); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode: %v", st.Mode())
	}

	list, err := c.Pods(ctx)
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("Pods: %v %v", list, err)
	}

	var b bytes.Buffer
	if err := c.Logs(ctx, "default", "web-node1", "nginx", LogOptions{TailLines: 2}, &b); err != nil || b.String() != "world\nthree\n" {
		t.Errorf("Logs: %q %v", b.String(), err)
	}
	err = c.Logs(ctx, "default", "web-node1", "redis", LogOptions{TailLines: -1}, &b)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || !strings.Contains(err.Error(), "nginx, sidecar") {
		t.Errorf("unknown container: %v", err)
	}

	// Follow: lines arrive as they are written; the stream ends when the
	// container stops.
	path := f.files["default/web-node1/nginx"]
	var out syncBuf
	ferr := make(chan error, 1)
	f.forget()
	go func() {
		ferr <- c.Logs(ctx, "default", "web-node1", "nginx", LogOptions{Follow: true, TailLines: 0}, &out)
	}()
	f.following(t)
	fh, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	fh.WriteString(logLine(9, "stdout", "F", "live"))
	fh.Close()
	testutil.Eventually(t, 5*time.Second, func() error {
		if out.String() != "live\n" {
			return fmt.Errorf("followed output %q", out.String())
		}
		return nil
	})
	f.running.Store(false)
	select {
	case err := <-ferr:
		if err != nil {
			t.Errorf("follow: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the container stopped")
	}

	// A follower is ended by the agent stopping.
	f.running.Store(true)
	f.forget()
	go func() {
		ferr <- c.Logs(ctx, "default", "web-node1", "nginx", LogOptions{Follow: true, TailLines: 0}, io.Discard)
	}()
	f.following(t)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
	<-ferr
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}

	// The agent is gone.
	_, err = c.Pods(ctx)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Ballast agent at "+sock) || !strings.Contains(err.Error(), "--data-dir "+filepath.Dir(sock)) {
		t.Errorf("agent gone: %v", err)
	}
}

func TestServeStaleAndLiveSocket(t *testing.T) {
	dir, _ := os.MkdirTemp("", "bsock")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "ballast.sock")
	// A stale socket: bound, then its listener gone without unlinking.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, sock, Handler(&fakeProvider{}, nil)) }()
	c := NewClient(sock)
	testutil.Eventually(t, 5*time.Second, func() error { return c.Healthz(ctx) })
	// A second agent refuses to take over a live socket.
	if err := Serve(ctx, sock, http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Errorf("second Serve: %v", err)
	}
	cancel()
	<-done

	// Not a socket: left alone.
	os.WriteFile(sock, []byte("x"), 0o600)
	if err := Serve(context.Background(), sock, http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Serve over a file: %v", err)
	}
}

func TestConnErrors(t *testing.T) {
	c := NewClient("/var/lib/ballast/ballast.sock")
	err := c.connError(&net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)})
	if !strings.Contains(err.Error(), "root-only") || !errors.Is(err, syscall.EACCES) {
		t.Errorf("EACCES: %v", err)
	}
	err = c.connError(&net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.ENOENT)})
	want := "cannot reach the Ballast agent at /var/lib/ballast/ballast.sock: is `ballast node` running with --data-dir /var/lib/ballast? ("
	if !strings.HasPrefix(err.Error(), want) || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("ENOENT: %v", err)
	}
}

func TestResolvePod(t *testing.T) {
	mk := func(ns, name, node, manifest string) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.PodSpec{NodeName: node}}
		if manifest != "" {
			p.Annotations = map[string]string{wellknown.AnnotationManifest: manifest}
		}
		return p
	}
	list := &corev1.PodList{Items: []corev1.Pod{
		mk("default", "web-node1", "node1", "/etc/m/web.yaml"),
		mk("default", "api-node1", "node1", "/etc/m/api-server.yaml"),
		mk("default", "api", "", ""), // a pod literally named "api"
		mk("kube-system", "etcd-node1", "node1", "/etc/m/etcd.yaml"),
		mk("team", "job-node1", "node1", ""),
		mk("team", "job-node2", "node2", ""),
	}}
	for _, tc := range []struct {
		name, ns, want, err string
	}{
		{"web-node1", "", "web-node1", ""},
		{"web", "", "web-node1", ""},
		{"web.yaml", "default", "web-node1", ""},
		{"api-server", "", "api-node1", ""},
		{"api", "", "api", ""}, // the full name wins
		{"etcd", "kube-system", "etcd-node1", ""},
		{"etcd", "", "", `found etcd-node1 in namespace kube-system (use -n kube-system)`},
		{"job", "team", "", `ambiguous in namespace "team": it may be job-node1, job-node2`},
		{"nope", "", "", `pods: default/api, default/api-node1`},
	} {
		p, err := ResolvePod(list, tc.name, tc.ns)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ResolvePod(%q, %q) err = %v, want %q", tc.name, tc.ns, err, tc.err)
			}
			continue
		}
		if err != nil || p.Name != tc.want {
			t.Errorf("ResolvePod(%q, %q) = %v, %v; want %s", tc.name, tc.ns, p, err, tc.want)
		}
	}
	if _, err := ResolvePod(&corev1.PodList{}, "x", ""); err == nil || !strings.Contains(err.Error(), "runs no pods") {
		t.Errorf("empty: %v", err)
	}
}

func TestResolveContainer(t *testing.T) {
	one := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}}
	if n, note, err := ResolveContainer(one, ""); n != "a" || note != "" || err != nil {
		t.Errorf("one: %q %q %v", n, note, err)
	}
	two := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init"}},
		Containers:     []corev1.Container{{Name: "a"}, {Name: "b"}}}}
	if n, note, err := ResolveContainer(two, ""); n != "a" || !strings.Contains(note, `Defaulted container "a" out of: a, b, init`) || err != nil {
		t.Errorf("two: %q %q %v", n, note, err)
	}
	two.Annotations = map[string]string{wellknown.AnnotationDefaultContainer: "b"}
	if n, note, err := ResolveContainer(two, ""); n != "b" || note != "" || err != nil {
		t.Errorf("annotated: %q %q %v", n, note, err)
	}
	if n, _, err := ResolveContainer(two, "init"); n != "init" || err != nil {
		t.Errorf("init: %q %v", n, err)
	}
	if _, _, err := ResolveContainer(two, "zzz"); err == nil || !strings.Contains(err.Error(), "a, b, init") {
		t.Errorf("unknown: %v", err)
	}
}
