package apiserver

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// logParams are the pods/log query parameters passed to the node.
var logParams = []string{"follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes"}

// serveLog proxies pods/log to the agent of the pod's node.
func (s *Server) serveLog(w http.ResponseWriter, r *http.Request, rq *request) error {
	o, err := s.getObject(r.Context(), rq.kind, rq.namespace, rq.name)
	if err != nil {
		return err
	}
	pod := o.(*corev1.Pod)
	var names []string
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	container := rq.query.Get("container")
	switch {
	case container == "" && len(pod.Spec.Containers) == 1:
		container = pod.Spec.Containers[0].Name
	case container == "":
		return badRequest("a container name must be specified for pod %s, choose one of: %v", pod.Name, names)
	case !contains(names, container):
		return badRequest("container %s is not valid for pod %s (its containers: %s)", container, pod.Name, strings.Join(names, ", "))
	}
	if pod.Spec.NodeName == "" {
		return badRequest("pod %s is not bound to a node, so it has no logs", pod.Name)
	}
	if s.cfg.NodeLogs == nil {
		return unavailable(fmt.Sprintf("logs of pod %s are not available: this API server has no way to reach node %s's agent; read them on the node with `ballast logs %s`", pod.Name, pod.Spec.NodeName, pod.Name))
	}
	client, base, err := s.cfg.NodeLogs(r.Context(), pod.Spec.NodeName)
	if err != nil {
		return unavailable(fmt.Sprintf("logs of pod %s: node %s cannot be reached: %v", pod.Name, pod.Spec.NodeName, err))
	}
	u := *base
	u.Path = path.Join(base.Path, "containerLogs", pod.Namespace, pod.Name, container)
	q := url.Values{}
	for _, p := range logParams {
		if v := rq.query.Get(p); v != "" {
			q.Set(p, v)
		}
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return internalError(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return unavailable(fmt.Sprintf("logs of pod %s: node %s's agent did not answer: %v", pod.Name, pod.Spec.NodeName, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		st := newStatus(int32(resp.StatusCode), "", fmt.Sprintf("logs of pod %s from node %s: %s", pod.Name, pod.Spec.NodeName, strings.TrimSpace(string(msg))))
		if resp.StatusCode == http.StatusNotFound {
			st.s.Reason = "NotFound"
		}
		return st
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			_ = rc.Flush()
		}
		if err != nil {
			return nil
		}
	}
}
