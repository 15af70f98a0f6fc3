package connect

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/streaming"
)

// ServeStream serves pods/exec, pods/attach and pods/portforward as
// kube-apiserver does: authorized as create (for GET as well, as
// kube-apiserver 1.32 authorizes WebSocket upgrades), the container chosen
// and checked against the pod, and the upgrade proxied to the pod's node's
// kubelet API (/exec, /attach, /portForward), authenticated as for pods/log.
// kubectl's WebSocket protocols are translated to SPDY toward the node by
// internal/streaming (k8s.io/apiserver's translators).
func (s *Server) ServeStream(w http.ResponseWriter, r *http.Request, rq *request.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		request.WriteError(w, request.MethodNotAllowed(fmt.Sprintf("%s is not supported on pods/%s (supported: GET, POST)", r.Method, rq.Subresource)))
		return
	}
	rq.Verb = "create"
	if !request.Authorize(w, rq, s.cfg.Authorize) {
		return
	}
	h, err := s.streamHandler(r, rq)
	if err != nil {
		if se := request.ToStatus(err); se.Code >= 500 {
			s.log.Error("stream request failed", "path", r.URL.Path, "user", rq.User.Name, "err", err)
		}
		request.WriteError(w, err)
		return
	}
	// The caller's credentials stop here: the node authenticates this server.
	r2 := r.Clone(r.Context())
	r2.Header.Del("Authorization")
	h.ServeHTTP(w, r2)
}

func (s *Server) streamHandler(r *http.Request, rq *request.Request) (http.Handler, error) {
	o, err := request.Get(r.Context(), s.cfg.Store, rq.Kind, rq.Namespace, rq.Name)
	if err != nil {
		return nil, err
	}
	pod := o.(*corev1.Pod)
	q := url.Values{}
	var nodePath string
	var opts streaming.StreamOptions
	switch rq.Subresource {
	case "exec", "attach":
		container, command, o, err := streamQuery(rq.Query)
		if err != nil {
			return nil, err
		}
		opts = o
		if rq.Subresource == "exec" {
			if len(command) == 0 {
				return nil, request.BadRequest("you must specify at least one command for the container")
			}
			q[corev1.ExecCommandParam] = command
		}
		if !opts.Stdin && !opts.Stdout && !opts.Stderr {
			return nil, request.BadRequest("you must specify at least 1 of stdin, stdout, stderr")
		}
		container, err = streamContainer(pod, container)
		if err != nil {
			return nil, err
		}
		for name, on := range map[string]bool{corev1.ExecStdinParam: opts.Stdin, corev1.ExecStdoutParam: opts.Stdout, corev1.ExecStderrParam: opts.Stderr, corev1.ExecTTYParam: opts.TTY} {
			if on {
				q.Set(name, "1")
			}
		}
		nodePath = path.Join("/", rq.Subresource, pod.Namespace, pod.Name, container)
	case "portforward":
		ports, err := portQuery(rq.Query)
		if err != nil {
			return nil, err
		}
		if len(ports) > 0 {
			q.Set(corev1.PortHeader, strings.Join(ports, ","))
		}
		nodePath = path.Join("/portForward", pod.Namespace, pod.Name)
	}
	if pod.Spec.NodeName == "" {
		return nil, request.BadRequest("pod %s does not have a host assigned", pod.Name)
	}
	if s.cfg.Node == nil {
		return nil, request.Unavailable(fmt.Sprintf("pods/%s of pod %s is not available: this API server has no way to reach node %s; on the node, use `ballast exec` or `ballast port-forward`", rq.Subresource, pod.Name, pod.Spec.NodeName))
	}
	client, base, err := s.cfg.Node(r.Context(), pod.Spec.NodeName)
	if err != nil {
		return nil, request.Unavailable(fmt.Sprintf("pods/%s of pod %s: node %s cannot be reached: %v", rq.Subresource, pod.Name, pod.Spec.NodeName, err))
	}
	transport, err := upgradeTransport(client)
	if err != nil {
		return nil, request.InternalError(err)
	}
	loc := *base
	loc.Path = path.Join(base.Path, nodePath)
	loc.RawQuery = q.Encode()
	onError := &statusResponder{s: s, what: fmt.Sprintf("pods/%s of pod %s on node %s", rq.Subresource, pod.Name, pod.Spec.NodeName)}
	if rq.Subresource == "portforward" {
		return streaming.PortForward(&loc, transport, onError), nil
	}
	return streaming.RemoteCommand(&loc, transport, opts, onError), nil
}

