package executor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// runHook runs a postStart or preStop handler of a container, as the kubelet:
// exec in the container, an HTTP GET to the pod, or a sleep. It returns what
// went wrong.
func (e *Executor) runHook(ctx context.Context, h *corev1.LifecycleHandler, ctr *corev1.Container, containerID, host string) error {
	switch {
	case h.Exec != nil:
		timeout := 60 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		out, code, err := e.Exec(ctx, containerID, h.Exec.Command, timeout)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("command %q exited with %d: %s", strings.Join(h.Exec.Command, " "), code, strings.TrimSpace(out))
		}
		return nil
	case h.HTTPGet != nil:
		port, err := hookPort(h.HTTPGet.Port, ctr)
		if err != nil {
			return err
		}
		hh := h.HTTPGet.Host
		if hh == "" {
			hh = host
		}
		scheme := strings.ToLower(string(h.HTTPGet.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		path := h.HTTPGet.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		url := scheme + "://" + net.JoinHostPort(hh, strconv.Itoa(port)) + path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for _, hd := range h.HTTPGet.HTTPHeaders {
			req.Header.Add(hd.Name, hd.Value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err // Get "URL": ..., as the kubelet reports it
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP lifecycle hook (%s) for Container %q in Pod failed - error: received status code %d, message: %q", path, ctr.Name, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return nil
	case h.Sleep != nil:
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		case <-ctx.Done():
		}
		return nil
	case h.TCPSocket != nil:
		// Deprecated and not run by the kubelet either.
		return nil
	}
	return nil
}

func hookPort(p intstr.IntOrString, ctr *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return int(p.IntVal), nil
	}
	for _, cp := range ctr.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("port %q is not a named port of container %q", p.StrVal, ctr.Name)
}
