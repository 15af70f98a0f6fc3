package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

// Client talks to the agent's socket.
type Client struct {
	socketPath string
	http       *http.Client
}

// NewClient returns a client of the agent listening on socketPath.
func NewClient(socketPath string) *Client {
	return &Client{socketPath: socketPath, http: HTTPClient(socketPath)}
}

// HTTPClient is an HTTP client whose every request goes to the agent's
// socket, whatever the URL's host.
func HTTPClient(socketPath string) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &http.Client{Transport: tr}
}

// APIError is an answer of the agent other than 200.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string { return e.Message }

// LogOptions are the query of a log request.
type LogOptions struct {
	Follow     bool
	TailLines  int64 // -1: all lines; 0 or more: that many last lines
	Timestamps bool
	Previous   bool
	// SinceSeconds (when > 0) or SinceTime drop older lines.
	SinceSeconds int64
	SinceTime    *time.Time
	LimitBytes   int64 // 0: no limit
}

func (o LogOptions) query() url.Values {
	q := url.Values{}
	if o.Follow {
		q.Set("follow", "true")
	}
	if o.TailLines >= 0 {
		q.Set("tailLines", strconv.FormatInt(o.TailLines, 10))
	}
	if o.Timestamps {
		q.Set("timestamps", "true")
	}
	if o.Previous {
		q.Set("previous", "true")
	}
	if o.SinceSeconds > 0 {
		q.Set("sinceSeconds", strconv.FormatInt(o.SinceSeconds, 10))
	} else if o.SinceTime != nil {
		q.Set("sinceTime", o.SinceTime.UTC().Format(time.RFC3339))
	}
	if o.LimitBytes > 0 {
		q.Set("limitBytes", strconv.FormatInt(o.LimitBytes, 10))
	}
	return q
}

// do sends a GET and returns the response when it is 200.
func (c *Client) do(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := url.URL{Scheme: "http", Host: "ballast", Path: path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.connError(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		msg := strings.TrimSpace(string(b))
		if msg == "" {
			msg = resp.Status
		}
		return nil, &APIError{StatusCode: resp.StatusCode, Message: msg}
	}
	return resp, nil
}

// connError explains why the agent cannot be reached.
func (c *Client) connError(err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return err
	}
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("permission denied on %s: the Ballast agent's socket is root-only; run this command as root (e.g. with sudo) (%w)", c.socketPath, op)
	}
	return fmt.Errorf("cannot reach the Ballast agent at %s: is `ballast node` running with --data-dir %s? (%w)", c.socketPath, filepath.Dir(c.socketPath), op)
}

// Healthz checks that the agent answers.
func (c *Client) Healthz(ctx context.Context) error {
	resp, err := c.do(ctx, "/healthz", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Pods returns the pods the agent runs.
func (c *Client) Pods(ctx context.Context) (*corev1.PodList, error) {
	resp, err := c.do(ctx, "/pods", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list corev1.PodList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("decoding the agent's pod list: %w", err)
	}
	return &list, nil
}

// Logs copies a container's log to w; with Follow until the container stops
// or ctx ends (which is not an error).
func (c *Client) Logs(ctx context.Context, namespace, pod, container string, opts LogOptions, w io.Writer) error {
	p := "/containerLogs/" + url.PathEscape(namespace) + "/" + url.PathEscape(pod) + "/" + url.PathEscape(container)
	resp, err := c.do(ctx, p, opts.query())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("reading the log of %s/%s/%s: %w", namespace, pod, container, err)
	}
	return nil
}

// manifestName is the name in a static pod's manifest: its name without the
// "-<node>" suffix.
func manifestName(p *corev1.Pod) string {
	if p.Spec.NodeName != "" {
		if n, ok := strings.CutSuffix(p.Name, "-"+p.Spec.NodeName); ok {
			return n
		}
	}
	return p.Name
}

// matches reports whether name designates p: its full name, its manifest's
// name, or its manifest file's name (with or without extension).
func matches(p *corev1.Pod, name string, exact bool) bool {
	if p.Name == name {
		return true
	}
	if exact {
		return false
	}
	if manifestName(p) == name {
		return true
	}
	if f := p.Annotations[wellknown.AnnotationManifest]; f != "" {
		base := filepath.Base(f)
		return base == name || strings.TrimSuffix(base, filepath.Ext(base)) == name
	}
	return false
}

// ResolvePod finds the pod a user means by name in namespace ("" is
// "default"): its full name (web-node1) or, when that matches no pod and only
// one pod fits, its manifest's name (web).
func ResolvePod(list *corev1.PodList, name, namespace string) (*corev1.Pod, error) {
	if namespace == "" {
		namespace = "default"
	}
	var pods []corev1.Pod
	if list != nil {
		pods = list.Items
	}
	find := func(ns string, exact bool) []*corev1.Pod {
		var out []*corev1.Pod
		for i := range pods {
			if (ns == "" || pods[i].Namespace == ns) && matches(&pods[i], name, exact) {
				out = append(out, &pods[i])
			}
		}
		return out
	}
	if m := find(namespace, true); len(m) == 1 {
		return m[0], nil
	}
	m := find(namespace, false)
	switch len(m) {
	case 1:
		return m[0], nil
	case 0:
	default:
		names := make([]string, len(m))
		for i, p := range m {
			names[i] = p.Name
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%q is ambiguous in namespace %q: it may be %s; use the full pod name", name, namespace, strings.Join(names, ", "))
	}
	// Not here: maybe in another namespace.
	if m := find("", false); len(m) > 0 {
		nss := map[string]bool{}
		var hints []string
		for _, p := range m {
			if !nss[p.Namespace] {
				nss[p.Namespace] = true
				hints = append(hints, fmt.Sprintf("%s in namespace %s (use -n %s)", p.Name, p.Namespace, p.Namespace))
			}
		}
		sort.Strings(hints)
		return nil, fmt.Errorf("pod %q not found in namespace %q; found %s", name, namespace, strings.Join(hints, ", "))
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("pod %q not found: the agent runs no pods", name)
	}
	all := make([]string, len(pods))
	for i := range pods {
		all[i] = pods[i].Namespace + "/" + pods[i].Name
	}
	sort.Strings(all)
	return nil, fmt.Errorf("pod %q not found in namespace %q; pods: %s", name, namespace, strings.Join(all, ", "))
}

// ResolveContainer picks the container to show: container when given (it must
// exist), else the only one, else the one the
// kubectl.kubernetes.io/default-container annotation names, else the first,
// with a note saying so (as kubectl prints "Defaulted container ...").
func ResolveContainer(pod *corev1.Pod, container string) (name, note string, err error) {
	names := containerNames(pod)
	if container != "" {
		for _, n := range names {
			if n == container {
				return n, "", nil
			}
		}
		return "", "", fmt.Errorf("container %q not found in pod %s; its containers: %s", container, pod.Name, strings.Join(names, ", "))
	}
	if len(pod.Spec.Containers) == 0 {
		return "", "", fmt.Errorf("pod %s has no containers", pod.Name)
	}
	if len(pod.Spec.Containers) == 1 && len(pod.Spec.InitContainers) == 0 {
		return pod.Spec.Containers[0].Name, "", nil
	}
	if d := pod.Annotations[wellknown.AnnotationDefaultContainer]; d != "" {
		for _, c := range pod.Spec.Containers {
			if c.Name == d {
				return d, "", nil
			}
		}
	}
	first := pod.Spec.Containers[0].Name
	return first, fmt.Sprintf("Defaulted container %q out of: %s", first, strings.Join(names, ", ")), nil
}
