package streaming

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/ballast-dev/ballast/internal/streaming/streamingtest"
)

type env struct {
	url    string // the node handler's base URL
	client *Client
	ctx    context.Context
	podUID string
}

// start runs a fake runtime with pod default/web-n1: container "app"
// running, "side" crash-looping, "gone" running in the agent's view but
// gone from the runtime; and the handler on an HTTP test server.
func start(t *testing.T) *env {
	t.Helper()
	const uid = "uid-1"
	rt, pod := streamingtest.RunningPod(t, "default", "web-n1", uid, "app")
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "side"}, corev1.Container{Name: "gone"})
	pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses,
		corev1.ContainerStatus{Name: "side", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}},
		corev1.ContainerStatus{Name: "gone", ContainerID: "containerd://0123", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "next "+r.URL.Path) })
	srv := httptest.NewServer(Handler(next, Options{Pods: streamingtest.Pods{pod}, Runtime: rt}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return &env{url: srv.URL, client: NewClient(u, &http.Transport{}), ctx: ctx, podUID: uid}
}

func TestExecSPDY(t *testing.T) {
	e := start(t)
	var out, errOut bytes.Buffer
	if err := e.client.Exec(e.ctx, "default", "web-n1", "app", []string{"echo", "hello", "world"}, Streams{Stdout: &out, Stderr: &errOut}); err != nil {
		t.Fatalf("exec echo: %v", err)
	}
	if out.String() != "hello world\n" {
		t.Errorf("stdout %q", out.String())
	}
	out.Reset()
	if err := e.client.Exec(e.ctx, "default", "web-n1", "app", []string{"stderr", "oops"}, Streams{Stdout: &out, Stderr: &errOut}); err != nil || errOut.String() != "oops\n" || out.Len() != 0 {
		t.Errorf("stderr: %v out %q err %q", err, out.String(), errOut.String())
	}
	err := e.client.Exec(e.ctx, "default", "web-n1", "app", []string{"exit", "3"}, Streams{Stdout: &out})
	if streamingtest.ExitCode(err) != 3 {
		t.Errorf("exit 3: %v (code %d)", err, streamingtest.ExitCode(err))
	}
	out.Reset()
	big := strings.Repeat("0123456789", 100000)
	if err := e.client.Exec(e.ctx, "default", "web-n1", "app", []string{"cat"}, Streams{Stdin: strings.NewReader(big), Stdout: &out}); err != nil || out.String() != big {
		t.Errorf("cat of 1 MB: %v, got %d bytes", err, out.Len())
	}
	// The UID form of the path.
	out.Reset()
	u := e.client.url(streamQuery(Streams{Stdout: &out}), "exec", "default", "web-n1", e.podUID, "app")
	q := u.Query()
	q.Add("command", "echo")
	q.Add("command", "by-uid")
	u.RawQuery = q.Encode()
	if err := e.client.stream(e.ctx, u, Streams{Stdout: &out}); err != nil || out.String() != "by-uid\n" {
		t.Errorf("exec by UID: %v %q", err, out.String())
	}
}

// kubectl 1.30+ speaks v5.channel.k8s.io over WebSocket: translated to SPDY
// toward the runtime, exit codes and stdin close included.
func TestExecWebSocket(t *testing.T) {
	e := start(t)
	run := func(cmd []string, stdin io.Reader) (string, error) {
		q := url.Values{"output": {"1"}, "error": {"1"}, "command": cmd}
		if stdin != nil {
			q.Set("input", "1")
		}
		ex, err := remotecommand.NewWebSocketExecutor(&rest.Config{Host: e.url}, "GET", e.url+"/exec/default/web-n1/app?"+q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = ex.StreamWithContext(e.ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: &out, Stderr: io.Discard})
		return out.String(), err
	}
	if out, err := run([]string{"echo", "over", "websocket"}, nil); err != nil || out != "over websocket\n" {
		t.Errorf("echo: %v %q", err, out)
	}
	if _, err := run([]string{"exit", "3"}, nil); streamingtest.ExitCode(err) != 3 {
		t.Errorf("exit 3 over WebSocket: %v", err)
	}
	if out, err := run([]string{"cat"}, strings.NewReader("to stdin")); err != nil || out != "to stdin" {
		t.Errorf("cat: %v %q", err, out)
	}
}

// sizeQueue hands out terminal sizes, then blocks until closed.
type sizeQueue chan remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &s
}

