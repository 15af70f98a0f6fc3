package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/kubeletapi"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// NodeDialer tells how to reach a node's kubelet API: an HTTP client and
// the base URL its paths (/containerLogs/..., /metrics, /stats/summary, ...)
// are joined to.
type NodeDialer func(ctx context.Context, node string) (*http.Client, *url.URL, error)

// nodeDialer reaches nodes' kubelet HTTPS API: at the Node's InternalIP and
// status.daemonEndpoints.kubeletEndpoint.port, with a client certificate
// for user system:kube-apiserver issued from the server's CA (nodes trust it
// through --client-ca-file), and trusting the node's serving certificate
// only if its SHA-256 matches the one the node pinned in its Node's
// annotation (wellknown.AnnotationServingCertSHA256; only the node itself
// may write its Node). A Node without the pin must present a certificate
// from the server's CA. Nodes in local (ballast up's own) are reached
// through their dialer instead.
type nodeDialer struct {
	pki   *auth.PKI
	local map[string]NodeDialer

	mu      sync.Mutex
	url     string // the server's own URL, set once it listens
	api     kubernetes.Interface
	cert    tls.Certificate
	clients map[string]*http.Client // by pin
}

// listening records the server's URL: Nodes are read through it.
func (d *nodeDialer) listening(serverURL string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.url = serverURL
}

// initLocked makes the client certificate and the loopback API client once.
func (d *nodeDialer) initLocked() error {
	if d.api != nil {
		return nil
	}
	if d.url == "" {
		return fmt.Errorf("the API server is starting")
	}
	certPEM, keyPEM, err := d.pki.IssueClientCert(auth.User{Name: "system:kube-apiserver", Groups: []string{auth.GroupMasters}})
	if err != nil {
		return fmt.Errorf("issuing the client certificate for nodes: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	api, err := kubernetes.NewForConfig(&rest.Config{
		Host:            d.url,
		TLSClientConfig: rest.TLSClientConfig{CAData: d.pki.CAPEM(), CertData: certPEM, KeyData: keyPEM},
		UserAgent:       "ballast-server/nodes",
		ContentConfig:   rest.ContentConfig{ContentType: "application/json"},
	})
	if err != nil {
		return err
	}
	d.api, d.cert, d.clients = api, cert, map[string]*http.Client{}
	return nil
}

// client is the loopback API client, acting as system:kube-apiserver.
func (d *nodeDialer) client() (kubernetes.Interface, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.initLocked(); err != nil {
		return nil, err
	}
	return d.api, nil
}

// Nodes lists the Nodes matching sel (for the metrics API).
func (d *nodeDialer) Nodes(ctx context.Context, sel labels.Selector) ([]corev1.Node, error) {
	api, err := d.client()
	if err != nil {
		return nil, err
	}
	l, err := api.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// Pods lists the pods of namespace matching sel (for the metrics API).
func (d *nodeDialer) Pods(ctx context.Context, namespace string, sel labels.Selector) ([]corev1.Pod, error) {
	api, err := d.client()
	if err != nil {
		return nil, err
	}
	l, err := api.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// dial is the server's NodeDialer.
func (d *nodeDialer) dial(ctx context.Context, node string) (*http.Client, *url.URL, error) {
	if l := d.local[node]; l != nil {
		return l(ctx, node)
	}
	api, err := d.client()
	if err != nil {
		return nil, nil, err
	}
	n, err := api.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	host, port, err := kubeletAddress(n)
	if err != nil {
		return nil, nil, err
	}
	pin := n.Annotations[wellknown.AnnotationServingCertSHA256]
	d.mu.Lock()
	c := d.clients[pin]
	if c == nil {
		c = kubeletapi.PinnedClient(d.cert, pin, d.pki.CAPool())
		d.clients[pin] = c
	}
	d.mu.Unlock()
	return c, &url.URL{Scheme: "https", Host: net.JoinHostPort(host, fmt.Sprint(port))}, nil
}

// kubeletAddress is where a Node says its kubelet API listens.
func kubeletAddress(n *corev1.Node) (string, int32, error) {
	port := n.Status.DaemonEndpoints.KubeletEndpoint.Port
	if port == 0 {
		return "", 0, fmt.Errorf("node %s publishes no kubelet port (status.daemonEndpoints.kubeletEndpoint.port): start its `ballast node` with an API server and --port", n.Name)
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && a.Address != "" {
			return a.Address, port, nil
		}
	}
	return "", 0, fmt.Errorf("node %s has no InternalIP address (status.addresses)", n.Name)
}
