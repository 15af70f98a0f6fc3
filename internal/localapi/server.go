// Package localapi is the agent's root-only unix socket, serving the
// kubelet's read-only paths (/healthz, /pods, /containerLogs) over HTTP, and
// the client that `ballast pods` and `ballast logs` use.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/logs"
)

// SocketName is the socket's file name in the agent's data directory.
const SocketName = "ballast.sock"

// SocketPath is where the agent with dataDir listens.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// Errors a Provider wraps so that the handler answers with the right status.
var (
	ErrNotFound   = errors.New("not found")   // 404
	ErrBadRequest = errors.New("bad request") // 400
)

// Provider is what the agent exposes to the socket.
type Provider interface {
	// Pods returns the pods the agent runs, with their true status.
	Pods() []corev1.Pod
	// LogFile returns the log file of a container (of its previous instance
	// with previous) and whether it still runs (nil: until the client goes).
	// Errors wrapping ErrNotFound answer 404, ErrBadRequest 400.
	LogFile(namespace, pod, container string, previous bool) (path string, running func() bool, err error)
}

// Mount serves more paths (metrics, stats) on the socket and, through it,
// on the kubelet HTTPS API: Handler handles each of Patterns
// (http.ServeMux patterns, e.g. "GET /metrics").
type Mount struct {
	Patterns []string
	Handler  http.Handler
}

// Handler serves /healthz, /pods, /containerLogs/{namespace}/{pod}/{container},
// /manifests/problems, /configmaps, /secrets, /events, and the paths of mounts.
func Handler(p Provider, log *slog.Logger, mounts ...Mount) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{p: p, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /pods", h.pods)
	mux.HandleFunc("GET /pods/{$}", h.pods)
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", h.containerLogs)
	mux.HandleFunc("GET /manifests/problems", h.problems)
	mux.HandleFunc("GET /configmaps", h.configMaps)
	mux.HandleFunc("GET /secrets", h.secrets)
	mux.HandleFunc("GET /events", h.events)
	for _, m := range mounts {
		for _, pat := range m.Patterns {
			mux.Handle(pat, m.Handler)
		}
	}
	return mux
}

type handler struct {
	p   Provider
	log *slog.Logger
}

