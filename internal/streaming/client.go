package streaming

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	clientspdy "k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// Client opens streams on a node's streaming paths with client-go's SPDY
// clients (remotecommand, portforward), as kubectl does: over the agent's
// unix socket for `ballast exec` and `ballast port-forward`.
type Client struct {
	base *url.URL
	// transport only dials (SPDY upgrades take the connection over).
	transport *http.Transport
}

// NewClient reaches the streaming paths under base through transport.
func NewClient(base *url.URL, transport *http.Transport) *Client {
	return &Client{base: base, transport: transport}
}

// NewSocketClient reaches the agent on its unix socket.
func NewSocketClient(socketPath string) *Client {
	return NewClient(&url.URL{Scheme: "http", Host: "ballast"}, &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
	})
}

// Streams are the local ends of an exec or attach session.
type Streams struct {
	Stdin          io.Reader // nil: no stdin
	Stdout, Stderr io.Writer // nil: not wanted (Stderr is dropped with TTY)
	TTY            bool
	// Resize delivers terminal sizes with TTY (nil: none).
	Resize remotecommand.TerminalSizeQueue
}

// Exec runs cmd in a container and returns when it ends. A non-zero exit
// is an error implementing k8s.io/client-go/util/exec.ExitError.
func (c *Client) Exec(ctx context.Context, namespace, pod, container string, cmd []string, s Streams) error {
	q := streamQuery(s)
	for _, a := range cmd {
		q.Add(corev1.ExecCommandParam, a)
	}
	return c.stream(ctx, c.url(q, "exec", namespace, pod, container), s)
}

// Attach attaches to a container's main process until it ends or ctx does.
func (c *Client) Attach(ctx context.Context, namespace, pod, container string, s Streams) error {
	return c.stream(ctx, c.url(streamQuery(s), "attach", namespace, pod, container), s)
}

func streamQuery(s Streams) url.Values {
	q := url.Values{}
	set := func(name string, on bool) {
		if on {
			q.Set(name, "1")
		}
	}
	set(corev1.ExecStdinParam, s.Stdin != nil)
	set(corev1.ExecStdoutParam, s.Stdout != nil)
	set(corev1.ExecStderrParam, s.Stderr != nil && !s.TTY)
	set(corev1.ExecTTYParam, s.TTY)
	return q
}

func (c *Client) url(q url.Values, elem ...string) *url.URL {
	u := c.base.JoinPath(elem...)
	u.RawQuery = q.Encode()
	return u
}

func (c *Client) roundTripper() (*spdy.SpdyRoundTripper, error) {
	return spdy.NewRoundTripperWithConfig(spdy.RoundTripperConfig{UpgradeTransport: c.transport, PingPeriod: 5 * time.Second})
}

func (c *Client) stream(ctx context.Context, u *url.URL, s Streams) error {
	rt, err := c.roundTripper()
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewSPDYExecutorForTransports(rt, clientspdy.NewUpgraderForStreaming(rt), http.MethodPost, u)
	if err != nil {
		return err
	}
	o := remotecommand.StreamOptions{Stdin: s.Stdin, Stdout: s.Stdout, Tty: s.TTY, TerminalSizeQueue: s.Resize}
	if !s.TTY {
		o.Stderr = s.Stderr
	}
	return ex.StreamWithContext(ctx, o)
}

// ForwardPorts listens on addresses for each of ports ("LOCAL:REMOTE",
// "PORT", ":REMOTE" as kubectl port-forward takes them) and forwards every
// connection to the pod, until ctx ends or the connection to the node
// breaks. ready is closed once it listens; out gets kubectl's "Forwarding
// from ..." lines.
func (c *Client) ForwardPorts(ctx context.Context, namespace, pod string, addresses, ports []string, ready chan struct{}, out, errOut io.Writer) error {
	rt, err := c.roundTripper()
	if err != nil {
		return err
	}
	dialer := clientspdy.NewDialerForStreaming(clientspdy.NewUpgraderForStreaming(rt), &http.Client{Transport: rt}, http.MethodPost, c.url(nil, "portForward", namespace, pod))
	pf, err := portforward.NewOnAddressesForStreamingWithContext(ctx, dialer, addresses, ports, ready, out, errOut)
	if err != nil {
		return err
	}
	return pf.ForwardPorts()
}
