package fakecri

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// The CRI streaming calls, served as containerd serves them: Exec, Attach
// and PortForward answer a one-time URL on a streaming server on 127.0.0.1
// (k8s.io/cri-streaming, the server containerd and the kubelet use), which
// speaks the real SPDY and WebSocket protocols. What runs is fake:
//
//   - exec: the command is one of a few built-ins, run in-process:
//     "echo ARGS..." (stdout), "stderr ARGS..." (stderr), "cat" (stdin to
//     stdout), "exit N", and "tty", which says whether it has a terminal and
//     then prints "size ROWSxCOLS" for every resize until stdin ends.
//     Anything else exits 127.
//   - attach: prints "attached to NAME" and copies stdin to stdout.
//   - port forward: the fake sandbox's network is the host's loopback, so a
//     stream for port P is connected to 127.0.0.1:P.

type streamingState struct {
	once sync.Once
	srv  streaming.Server
	err  error
}

var streamingServers sync.Map // *Runtime -> *streamingState

// streamingServer starts the runtime's streaming server on first use; it
// stops with the runtime.
func (r *Runtime) streamingServer() (streaming.Server, error) {
	v, _ := streamingServers.LoadOrStore(r, &streamingState{})
	st := v.(*streamingState)
	st.once.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			st.err = fmt.Errorf("fake runtime: streaming server: %w", err)
			return
		}
		cfg := streaming.DefaultConfig
		cfg.Addr = ln.Addr().String()
		cfg.BaseURL = &url.URL{Scheme: "http", Host: ln.Addr().String()}
		srv, err := streaming.NewServer(cfg, &streamRuntime{r: r})
		if err != nil {
			ln.Close()
			st.err = err
			return
		}
		hs := &http.Server{Handler: srv}
		go hs.Serve(ln)
		go func() {
			<-r.stopped
			hs.Close()
			streamingServers.Delete(r)
		}()
		st.srv = srv
	})
	return st.srv, st.err
}

// runningContainer checks that id is a running container.
func (r *Runtime) runningContainer(id string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return "", status.Errorf(codes.NotFound, "container %q not found", id)
	}
	if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return "", status.Errorf(codes.FailedPrecondition, "container %q is not running", id)
	}
	return c.Name, nil
}

func (s *runtimeService) Exec(_ context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if _, err := s.r.runningContainer(req.ContainerId); err != nil {
		return nil, err
	}
	srv, err := s.r.streamingServer()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return srv.GetExec(req)
}

func (s *runtimeService) Attach(_ context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if _, err := s.r.runningContainer(req.ContainerId); err != nil {
		return nil, err
	}
	srv, err := s.r.streamingServer()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return srv.GetAttach(req)
}

func (s *runtimeService) PortForward(_ context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	s.r.mu.Lock()
	sb, ok := s.r.sandboxes[req.PodSandboxId]
	ready := ok && sb.Ready()
	s.r.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "sandbox %q not found", req.PodSandboxId)
	}
	if !ready {
		return nil, status.Errorf(codes.FailedPrecondition, "sandbox %q is not ready", req.PodSandboxId)
	}
	srv, err := s.r.streamingServer()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return srv.GetPortForward(req)
}

// streamRuntime runs the fake processes behind the streaming server.
type streamRuntime struct{ r *Runtime }

func (sr *streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	if _, err := sr.r.runningContainer(id); err != nil {
		return err
	}
	if len(cmd) == 0 {
		return fmt.Errorf("no command")
	}
	switch cmd[0] {
	case "echo":
		fmt.Fprintln(out, strings.Join(cmd[1:], " "))
	case "stderr":
		if errOut == nil {
			errOut = out // with a terminal, one stream
		}
		fmt.Fprintln(errOut, strings.Join(cmd[1:], " "))
	case "cat":
		if in != nil {
			if _, err := io.Copy(out, in); err != nil {
				return err
			}
		}
	case "exit":
		code, _ := strconv.Atoi(strings.Join(cmd[1:], ""))
		if code != 0 {
			return utilexec.CodeExitError{Err: fmt.Errorf("exit %d", code), Code: code}
		}
	case "tty":
		if tty {
			fmt.Fprintln(out, "tty")
		} else {
			fmt.Fprintln(out, "not a tty")
		}
		done := make(chan struct{})
		if in != nil {
			go func() { io.Copy(io.Discard, in); close(done) }()
		}
		for {
			select {
			case sz, ok := <-resize:
				if !ok {
					resize = nil
					continue
				}
				fmt.Fprintf(out, "size %dx%d\n", sz.Height, sz.Width)
			case <-done:
				return nil
			case <-ctx.Done():
				return nil
			}
		}
	default:
		if errOut != nil {
			fmt.Fprintf(errOut, "fakecri: %s: not found\n", cmd[0])
		}
		return utilexec.CodeExitError{Err: fmt.Errorf("%s: not found", cmd[0]), Code: 127}
	}
	return nil
}

func (sr *streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, _ io.WriteCloser, _ bool, _ <-chan remotecommandserver.TerminalSize) error {
	name, err := sr.r.runningContainer(id)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	fmt.Fprintf(out, "attached to %s\n", name)
	if in == nil {
		<-ctx.Done()
		return nil
	}
	_, err = io.Copy(out, bufio.NewReader(in))
	return err
}

func (sr *streamRuntime) PortForward(ctx context.Context, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("fake sandbox: port %d: %w", port, err)
	}
	defer c.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(c, stream); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(stream, c); done <- struct{}{} }()
	<-done
	<-done
	return nil
}
