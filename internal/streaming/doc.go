// Package streaming owns streaming into containers, the kubelet's way:
//
//   - on the node, Handler serves /exec, /attach and /portForward (the
//     kubelet API's paths, on the HTTPS port and the local socket): it finds
//     the container or sandbox among the agent's pods, asks the runtime for
//     a streaming URL (CRI Exec, Attach, PortForward) and proxies the
//     client's upgrade request to the runtime's streaming server;
//   - RemoteCommand and PortForward are that proxy, shared with the API
//     server's pods/exec, pods/attach and pods/portforward: apimachinery's
//     upgrade-aware proxy for SPDY, and k8s.io/apiserver's translators for
//     kubectl's WebSocket protocols (v5.channel.k8s.io; SPDY tunneled over
//     WebSocket for port forwarding);
//   - Exec and ForwardPorts are the client of the local socket for
//     `ballast exec` and `ballast port-forward` (client-go's SPDY clients).
//
// No framing is written here: the protocols are the Kubernetes libraries'.
package streaming
