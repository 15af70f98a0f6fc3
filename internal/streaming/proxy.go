package streaming

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/proxy"
	translator "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// StreamOptions are the streams of an exec or attach session.
type StreamOptions struct {
	Stdin, Stdout, Stderr, TTY bool
}

// RemoteCommand proxies an exec or attach upgrade request to location, as
// the kubelet and kube-apiserver do: SPDY (and the older WebSocket
// protocols) pass through apimachinery's upgrade-aware proxy; a WebSocket
// request for v5.channel.k8s.io (kubectl 1.30+) is translated to SPDY
// toward location by k8s.io/apiserver's StreamTranslatorHandler.
// transport dials location (nil: plain TCP); errors reaching it go to
// onError.
func RemoteCommand(location *url.URL, transport http.RoundTripper, o StreamOptions, onError proxy.ErrorResponder) http.Handler {
	upgrade := upgradeProxy(location, transport, onError)
	tr := translator.NewStreamTranslatorHandler(location, transport, 0, translator.Options{
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Tty: o.TTY,
	})
	return translator.NewTranslatingHandler(upgrade, tr, wsstream.IsWebSocketRequestWithStreamCloseProtocol)
}

// PortForward proxies a port-forward upgrade request to location: SPDY
// passes through; SPDY tunneled over WebSocket (kubectl 1.31+'s
// portforward.k8s.io tunneling protocol) is unwrapped by k8s.io/apiserver's
// TunnelingHandler first.
func PortForward(location *url.URL, transport http.RoundTripper, onError proxy.ErrorResponder) http.Handler {
	upgrade := upgradeProxy(location, transport, onError)
	return translator.NewTranslatingHandler(upgrade, translator.NewTunnelingHandler(upgrade), wsstream.IsWebSocketRequestWithTunnelingProtocol)
}

func upgradeProxy(location *url.URL, transport http.RoundTripper, onError proxy.ErrorResponder) *proxy.UpgradeAwareHandler {
	h := proxy.NewUpgradeAwareHandler(location, transport, false, true, onError)
	// The stream's upstream must not send the client elsewhere.
	h.RejectForwardingRedirects = true
	return h
}

// textResponder answers a refused or failed proxy attempt as the kubelet
// does, with the error as text: the proxy's own refusals (no upgrade
// requested: 400) keep their code, failures to reach the runtime's
// streaming server are 500.
type textResponder struct{ log *slog.Logger }

func (r textResponder) Error(w http.ResponseWriter, req *http.Request, err error) {
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Code >= 400 && st.Status().Code < 500 {
		http.Error(w, err.Error(), int(st.Status().Code))
		return
	}
	r.log.Warn("proxying a stream to the runtime failed", "path", req.URL.Path, "err", err)
	http.Error(w, "proxying the stream to the container runtime failed: "+err.Error(), http.StatusInternalServerError)
}

// stripCredentials removes the caller's credentials from a request before it
// is proxied on: the upstream (a node, or the runtime's streaming server)
// authenticates the proxy, never the original caller's token.
func stripCredentials(r *http.Request) *http.Request {
	if r.Header.Get("Authorization") == "" {
		return r
	}
	r2 := r.Clone(r.Context())
	r2.Header.Del("Authorization")
	return r2
}