// streamQuery reads the options of pods/exec and pods/attach
// (PodExecOptions, PodAttachOptions) from the query, as kube-apiserver's
// conversion does: container, command (repeated), and stdin, stdout,
// stderr, tty as booleans.
func streamQuery(q url.Values) (container string, command []string, o streaming.StreamOptions, err error) {
	b := func(name string) bool {
		v := q.Get(name)
		if v == "" || err != nil {
			return false
		}
		on, perr := strconv.ParseBool(v)
		if perr != nil {
			err = request.BadRequest("query parameter %s=%q is not a boolean", name, v)
		}
		return on
	}
	o = streaming.StreamOptions{Stdin: b("stdin"), Stdout: b("stdout"), Stderr: b("stderr"), TTY: b("tty")}
	return q.Get("container"), q["command"], o, err
}

// portQuery reads PodPortForwardOptions' ports (repeated or
// comma-separated).
func portQuery(q url.Values) ([]string, error) {
	var ports []string
	for _, v := range q["ports"] {
		for _, p := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
			if err != nil || n < 1 {
				return nil, request.BadRequest("port %q is not valid: it must be a number from 1 to 65535", p)
			}
			ports = append(ports, strconv.FormatUint(n, 10))
		}
	}
	return ports, nil
}

// streamContainer picks the container as kube-apiserver does: the one
// named, which must be the pod's (init and ephemeral containers included),
// or the only one.
func streamContainer(pod *corev1.Pod, container string) (string, error) {
	if container == "" {
		switch len(pod.Spec.Containers) {
		case 1:
			return pod.Spec.Containers[0].Name, nil
		case 0:
			return "", request.BadRequest("a container name must be specified for pod %s", pod.Name)
		}
		msg := fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, containerNames(pod.Spec.Containers))
		if len(pod.Spec.InitContainers) > 0 {
			msg += fmt.Sprintf(" or one of the init containers: %v", containerNames(pod.Spec.InitContainers))
		}
		return "", request.BadRequest("%s", msg)
	}
	all := append(containerNames(pod.Spec.Containers), containerNames(pod.Spec.InitContainers)...)
	for _, c := range pod.Spec.EphemeralContainers {
		all = append(all, c.Name)
	}
	if !slices.Contains(all, container) {
		return "", request.BadRequest("container %s is not valid for pod %s", container, pod.Name)
	}
	return container, nil
}

func containerNames(cs []corev1.Container) []string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return names
}

// upgradeTransport is the node client's transport for an upgrade: HTTP/1.1
// only (an upgrade cannot ride HTTP/2), with its dialer and TLS settings
// (the pinned node certificate, this server's client certificate).
func upgradeTransport(c *http.Client) (*http.Transport, error) {
	t, ok := c.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("the node client's transport is a %T, not an *http.Transport: it cannot be used for upgrades", c.Transport)
	}
	t = t.Clone()
	t.ForceAttemptHTTP2 = false
	if t.TLSClientConfig != nil {
		t.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	return t, nil
}

// statusResponder answers a failed proxy attempt with a Status, as
// kube-apiserver's responder does.
type statusResponder struct {
	s    *Server
	what string
}

func (sr *statusResponder) Error(w http.ResponseWriter, r *http.Request, err error) {
	var se *request.Error
	var st apierrors.APIStatus
	switch {
	case errors.As(err, &se):
	case errors.As(err, &st) && st.Status().Code == http.StatusBadRequest:
		// The proxy's own refusal: no upgrade was asked for.
		se = request.BadRequest("%s needs an upgrade request (SPDY or WebSocket), as kubectl exec, attach and port-forward send: %s", sr.what, st.Status().Message)
	default:
		sr.s.log.Warn("proxying a stream to the node failed", "what", sr.what, "err", err)
		se = request.Unavailable(fmt.Sprintf("%s: the node's kubelet API could not be reached: %v", sr.what, err))
	}
	request.WriteError(w, se)
}
