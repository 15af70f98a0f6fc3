package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// kubectl exec and port-forward through a separate `ballast server` to a
// separate `ballast node`: the server reaches the node's kubelet HTTPS API
// with its client certificate, pinning the node's serving certificate (TLS,
// HTTP/1.1 for the upgrade), as it does for logs. The node's own token may
// not stream on its kubelet API.
func TestNodeAPIStreaming(t *testing.T) {
	env := harness.Start(t)
	s := startAPIServer(t, env)
	n, kport := startAPINode(t, env, s)
	n.write("web.yaml", streamManifest("web", env.HelloImage()))
	pod := "web-" + n.name
	n.waitPod("web", "Running", running)
	n.eventually("the mirror pod Running in the API", 60*time.Second, func() error {
		out, err := s.k("get", "pod", pod, "-o", "jsonpath={.status.phase}")
		if err != nil || out != "Running" {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			k := kube{bin: s.kubectl, kubeconfig: s.kubeconfig, home: t.TempDir(), env: proto.env}
			out, log, code := k.run(nil, "exec", pod, "-c", "app", "-v=8", "--", "sh", "-c", "exit 3")
			if code != 3 {
				t.Errorf("kubectl exec -- sh -c 'exit 3': exit %d %q\n%s", code, out, log)
			}
			spoke(t, "kubectl exec", log, proto.upgrade)
			in := bytes.Repeat([]byte("to the node "), 40000)
			if out, errOut, code := k.run(bytes.NewReader(in), "exec", "-i", pod, "-c", "web", "--", "cat"); code != 0 || out != string(in) {
				t.Errorf("kubectl exec -i cat: exit %d, %d of %d bytes; %s", code, len(out), len(in), errOut)
			}
			spoke(t, "kubectl port-forward", testPortForward(t, k, pod), proto.upgrade)
		})
	}
	// On the node's kubelet API, its own credentials open no stream.
	req, _ := http.NewRequest("POST", fmt.Sprintf("https://127.0.0.1:%d/exec/default/%s/app?command=true&output=1", kport, pod), nil)
	req.Header.Set("Authorization", "Bearer "+s.token(n.name))
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Do(req.WithContext(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "may never exec") {
		t.Errorf("the node's token on its kubelet API /exec: %d %s", resp.StatusCode, b)
	}
}
