package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/streaming"
)

// exitCodeError ends the process with a command's exit code, as kubectl
// exec does ("command terminated with exit code N").
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string {
	return fmt.Sprintf("command terminated with exit code %d", e.code)
}

// ExitCode is the process exit code for an error a command returned: a
// remote command's own code for `ballast exec`, else 1.
func ExitCode(err error) int {
	var ec exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	return 1
}

// podTarget is a pod on the local agent, found by name as `ballast logs`
// finds it.
type podTarget struct {
	dataDir, namespace string
}

func (p *podTarget) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.dataDir, "data-dir", "/var/lib/ballast", "the node agent's data directory")
	cmd.Flags().StringVarP(&p.namespace, "namespace", "n", "", "the pod's namespace (default: default)")
}

func (p *podTarget) resolve(ctx context.Context, name string) (*corev1.Pod, error) {
	list, err := localapi.NewClient(socketPath(p.dataDir)).Pods(ctx)
	if err != nil {
		return nil, err
	}
	return localapi.ResolvePod(list, name, p.namespace)
}

func newExecCmd() *cobra.Command {
	var target podTarget
	var container string
	var stdin, tty bool
	cmd := &cobra.Command{
		Use:   "exec POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARGS...]",
		Short: "Run a command in a container of the running node agent's pod (no API server needed)",
		Long: `Run a command in a container, as kubectl exec does, through the node agent's
root-only socket: no API server is involved. POD is the pod's full name
(hello-<node>) or its manifest's name when that is unique. With -i the
command reads this standard input; with -t as well it gets a terminal.
The command's exit code is ballast's.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return errors.New("give the pod, then -- and the command: ballast exec POD -- COMMAND [ARGS...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			quietKlog()
			ctx := cmd.Context()
			pod, err := target.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			name, note, err := localapi.ResolveContainer(pod, container)
			if err != nil {
				return err
			}
			if note != "" {
				fmt.Fprintln(os.Stderr, note)
			}
			s := streaming.Streams{Stdout: os.Stdout, Stderr: os.Stderr}
			var restore func()
			if stdin {
				s.Stdin = os.Stdin
				if tty {
					if !term.IsTerminal(int(os.Stdin.Fd())) {
						fmt.Fprintln(os.Stderr, "Unable to use a TTY - input is not a terminal or the right kind of file")
					} else {
						s.TTY = true
						restore, s.Resize, err = rawTerminal(ctx)
						if err != nil {
							return err
						}
					}
				}
			}
			c := streaming.NewSocketClient(socketPath(target.dataDir))
			err = c.Exec(ctx, pod.Namespace, pod.Name, name, args[1:], s)
			if restore != nil {
				restore()
			}
			var ee utilexec.ExitError
			if errors.As(err, &ee) && ee.Exited() {
				return exitCodeError{code: ee.ExitStatus()}
			}
			if err != nil {
				return fmt.Errorf("exec in container %q of pod %s/%s: %w", name, pod.Namespace, pod.Name, err)
			}
			return nil
		},
	}
	target.register(cmd)
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (default: the only one, or kubectl.kubernetes.io/default-container, or the first)")
	cmd.Flags().BoolVarP(&stdin, "stdin", "i", false, "pass standard input to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a terminal (with -i, when standard input is one)")
	return cmd
}

// rawTerminal puts standard input in raw mode, as kubectl exec -it does, and
// follows the terminal's size (SIGWINCH) until restore is called.
func rawTerminal(ctx context.Context) (restore func(), sizes remotecommand.TerminalSizeQueue, err error) {
	fd := int(os.Stdin.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, nil, fmt.Errorf("putting the terminal in raw mode: %w", err)
	}
	q := &sizeQueue{ch: make(chan remotecommand.TerminalSize, 1), done: make(chan struct{})}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	send := func() {
		w, h, err := term.GetSize(fd)
		if err != nil || w == 0 || h == 0 {
			return
		}
		select {
		case <-q.ch: // a newer size replaces one not yet sent
		default:
		}
		q.ch <- remotecommand.TerminalSize{Width: uint16(w), Height: uint16(h)}
	}
	send()
	go func() {
		for {
			select {
			case <-winch:
				send()
			case <-q.done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(q.done)
		_ = term.Restore(fd, old)
	}, q, nil
}

// sizeQueue is a remotecommand.TerminalSizeQueue fed from SIGWINCH.
type sizeQueue struct {
	ch   chan remotecommand.TerminalSize
	done chan struct{}
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case s := <-q.ch:
		return &s
	case <-q.done:
		return nil
	}
}
