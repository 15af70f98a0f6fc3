package connect

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/proxy"

	"github.com/ballast-dev/ballast/internal/apiserver/request"
)

// ServeProxy serves nodes/NAME/proxy/PATH (to the node's kubelet API,
// through the node dialer, authenticated as the API server) and
// pods/NAME[:PORT]/proxy/PATH (to the pod's IP and port), with
// apimachinery's upgrade-aware proxy.
func (s *Server) ServeProxy(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	scheme, name, port, ok := utilnet.SplitSchemeNamePort(rq.Name)
	if !ok || name == "" {
		return request.BadRequest("invalid %s proxy request %q: want NAME, NAME:PORT or SCHEME:NAME:PORT", strings.TrimSuffix(rq.Resource, "s"), rq.Name)
	}
	var loc *url.URL
	var transport http.RoundTripper
	switch rq.Resource {
	case "nodes":
		if port != "" || scheme != "" {
			return request.BadRequest("node %s: Ballast proxies only to the node's kubelet API: use nodes/%s/proxy/PATH, without a scheme or port", name, name)
		}
		if _, err := request.Get(r.Context(), s.cfg.Store, rq.Kind, "", name); err != nil {
			return err
		}
		if s.cfg.Node == nil {
			return request.Unavailable(fmt.Sprintf("node %s cannot be reached: this API server has no way to reach nodes' kubelet API", name))
		}
		client, base, err := s.cfg.Node(r.Context(), name)
		if err != nil {
			return request.Unavailable(fmt.Sprintf("node %s cannot be reached: %v", name, err))
		}
		u := *base
		loc, transport = &u, client.Transport
		if transport == nil {
			transport = http.DefaultTransport
		}
	case "pods":
		o, err := request.Get(r.Context(), s.cfg.Store, rq.Kind, rq.Namespace, name)
		if err != nil {
			return err
		}
		pod := o.(*corev1.Pod)
		if port == "" {
			port = firstContainerPort(pod)
		}
		// As kube-apiserver: only a pod IP that is a global unicast address
		// (not loopback, link-local, unset) is proxied to.
		if ip := net.ParseIP(pod.Status.PodIP); ip == nil || !ip.IsGlobalUnicast() {
			return request.BadRequest("address not allowed")
		}
		loc = &url.URL{Scheme: scheme, Host: pod.Status.PodIP}
		if port != "" {
			loc.Host = net.JoinHostPort(pod.Status.PodIP, port)
		}
		transport = s.podTransport
	default:
		return request.NewStatus(http.StatusNotFound, "", fmt.Sprintf("%s has no subresource \"proxy\"", rq.Resource))
	}
	if loc.Scheme == "" {
		loc.Scheme = "http"
	}
	// The handler keeps a trailing slash of the request's path.
	loc.Path = path.Join("/", loc.Path, rq.ProxyPath)
	loc.RawQuery = r.URL.RawQuery
	h := proxy.NewUpgradeAwareHandler(loc, transport, false, false, proxyResponder{})
	h.UseRequestLocation = false
	h.ServeHTTP(w, r)
	return nil
}

// firstContainerPort is the port kube-apiserver proxies a pod to when the
// request names none: the first declared container port.
func firstContainerPort(pod *corev1.Pod) string {
	for _, c := range pod.Spec.Containers {
		if len(c.Ports) > 0 {
			return fmt.Sprint(c.Ports[0].ContainerPort)
		}
	}
	return ""
}

// proxyResponder answers a failed proxied request with a Status, as
// kube-apiserver does (503 when the target cannot be reached).
type proxyResponder struct{}

func (proxyResponder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	msg := fmt.Sprintf("error trying to reach the proxied address: %v", err)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		request.WriteStatus(w, request.NewStatus(http.StatusGatewayTimeout, "", msg).Status)
		return
	}
	request.WriteStatus(w, request.NewStatus(http.StatusServiceUnavailable, "", msg).Status)
}

// newPodTransport is the transport to pods' IPs: bounded dials, no proxy
// from the environment.
func newPodTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
}
