package connect

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/request"
)

// logParams are the pods/log query parameters passed to the node.
var logParams = []string{"follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes"}

// ServeLog proxies pods/log to the agent of the pod's node.
func (s *Server) ServeLog(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	o, err := request.Get(r.Context(), s.cfg.Store, rq.Kind, rq.Namespace, rq.Name)
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
	container := rq.Query.Get("container")
	switch {
	case container == "" && len(pod.Spec.Containers) == 1:
		container = pod.Spec.Containers[0].Name
	case container == "":
		return request.BadRequest("a container name must be specified for pod %s, choose one of: %v", pod.Name, names)
	case !slices.Contains(names, container):
		return request.BadRequest("container %s is not valid for pod %s (its containers: %s)", container, pod.Name, strings.Join(names, ", "))
	}
	if pod.Spec.NodeName == "" {
		return request.BadRequest("pod %s is not bound to a node, so it has no logs", pod.Name)
	}
	if s.cfg.Node == nil {
		return request.Unavailable(fmt.Sprintf("logs of pod %s are not available: this API server has no way to reach node %s's agent; read them on the node with `ballast logs %s`", pod.Name, pod.Spec.NodeName, pod.Name))
	}
	client, base, err := s.cfg.Node(r.Context(), pod.Spec.NodeName)
	if err != nil {
		return request.Unavailable(fmt.Sprintf("logs of pod %s: node %s cannot be reached: %v", pod.Name, pod.Spec.NodeName, err))
	}
	u := *base
	u.Path = path.Join(base.Path, "containerLogs", pod.Namespace, pod.Name, container)
	q := url.Values{}
	for _, p := range logParams {
		if v := rq.Query.Get(p); v != "" {
			q.Set(p, v)
		}
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return request.InternalError(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return request.Unavailable(fmt.Sprintf("logs of pod %s: node %s's agent did not answer: %v", pod.Name, pod.Spec.NodeName, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nodeResponseError(resp.StatusCode, strings.TrimSpace(string(msg)), "pods/log", pod.Name, pod.Spec.NodeName)
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

// nodeResponseError turns a node's refusal into the Status kube-apiserver
// gives for it (its generic HTTP response checker of node streams): the
// node's 400 is a BadRequest carrying the node's words, 500 an internal
// error, anything else a Status of that code naming the object.
func nodeResponseError(code int, body, resource, name, node string) error {
	switch code {
	case http.StatusBadRequest:
		return request.BadRequest("%s", body)
	case http.StatusInternalServerError:
		return request.InternalError(fmt.Errorf("node %s: %s", node, body))
	}
	st := request.NewStatus(int32(code), request.ReasonForCode(int32(code)), fmt.Sprintf("%s %s from node %s: %s", resource, name, node, body))
	st.Status.Details = &metav1.StatusDetails{Name: name, Kind: resource}
	return st
}