func TestExecTTYAndResize(t *testing.T) {
	e := start(t)
	for _, ws := range []bool{false, true} {
		t.Run(fmt.Sprintf("websocket=%v", ws), func(t *testing.T) {
			stdinR, stdinW := io.Pipe()
			outR, outW := io.Pipe()
			sizes := make(sizeQueue, 4)
			sizes <- remotecommand.TerminalSize{Width: 80, Height: 24}
			done := make(chan error, 1)
			go func() {
				var err error
				if ws {
					var ex remotecommand.Executor
					ex, err = remotecommand.NewWebSocketExecutor(&rest.Config{Host: e.url}, "GET", e.url+"/exec/default/web-n1/app?command=tty&input=1&output=1&tty=1")
					if err == nil {
						err = ex.StreamWithContext(e.ctx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: outW, Tty: true, TerminalSizeQueue: sizes})
					}
				} else {
					err = e.client.Exec(e.ctx, "default", "web-n1", "app", []string{"tty"}, Streams{Stdin: stdinR, Stdout: outW, TTY: true, Resize: sizes})
				}
				outW.Close()
				done <- err
			}()
			lines := bufio.NewScanner(outR)
			expect := func(want string) {
				t.Helper()
				if !lines.Scan() {
					t.Fatalf("output ended before %q: %v", want, lines.Err())
				}
				if got := strings.TrimRight(lines.Text(), "\r"); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
			expect("tty")
			expect("size 24x80")
			sizes <- remotecommand.TerminalSize{Width: 100, Height: 30}
			expect("size 30x100")
			stdinW.Close()
			close(sizes)
			go io.Copy(io.Discard, outR)
			if err := <-done; err != nil {
				t.Fatalf("tty session: %v", err)
			}
		})
	}
}

