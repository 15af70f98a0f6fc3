package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// `ballast exec` and `ballast port-forward` on `ballast node` with no API
// server at all, over the root-only socket.
func TestLocalExecPortForward(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	n.write("web.yaml", streamManifest("web", env.HelloImage()))
	pod := "web-" + n.name
	n.waitPod("web", "Running", running)

	ballast := func(stdin io.Reader, args ...string) (string, string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, n.bin, args...)
		var out, errOut bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.String(), errOut.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), 0
	}
	dd := "--data-dir=" + n.dataDir

	// Exit codes, by the pod's full name and by its manifest's name.
	if out, errOut, code := ballast(nil, "exec", dd, pod, "-c", "app", "--", "sh", "-c", "exit 3"); code != 3 || !strings.Contains(errOut, "command terminated with exit code 3") {
		t.Errorf("ballast exec -- sh -c 'exit 3': exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := ballast(nil, "exec", dd, "web", "-c", "web", "--", "echo", "local"); code != 0 || out != "local\n" {
		t.Errorf("ballast exec web -- echo: exit %d %q %s", code, out, errOut)
	}
	// Without -c: the first container, said on stderr.
	if out, errOut, code := ballast(nil, "exec", dd, pod, "--", "sh", "-c", "echo $POD_NAME"); code != 0 || out != "port-8080\n" || !strings.Contains(errOut, `Defaulted container "app"`) {
		t.Errorf("ballast exec without -c: exit %d %q %q", code, out, errOut)
	}
	in := bytes.Repeat([]byte("local stdin "), 50000)
	if out, errOut, code := ballast(bytes.NewReader(in), "exec", dd, "-i", pod, "-c", "app", "--", "cat"); code != 0 || out != string(in) {
		t.Errorf("ballast exec -i cat: exit %d, %d of %d bytes; %s", code, len(out), len(in), errOut)
	}
	// Mistakes say what is wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", dd, "nope", "--", "true"}, `pod "nope" not found`},
		{[]string{"exec", dd, pod, "-c", "nope", "--", "true"}, `container "nope" not found`},
		{[]string{"exec", dd, pod, "true"}, "ballast exec POD -- COMMAND"},
		{[]string{"port-forward", dd, pod, "http-alt"}, `no container port named "http-alt"`},
	} {
		if _, errOut, code := ballast(nil, tc.args...); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("ballast %s: exit %d %q, want an error with %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}

	// -it on a terminal.
	testExecTTY(t, exec.Command(n.bin, "exec", dd, "-it", pod, "-c", "app", "--", "sh"))

	// port-forward: two ports, 20 connections at once through each.
	forwardAndGet(t, exec.Command(n.bin, "port-forward", dd, "--address", "127.0.0.1", pod, ":8080", ":8081"))
}
