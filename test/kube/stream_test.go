package kube

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
	"github.com/ballast-dev/ballast/test/realkube"
)

// TestStreamingThroughKubeAPIServer: kubectl exec and port-forward on a
// mirror pod of `ballast node`, through kube-apiserver 1.32, which calls the
// node's kubelet API (/exec, /portForward) with its kubelet client
// certificate: with kubectl's WebSocket protocols (kube-apiserver
// translates them to SPDY toward the node) and with SPDY. And the node's
// own authorization of nodes/proxy: anonymous, a node's credentials, a
// service account without the permission are refused; the same account,
// once bound to system:kubelet-api-admin, passes (a SubjectAccessReview).
func TestStreamingThroughKubeAPIServer(t *testing.T) {
	bins := realkube.Binaries(t)
	harness.Require(t)
	kubectlBin := realkube.KubectlIn(t, bins)
	bin := ballastBinary(t)
	env := harness.Start(t)
	c := realkube.StartCluster(t, bins, true)

	const nodeName = "stream-node"
	const podName = "hello-" + nodeName
	nodeKC := c.NodeKubeconfig(t, nodeName)
	manifests := filepath.Join(env.Dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  containers:
  - name: app
    image: %[1]s
    env: [{name: POD_NAME, value: port-8080}]
  - name: web
    image: %[1]s
    env: [{name: PORT, value: "8081"}, {name: POD_NAME, value: port-8081}]
`, env.HelloImage())
	if err := os.WriteFile(filepath.Join(manifests, "hello.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	port := realkube.FreePort(t)
	servingCert, servingKey := c.PKI.Issue(t, "kubelet-serving", "system:node:"+nodeName, []string{"system:nodes"}, "127.0.0.1")
	node := realkube.StartProc(t, c.Dir, "ballast-node", bin, "node",
		"--kubeconfig", nodeKC, "--node-name", nodeName, "--node-ip", "127.0.0.1",
		"--container-runtime-endpoint", env.Endpoint, "--data-dir", filepath.Join(env.Dir, "ballast"),
		"--pod-manifest-path", manifests, "--images-dir", filepath.Join(env.Dir, "images"),
		"--port", fmt.Sprint(port), "--address", "127.0.0.1", "--client-ca-file", c.PKI.CA,
		"--tls-cert-file", servingCert, "--tls-private-key-file", servingKey)
	admin := func(envv []string, stdin io.Reader, args ...string) (string, string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", c.Admin}, args...)...)
		cmd.Env = append(os.Environ(), envv...)
		cmd.Stdin = stdin
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		return out.String(), errOut.String(), code
	}
	realkube.Eventually(t, "mirror pod "+podName+" Running", 3*time.Minute, func() error {
		if err := node.Running(); err != nil {
			return err
		}
		out, errOut, code := admin(nil, nil, "get", "pod", podName, "-o", "jsonpath={.status.phase}")
		if code != 0 || out != "Running" {
			return fmt.Errorf("phase %q: %s", out, errOut)
		}
		return nil
	})

	for _, proto := range []struct {
		name, upgrade string
		env           []string
	}{
		{"websocket", "Upgrade: websocket", nil},
		{"spdy", "Upgrade: SPDY/3.1", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false", "KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}},
	} {
		t.Run(proto.name, func(t *testing.T) {
			out, log, code := admin(proto.env, nil, "exec", podName, "-c", "app", "-v=8", "--", "sh", "-c", "exit 3")
			if code != 3 {
				t.Errorf("kubectl exec -- sh -c 'exit 3': exit %d %q\n%s", code, out, log)
			}
			if !strings.Contains(log, proto.upgrade) {
				t.Errorf("kubectl exec did not stream with %q:\n%s", proto.upgrade, log)
			}
			in := strings.Repeat("through kube-apiserver ", 20000)
			if out, errOut, code := admin(proto.env, strings.NewReader(in), "exec", "-i", podName, "-c", "web", "--", "cat"); code != 0 || out != in {
				t.Errorf("kubectl exec -i cat: exit %d, %d of %d bytes; %s", code, len(out), len(in), errOut)
			}
			portForward(t, kubectlBin, c.Admin, proto.env, podName)
		})
	}

	// The node's own authorization of streams (nodes/proxy), with a real
	// TokenReview and SubjectAccessReview against kube-apiserver.
	kubelet := fmt.Sprintf("https://127.0.0.1:%d/exec/default/%s/app?command=true&output=1", port, podName)
	caPEM, err := os.ReadFile(c.PKI.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := func(certFile, keyFile string) *http.Client {
		tc := &tls.Config{RootCAs: pool}
		if certFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	post := func(c *http.Client, token string) (int, string) {
		req, _ := http.NewRequest("POST", kubelet, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if _, errOut, code := admin(nil, nil, "create", "serviceaccount", "tester"); code != 0 {
		t.Fatalf("kubectl create serviceaccount: %s", errOut)
	}
	tok, errOut, code := admin(nil, nil, "create", "token", "tester")
	if code != 0 {
		t.Fatalf("kubectl create token: %s", errOut)
	}
	tok = strings.TrimSpace(tok)
	nodeCert, nodeKey := c.PKI.Issue(t, "other-node", "system:node:other", []string{"system:nodes"})
	for _, tc := range []struct {
		name        string
		c           *http.Client
		token, want string
		code        int
	}{
		{"anonymous", client("", ""), "", "no credentials", http.StatusUnauthorized},
		{"another node's certificate", client(nodeCert, nodeKey), "", "may never exec", http.StatusForbidden},
		{"a service account without nodes/proxy", client("", ""), tok, `does not allow user "system:serviceaccount:default:tester" to create nodes/proxy`, http.StatusForbidden},
	} {
		if code, body := post(tc.c, tc.token); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	if _, errOut, code := admin(nil, nil, "create", "clusterrolebinding", "tester-kubelet", "--clusterrole=system:kubelet-api-admin", "--serviceaccount=default:tester"); code != 0 {
		t.Fatalf("kubectl create clusterrolebinding: %s", errOut)
	}
	// Denials are cached 30 s, as the kubelet caches them: wait for the
	// binding to be seen.
	realkube.Eventually(t, "the bound service account to pass the node's authorization", 90*time.Second, func() error {
		// Authorized, it reaches the stream, which needs an upgrade.
		if code, body := post(client("", ""), tok); code != http.StatusBadRequest || !strings.Contains(body, "Upgrade request required") {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
}

// portForward forwards both containers' ports through kube-apiserver and
// makes 20 requests at once through each.
func portForward(t *testing.T, kubectlBin, kubeconfig string, env []string, pod string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlBin, "--kubeconfig", kubeconfig, "port-forward", "--address", "127.0.0.1", "pod/"+pod, ":8080", ":8081")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	local := map[int]int{}
	sc := bufio.NewScanner(out)
	for len(local) < 2 && sc.Scan() {
		var l, r int
		if _, err := fmt.Sscanf(sc.Text(), "Forwarding from 127.0.0.1:%d -> %d", &l, &r); err == nil {
			local[r] = l
		}
	}
	if len(local) < 2 {
		t.Fatal("kubectl port-forward printed no forwarding lines")
	}
	go io.Copy(io.Discard, out)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	for remote, l := range local {
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/", l))
				if err != nil {
					t.Errorf("through the forwarded port %d: %v", remote, err)
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if want := fmt.Sprintf("hello from port-%d\n", remote); string(b) != want {
					t.Errorf("through the forwarded port %d: %q, want %q", remote, b, want)
				}
			}()
		}
		wg.Wait()
	}
}
