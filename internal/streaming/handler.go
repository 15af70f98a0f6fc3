package streaming

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// Pods is what the handler reads of the pods the agent runs: each with its
// true status (containerStatuses[].containerID "containerd://ID").
type Pods interface {
	Pods() []corev1.Pod
}

// Runtime is the container runtime's streaming side (internal/cri.Runtime).
type Runtime interface {
	Exec(ctx context.Context, containerID string, cmd []string, tty, stdin, stdout, stderr bool) (*url.URL, error)
	Attach(ctx context.Context, containerID string, tty, stdin, stdout, stderr bool) (*url.URL, error)
	PortForward(ctx context.Context, sandboxID string, ports []int32) (*url.URL, error)
	ReadySandbox(ctx context.Context, podUID string) (string, error)
}

// Options configure the node's streaming handler.
type Options struct {
	Pods    Pods
	Runtime Runtime
	Log     *slog.Logger
}

// runtimeCallTimeout bounds the CRI call that returns a streaming URL (the
// stream itself lasts as long as the client wants).
const runtimeCallTimeout = 30 * time.Second

// Handler serves the kubelet's streaming paths, GET or POST, and passes
// every other request to next:
//
//	/exec/{namespace}/{pod}[/{uid}]/{container}?command=...&input=1&output=1&error=1&tty=1
//	/attach/{namespace}/{pod}[/{uid}]/{container}?input=1&output=1&error=1&tty=1
//	/portForward/{namespace}/{pod}[/{uid}][?port=N (WebSocket only)]
//
// Like the kubelet, it finds the container (or the pod's sandbox) among the
// pods the agent runs, asks the runtime for a streaming URL (CRI Exec,
// Attach, PortForward) and proxies the upgrade request there. The caller is
// authorized before (the kubelet API checks nodes/proxy; the local socket is
// root's).
func Handler(next http.Handler, o Options) http.Handler {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	h := &handler{o: o}
	mux := http.NewServeMux()
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		mux.HandleFunc(m+" /exec/{namespace}/{pod}/{container}", h.exec)
		mux.HandleFunc(m+" /exec/{namespace}/{pod}/{uid}/{container}", h.exec)
		mux.HandleFunc(m+" /attach/{namespace}/{pod}/{container}", h.attach)
		mux.HandleFunc(m+" /attach/{namespace}/{pod}/{uid}/{container}", h.attach)
		mux.HandleFunc(m+" /portForward/{namespace}/{pod}", h.portForward)
		mux.HandleFunc(m+" /portForward/{namespace}/{pod}/{uid}", h.portForward)
	}
	for _, p := range []string{"/exec/", "/attach/", "/portForward/"} {
		mux.HandleFunc(p, badPath)
	}
	mux.Handle("/", next)
	return mux
}

// badPath answers the streaming paths' other methods and shapes.
func badPath(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, fmt.Sprintf("%s is not allowed on %s: use GET or POST", r.Method, r.URL.Path), http.StatusMethodNotAllowed)
		return
	}
	http.Error(w, fmt.Sprintf("%s is not a streaming path: use /exec/{namespace}/{pod}/{container}, /attach/{namespace}/{pod}/{container} or /portForward/{namespace}/{pod}", r.URL.Path), http.StatusNotFound)
}

type handler struct{ o Options }

// httpError is an answer with a status code, as plain text (the kubelet's
// streaming paths answer errors so).
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func fail(w http.ResponseWriter, err error) {
	var he *httpError
	if errors.As(err, &he) {
		http.Error(w, he.msg, he.code)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// ParseStreamOptions reads the kubelet's stream query parameters (input,
// output, error, tty: "1" or "true"), as the kubelet does: stderr is
// dropped with a TTY (a terminal has one output), and at least one stream
// is required.
func ParseStreamOptions(q url.Values) (StreamOptions, error) {
	on := func(name string) bool {
		v := q.Get(name)
		return v == "1" || strings.EqualFold(v, "true")
	}
	o := StreamOptions{
		Stdin:  on(corev1.ExecStdinParam),
		Stdout: on(corev1.ExecStdoutParam),
		Stderr: on(corev1.ExecStderrParam),
		TTY:    on(corev1.ExecTTYParam),
	}
	if o.TTY && o.Stderr {
		o.Stderr = false
	}
	if !o.Stdin && !o.Stdout && !o.Stderr {
		return o, errors.New("you must specify at least 1 of stdin, stdout, stderr")
	}
	return o, nil
}

// findPod returns the pod at ns/name (and uid, when the path has one).
func (h *handler) findPod(ns, name, uid string) (*corev1.Pod, error) {
	pods := h.o.Pods.Pods()
	for i := range pods {
		p := &pods[i]
		if p.Namespace != ns || p.Name != name {
			continue
		}
		if uid != "" && string(p.UID) != uid {
			return nil, &httpError{http.StatusNotFound, fmt.Sprintf("pod not found: pod %s/%s has UID %s, not %s", ns, name, p.UID, uid)}
		}
		return p, nil
	}
	return nil, &httpError{http.StatusNotFound, fmt.Sprintf("pod does not exist: no pod %q in namespace %q on this node", name, ns)}
}

// containerID returns the runtime ID of the running container name of pod.
func containerID(pod *corev1.Pod, name string) (string, error) {
	var names []string
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range list {
			names = append(names, c.Name)
		}
	}
	if !slices.Contains(names, name) {
		return "", &httpError{http.StatusNotFound, fmt.Sprintf("container not found (%q): pod %s/%s has containers %s", name, pod.Namespace, pod.Name, strings.Join(names, ", "))}
	}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for _, st := range list {
			if st.Name != name {
				continue
			}
			if st.State.Running == nil {
				return "", &httpError{http.StatusBadRequest, fmt.Sprintf("container %q in pod %s/%s is not running (%s)", name, pod.Namespace, pod.Name, stateString(st.State))}
			}
			_, id, ok := strings.Cut(st.ContainerID, "://")
			if !ok || id == "" {
				return "", &httpError{http.StatusInternalServerError, fmt.Sprintf("container %q in pod %s/%s has no runtime ID (%q)", name, pod.Namespace, pod.Name, st.ContainerID)}
			}
			return id, nil
		}
	}
	return "", &httpError{http.StatusBadRequest, fmt.Sprintf("container %q in pod %s/%s has not started", name, pod.Namespace, pod.Name)}
}