func TestAttach(t *testing.T) {
	e := start(t)
	var out bytes.Buffer
	if err := e.client.Attach(e.ctx, "default", "web-n1", "app", Streams{Stdin: strings.NewReader("typed\n"), Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "attached to app\ntyped\n" {
		t.Errorf("attach: %q", out.String())
	}
}

// backend is what runs "in the pod": an HTTP server on loopback, which the
// fake sandbox's network reaches.
func backend(t *testing.T, name string) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(bytes.Repeat([]byte("x"), 4<<20))
			return
		}
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// getAll fetches n pages at once through the forwarded port.
func getAll(t *testing.T, port int, n int, want string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/req-%d", i)
			resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if string(b) != want+" "+path {
				errs <- fmt.Errorf("GET %s: %q", path, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPortForwardSPDY(t *testing.T) {
	e := start(t)
	a, b := backend(t, "a"), backend(t, "b")
	ctx, cancel := context.WithCancel(e.ctx)
	ready := make(chan struct{})
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := e.client.ForwardPorts(ctx, "default", "web-n1", []string{"127.0.0.1"}, []string{fmt.Sprintf(":%d", a), fmt.Sprintf(":%d", b)}, ready, outW, io.Discard)
		outW.Close()
		done <- err
	}()
	// The local ports are printed as kubectl prints them.
	lines := bufio.NewScanner(outR)
	var local []int
	for len(local) < 2 && lines.Scan() {
		var p, r int
		if _, err := fmt.Sscanf(lines.Text(), "Forwarding from 127.0.0.1:%d -> %d", &p, &r); err != nil {
			t.Fatalf("output %q: %v", lines.Text(), err)
		}
		local = append(local, p)
	}
	go io.Copy(io.Discard, outR) // "Handling connection for ..." lines
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward ended: %v", err)
	}
	getAll(t, local[0], 20, "a")
	getAll(t, local[1], 20, "b")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("port-forward after cancel: %v", err)
	}
}

// kubectl 1.31+ tunnels SPDY port forwarding over WebSocket.
func TestPortForwardWebSocketTunnel(t *testing.T) {
	e := start(t)
	a := backend(t, "a")
	u, _ := url.Parse(e.url + "/portForward/default/web-n1")
	dialer, err := portforward.NewSPDYOverWebsocketDialer(u, &rest.Config{Host: e.url})
	if err != nil {
		t.Fatal(err)
	}
	local, stop := streamingtest.Forward(t, dialer, a)
	getAll(t, local, 20, "a")
	if err := stop(); err != nil {
		t.Errorf("port-forward after stop: %v", err)
	}
}

func TestErrors(t *testing.T) {
	e := start(t)
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"POST", "/exec/default/nope/app?command=x&output=1", 404, `pod does not exist: no pod "nope" in namespace "default"`},
		{"POST", "/exec/kube-system/web-n1/app?command=x&output=1", 404, "pod does not exist"},
		{"POST", "/exec/default/web-n1/other-uid/app?command=x&output=1", 404, "pod not found: pod default/web-n1 has UID uid-1"},
		{"POST", "/exec/default/web-n1/nope?command=x&output=1", 404, `container not found ("nope"): pod default/web-n1 has containers app, side, gone`},
		{"POST", "/exec/default/web-n1/side?command=x&output=1", 400, `container "side" in pod default/web-n1 is not running (waiting: CrashLoopBackOff)`},
		{"POST", "/exec/default/web-n1/gone?command=x&output=1", 404, `exec in container "gone" of pod default/web-n1: `},
		{"POST", "/exec/default/web-n1/app?command=x", 400, "you must specify at least 1 of stdin, stdout, stderr"},
		{"POST", "/exec/default/web-n1/app?output=1", 400, "at least one command"},
		{"GET", "/attach/default/web-n1/side?output=1", 400, "not running"},
		{"PUT", "/exec/default/web-n1/app?command=x&output=1", 405, "PUT is not allowed"},
		// Everything right, but no upgrade: the proxy refuses, as the kubelet's.
		{"POST", "/exec/default/web-n1/app?command=x&output=1", 400, "Upgrade request required"},
		{"POST", "/portForward/default/nope", 404, "pod does not exist"},
		{"GET", "/portForward/default/web-n1", 400, "Upgrade request required"},
		{"GET", "/exec/default/web-n1", 404, "not a streaming path"},
		{"DELETE", "/portForward/default/web-n1", 405, "use GET or POST"},
		{"GET", "/pods", 200, "next /pods"},
	} {
		req, _ := http.NewRequest(tc.method, e.url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
	}
	// kubectl's view of a refusal: the message reaches the client.
	err := e.client.Exec(e.ctx, "default", "web-n1", "side", []string{"echo"}, Streams{Stdout: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "is not running") {
		t.Errorf("exec into a crash-looping container: %v", err)
	}
}

func TestParseStreamOptions(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want StreamOptions
		err  bool
	}{
		{"input=1&output=1&error=1", StreamOptions{Stdin: true, Stdout: true, Stderr: true}, false},
		{"output=true&tty=true&error=1", StreamOptions{Stdout: true, TTY: true}, false}, // stderr dropped with a TTY
		{"tty=1", StreamOptions{}, true},
		{"output=0", StreamOptions{}, true},
	} {
		q, _ := url.ParseQuery(tc.q)
		got, err := ParseStreamOptions(q)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("%s: %+v %v", tc.q, got, err)
		}
	}
}