func (h *handler) sortedPods() []corev1.Pod {
	pods := slices.Clone(h.p.Pods())
	slices.SortFunc(pods, func(a, b corev1.Pod) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return pods
}

func (h *handler) pods(w http.ResponseWriter, r *http.Request) {
	list := corev1.PodList{Items: h.sortedPods()}
	list.APIVersion, list.Kind = "v1", "PodList"
	for i := range list.Items {
		list.Items[i].APIVersion, list.Items[i].Kind = "v1", "Pod"
	}
	b, err := json.Marshal(&list)
	if err != nil {
		h.log.Error("encoding pods", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// queryBool parses a boolean query parameter ("" is false).
func queryBool(q map[string][]string, name string) (bool, error) {
	v := first(q, name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("invalid %s=%q: must be true or false", name, v)
	}
	return b, nil
}

// queryInt parses an integer query parameter at least minimum (def when absent).
func queryInt(q map[string][]string, name string, minimum, def int64) (int64, error) {
	v := first(q, name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < minimum {
		return 0, fmt.Errorf("invalid %s=%q: must be an integer of at least %d", name, v, minimum)
	}
	return n, nil
}

func first(q map[string][]string, name string) string {
	if v := q[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

type logRequest struct {
	opts     logs.ReadOptions
	previous bool
}

func parseLogQuery(r *http.Request, now time.Time) (logRequest, error) {
	q := r.URL.Query()
	var lr logRequest
	var err error
	if lr.opts.Follow, err = queryBool(q, "follow"); err != nil {
		return lr, err
	}
	if lr.opts.Timestamps, err = queryBool(q, "timestamps"); err != nil {
		return lr, err
	}
	if lr.previous, err = queryBool(q, "previous"); err != nil {
		return lr, err
	}
	if lr.opts.TailLines, err = queryInt(q, "tailLines", 0, -1); err != nil {
		return lr, err
	}
	if lr.opts.LimitBytes, err = queryInt(q, "limitBytes", 1, 0); err != nil {
		return lr, err
	}
	since, err := queryInt(q, "sinceSeconds", 1, 0)
	if err != nil {
		return lr, err
	}
	sinceTime := first(q, "sinceTime")
	switch {
	case since > 0 && sinceTime != "":
		return lr, errors.New("sinceSeconds and sinceTime cannot both be set")
	case since > 0:
		t := now.Add(-time.Duration(since) * time.Second)
		lr.opts.SinceTime = &t
	case sinceTime != "":
		t, err := time.Parse(time.RFC3339, sinceTime)
		if err != nil {
			return lr, fmt.Errorf("invalid sinceTime=%q: must be an RFC3339 time", sinceTime)
		}
		lr.opts.SinceTime = &t
	}
	return lr, nil
}

func podNames(pods []corev1.Pod) string {
	if len(pods) == 0 {
		return "the agent runs no pods"
	}
	names := make([]string, len(pods))
	for i := range pods {
		names[i] = pods[i].Namespace + "/" + pods[i].Name
	}
	return "known pods: " + strings.Join(names, ", ")
}

// containerNames lists a pod's containers, init and ephemeral ones included.
func containerNames(pod *corev1.Pod) []string {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		names = append(names, c.Name)
	}
	return names
}

func containerStatus(pod *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func (h *handler) containerLogs(w http.ResponseWriter, r *http.Request) {
	ns, podName, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	lr, err := parseLogQuery(r, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pods := h.sortedPods()
	var pod *corev1.Pod
	for i := range pods {
		if pods[i].Namespace == ns && pods[i].Name == podName {
			pod = &pods[i]
			break
		}
	}
	if pod == nil {
		http.Error(w, fmt.Sprintf("pod %q not found in namespace %q; %s", podName, ns, podNames(pods)), http.StatusNotFound)
		return
	}
	names := containerNames(pod)
	if !slices.Contains(names, container) {
		http.Error(w, fmt.Sprintf("container %q not found in pod %s/%s; its containers: %s", container, ns, podName, strings.Join(names, ", ")), http.StatusNotFound)
		return
	}

	path, running, err := h.p.LogFile(ns, podName, container, lr.previous)
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case lr.previous && !errors.Is(err, ErrNotFound):
			// No previous instance: a client mistake, 400 as the kubelet answers.
			code = http.StatusBadRequest
		case errors.Is(err, ErrNotFound), errors.Is(err, fs.ErrNotExist):
			code = http.StatusNotFound
		case errors.Is(err, ErrBadRequest):
			code = http.StatusBadRequest
		}
		http.Error(w, err.Error(), code)
		return
	}
	if _, err := os.Stat(path); err != nil {
		st := containerStatus(pod, container)
		switch {
		case lr.previous:
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %s/%s not found", container, ns, podName), http.StatusBadRequest)
		case st != nil && st.State.Waiting != nil:
			http.Error(w, fmt.Sprintf("container %q in pod %s/%s is waiting to start: %s", container, ns, podName, st.State.Waiting.Reason), http.StatusBadRequest)
		case errors.Is(err, fs.ErrNotExist):
			http.Error(w, fmt.Sprintf("container %q in pod %s/%s has no log file yet", container, ns, podName), http.StatusNotFound)
		default:
			h.log.Error("opening container log", "path", path, "err", err)
			http.Error(w, fmt.Sprintf("cannot read the log of container %q in pod %s/%s: %v", container, ns, podName, err), http.StatusInternalServerError)
		}
		return
	}
	if lr.previous {
		running = func() bool { return false }
	}
	lr.opts.Running = running

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	out := &responseWriter{w: w, rc: http.NewResponseController(w), flush: lr.opts.Follow}
	if lr.opts.Follow {
		// Tell the client the stream started before the first line comes.
		w.WriteHeader(http.StatusOK)
		out.wrote = true
		out.rc.Flush()
	}
	if err := logs.Read(r.Context(), path, lr.opts, out, out); err != nil {
		if !out.wrote {
			http.Error(w, fmt.Sprintf("reading the log of container %q in pod %s/%s: %v", container, ns, podName, err), http.StatusInternalServerError)
			return
		}
		if r.Context().Err() == nil {
			h.log.Warn("streaming container log", "pod", ns+"/"+podName, "container", container, "err", err)
		}
	}
}

// responseWriter flushes each write when following.
type responseWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	flush bool
	wrote bool
}

func (rw *responseWriter) Write(b []byte) (int, error) {
	rw.wrote = true
	n, err := rw.w.Write(b)
	if err == nil && rw.flush {
		err = rw.rc.Flush()
	}
	return n, err
}

// Serve listens on the unix socket socketPath (mode 0600, its directory made
// 0700 when created) and serves h until ctx ends. A stale socket left by an
// agent that is gone is replaced; a live one is an error.
func Serve(ctx context.Context, socketPath string, h http.Handler) error {
	if err := os.MkdirAll(filepath.Dir(socketPath), 0o700); err != nil {
		return err
	}
	if err := removeStale(socketPath); err != nil {
		return err
	}
	l, err := net.Listen("unix", socketPath)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", socketPath, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(socketPath, 0o600); err != nil {
		l.Close()
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests end with ctx: followers stop and Shutdown does not wait for them.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

func removeStale(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another agent is already serving on %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("checking the existing socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