func stateString(s corev1.ContainerState) string {
	switch {
	case s.Waiting != nil && s.Waiting.Reason != "":
		return "waiting: " + s.Waiting.Reason
	case s.Terminated != nil:
		return fmt.Sprintf("terminated: %s, exit code %d", s.Terminated.Reason, s.Terminated.ExitCode)
	}
	return "waiting to start"
}

// runtimeError turns a failed CRI call into an answer: the runtime's
// NotFound is 404, as the kubelet's streaming.WriteError.
func runtimeError(what string, err error) error {
	code := http.StatusInternalServerError
	if status.Code(err) == codes.NotFound {
		code = http.StatusNotFound
	}
	return &httpError{code, fmt.Sprintf("%s: %v", what, err)}
}

func (h *handler) exec(w http.ResponseWriter, r *http.Request)   { h.remoteCommand(w, r, true) }
func (h *handler) attach(w http.ResponseWriter, r *http.Request) { h.remoteCommand(w, r, false) }

func (h *handler) remoteCommand(w http.ResponseWriter, r *http.Request, exec bool) {
	ns, podName, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	opts, err := ParseStreamOptions(q)
	if err != nil {
		fail(w, &httpError{http.StatusBadRequest, err.Error()})
		return
	}
	cmd := q[corev1.ExecCommandParam]
	if exec && len(cmd) == 0 {
		fail(w, &httpError{http.StatusBadRequest, "you must specify at least one command for the container (query parameter command)"})
		return
	}
	pod, err := h.findPod(ns, podName, r.PathValue("uid"))
	if err != nil {
		fail(w, err)
		return
	}
	id, err := containerID(pod, container)
	if err != nil {
		fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), runtimeCallTimeout)
	defer cancel()
	var loc *url.URL
	what := "attach"
	if exec {
		what = "exec"
		loc, err = h.o.Runtime.Exec(ctx, id, cmd, opts.TTY, opts.Stdin, opts.Stdout, opts.Stderr)
	} else {
		loc, err = h.o.Runtime.Attach(ctx, id, opts.TTY, opts.Stdin, opts.Stdout, opts.Stderr)
	}
	if err != nil {
		fail(w, runtimeError(fmt.Sprintf("%s in container %q of pod %s/%s", what, container, ns, podName), err))
		return
	}
	h.o.Log.Debug("streaming", "op", what, "pod", ns+"/"+podName, "container", container, "tty", opts.TTY, "stdin", opts.Stdin)
	RemoteCommand(loc, nil, opts, textResponder{h.o.Log}).ServeHTTP(w, stripCredentials(r))
}

// portForwardPorts reads ?port= (comma-separated or repeated), which only
// the WebSocket port-forward protocol uses: SPDY clients name the port on
// each stream, and SPDY tunneled over WebSocket is SPDY.
func portForwardPorts(r *http.Request) ([]int32, error) {
	if !wsstream.IsWebSocketRequest(r) || wsstream.IsWebSocketRequestWithTunnelingProtocol(r) {
		return nil, nil
	}
	values := r.URL.Query()[corev1.PortHeader]
	if len(values) == 0 {
		return nil, fmt.Errorf("query parameter %q is required", corev1.PortHeader)
	}
	var ports []int32
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("unable to parse %q as a port: it must be a number from 1 to 65535", p)
			}
			ports = append(ports, int32(n))
		}
	}
	return ports, nil
}

func (h *handler) portForward(w http.ResponseWriter, r *http.Request) {
	ns, podName := r.PathValue("namespace"), r.PathValue("pod")
	ports, err := portForwardPorts(r)
	if err != nil {
		fail(w, &httpError{http.StatusBadRequest, err.Error()})
		return
	}
	pod, err := h.findPod(ns, podName, r.PathValue("uid"))
	if err != nil {
		fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), runtimeCallTimeout)
	defer cancel()
	sandbox, err := h.o.Runtime.ReadySandbox(ctx, string(pod.UID))
	if err != nil {
		fail(w, runtimeError(fmt.Sprintf("port-forward to pod %s/%s", ns, podName), err))
		return
	}
	if sandbox == "" {
		fail(w, &httpError{http.StatusBadRequest, fmt.Sprintf("pod %s/%s has no running sandbox to forward ports into (phase %s)", ns, podName, pod.Status.Phase)})
		return
	}
	loc, err := h.o.Runtime.PortForward(ctx, sandbox, ports)
	if err != nil {
		fail(w, runtimeError(fmt.Sprintf("port-forward to pod %s/%s", ns, podName), err))
		return
	}
	h.o.Log.Debug("streaming", "op", "portforward", "pod", ns+"/"+podName)
	PortForward(loc, nil, textResponder{h.o.Log}).ServeHTTP(w, stripCredentials(r))
}
