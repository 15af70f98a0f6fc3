package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/testutil"
	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// streamManifest is a pod of two hello containers: "app" on 8080 and "web"
// on 8081, each answering "hello from port-<port>".
func streamManifest(name, image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  containers:
  - name: app
    image: %s
    env:
    - {name: POD_NAME, value: port-8080}
  - name: web
    image: %s
    env:
    - {name: PORT, value: "8081"}
    - {name: POD_NAME, value: port-8081}
`, name, image, image)
}

// kube runs the real kubectl with one kubeconfig and extra environment.
type kube struct {
	bin, kubeconfig, home string
	env                   []string
	args                  []string // before the command's own, e.g. --token
}

func (k kube) command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--cache-dir", filepath.Join(k.home, "cache")}, k.args...)
	if k.kubeconfig != "" {
		full = append(full, "--kubeconfig", k.kubeconfig)
	}
	cmd := exec.CommandContext(ctx, k.bin, append(full, args...)...)
	cmd.Env = append(append(os.Environ(), "HOME="+k.home, "KUBECONFIG="), k.env...)
	return cmd
}

// run runs kubectl to its end: stdout, stderr and the exit code.
func (k kube) run(stdin io.Reader, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := k.command(ctx, args...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

// protocols are kubectl 1.32's two ways to stream: WebSocket by default,
// and SPDY with the fallback variables. upgrade is the Upgrade header of
// the server's 101 answer, as kubectl -v=8 logs it: kubectl falls back to
// SPDY silently when a WebSocket upgrade fails, so the tests check which
// protocol was really spoken.
var protocols = []struct {
	name    string
	env     []string
	upgrade string
}{
	{"websocket", nil, "Upgrade: websocket"},
	{"spdy", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false", "KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}, "Upgrade: SPDY/3.1"},
}

// spoke checks that kubectl's -v=8 log shows the protocol's upgrade, and
// no other.
func spoke(t *testing.T, what, log, upgrade string) {
	t.Helper()
	n := strings.Count(log, "Upgrade: websocket") + strings.Count(log, "Upgrade: SPDY/3.1")
	if !strings.Contains(log, upgrade) || n != strings.Count(log, upgrade) {
		t.Errorf("%s: kubectl did not stream with %q only; its log:\n%s", what, upgrade, log)
	}
}

// `kubectl exec`, `attach`, `port-forward` and `cp` on a mirror pod of
// `ballast up`, with both protocol families; and every refusal.
func TestUpStreaming(t *testing.T) {
	env := harness.Start(t)
	u := startUp(t, env)
	u.write("web.yaml", streamManifest("web", env.HelloImage()))
	pod := "web-" + u.name
	p := u.waitPod("web", "Running", running)
	u.eventually("the mirror pod in the API", 60*time.Second, func() error {
		out, err := u.k("get", "pod", pod, "-o", "jsonpath={.status.phase}")
		if err != nil || out != "Running" {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})

	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			k := kube{bin: u.kubectl, kubeconfig: u.kubeconfig, home: t.TempDir(), env: proto.env}
			_, log, code := k.run(nil, "exec", pod, "-c", "app", "-v=8", "--", "true")
			if code != 0 {
				t.Fatalf("kubectl exec -v=8 -- true: exit %d\n%s", code, log)
			}
			spoke(t, "kubectl exec", log, proto.upgrade)
			testExec(t, k, pod)
			testExecTTY(t, k.command(context.Background(), "exec", "-it", pod, "-c", "app", "--", "sh"))
			testAttach(t, k, pod, p.Status.PodIP)
			spoke(t, "kubectl port-forward", testPortForward(t, k, pod), proto.upgrade)
			testCopy(t, k, pod, "/tmp/copied-"+proto.name)
			testRefusals(t, u, k, pod)
		})
	}
}

func testExec(t *testing.T, k kube, pod string) {
	t.Helper()
	// The exit code is kubectl's.
	if out, errOut, code := k.run(nil, "exec", pod, "-c", "app", "--", "sh", "-c", "exit 3"); code != 3 {
		t.Errorf("kubectl exec -- sh -c 'exit 3': exit %d, want 3\n%s%s", code, out, errOut)
	}
	if out, errOut, code := k.run(nil, "exec", pod, "-c", "web", "--", "echo", "hello", "from", "exec"); code != 0 || out != "hello from exec\n" {
		t.Errorf("kubectl exec echo: exit %d, %q %s", code, out, errOut)
	}
	// Without -c: kubectl picks the first container (and says so).
	if out, errOut, code := k.run(nil, "exec", pod, "--", "sh", "-c", "echo $PORT-${POD_NAME}"); code != 0 || out != "-port-8080\n" {
		t.Errorf("kubectl exec without -c: exit %d, %q %s", code, out, errOut)
	}
	// Standard input, 1 MiB of it, back through cat.
	in := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	if out, errOut, code := k.run(bytes.NewReader(in), "exec", "-i", pod, "-c", "app", "--", "cat"); code != 0 || out != string(in) {
		t.Errorf("kubectl exec -i cat: exit %d, %d bytes back of %d; %s", code, len(out), len(in), errOut)
	}
	// stderr stays apart.
	if out, errOut, code := k.run(nil, "exec", pod, "-c", "app", "--", "sh", "-c", "cat /nonexistent; echo done"); code != 0 || out != "done\n" || !strings.Contains(errOut, "nonexistent") {
		t.Errorf("kubectl exec stderr: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A command that does not exist: the runtime's error, not a success.
	if _, errOut, code := k.run(nil, "exec", pod, "-c", "app", "--", "no-such-command"); code == 0 {
		t.Errorf("kubectl exec no-such-command succeeded: %s", errOut)
	}
}

// testExecTTY drives `exec -it ... sh` on a pseudo-terminal: the shell sees
// a terminal of the right size, follows a resize, and its exit code is the
// command's.
func testExecTTY(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	term := openPTY(t, 24, 80)
	term.start(cmd)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	at := term.waitFor("# ", 0, 30*time.Second)
	term.typeLine("test -t 0 && echo is-a-tty")
	at = term.waitFor("is-a-tty\r\n", at, 20*time.Second)
	term.typeLine("stty size")
	at = term.waitFor("24 80", at, 20*time.Second)
	term.resize(30, 100)
	// The resize travels on its own stream: ask until the shell sees it.
	if err := testutil.PollEvery(200*time.Millisecond, 20*time.Second, func() error {
		if strings.Contains(term.text()[at:], "30 100") {
			return nil
		}
		term.typeLine("stty size")
		return fmt.Errorf("the resize did not reach the container")
	}); err != nil {
		t.Fatalf("%v; the terminal shows:\n%q", err, term.text()[at:])
	}
	term.typeLine("exit 5")
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 5 {
			t.Errorf("exec -it ... exit 5: %v, want exit code 5; terminal:\n%q", err, term.text())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("exec -it did not end after exit 5; terminal:\n%q", term.text())
	}
}

// testAttach attaches to app's main process and sees its log line for a
// request made now.
func testAttach(t *testing.T, k kube, pod, podIP string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := k.command(ctx, "attach", pod, "-c", "app")
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait(); w.Close() }()
	seen := make(chan struct{})
	var lines []string
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
			if strings.Contains(sc.Text(), "GET /attach-probe") {
				close(seen)
				for sc.Scan() {
				}
				return
			}
		}
	}()
	// Requests until the attached stream shows one (attaching takes a moment).
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := get(fmt.Sprintf("http://%s:%d/attach-probe", podIP, harness.HelloPort)); err != nil {
			t.Fatalf("GET the pod: %v", err)
		}
		select {
		case <-seen:
			return
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("kubectl attach did not show the container's output; it printed:\n%s", strings.Join(lines, "\n"))
		}
	}
}

// testPortForward forwards both containers' ports and makes 20 requests at
// once through each. It returns kubectl's -v=8 log.
func testPortForward(t *testing.T, k kube, pod string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	return forwardAndGet(t, k.command(ctx, "port-forward", "-v=8", "--address", "127.0.0.1", "pod/"+pod, ":8080", ":8081"))
}

// forwardAndGet runs a port-forward command (kubectl's or ballast's, which
// print the same "Forwarding from" lines) of the hello pod's ports 8080 and
// 8081, makes 20 requests at once through each, stops it and returns its
// stderr.
func forwardAndGet(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut lockedBuf
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	local := map[int]int{}
	sc := bufio.NewScanner(out)
	for len(local) < 2 && sc.Scan() {
		var l, r int
		if _, err := fmt.Sscanf(sc.Text(), "Forwarding from 127.0.0.1:%d -> %d", &l, &r); err == nil {
			local[r] = l
		}
	}
	if len(local) < 2 {
		t.Fatalf("%s printed no forwarding lines; stderr:\n%s", cmd.Path, errOut.String())
	}
	go io.Copy(io.Discard, out)
	for remote, l := range local {
		concurrentGets(t, l, 20, fmt.Sprintf("hello from port-%d\n", remote))
	}
	return errOut.String()
}

// concurrentGets makes n requests at once to 127.0.0.1:port, each on its own
// connection, and checks every answer.
func concurrentGets(t *testing.T, port, n int, want string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if string(b) != want {
				errs <- fmt.Errorf("got %q, want %q", b, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("through the forwarded port %d: %v", port, err)
	}
}

// testCopy copies a directory into the pod and back with kubectl cp.
func testCopy(t *testing.T, k kube, pod, dst string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	rand.Read(big)
	files := map[string][]byte{"a.txt": []byte("alpha\n"), "sub/b.bin": big}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, errOut, code := k.run(nil, "cp", src, pod+":"+dst, "-c", "web"); code != 0 {
		t.Fatalf("kubectl cp to the pod: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := k.run(nil, "exec", pod, "-c", "web", "--", "cat", dst+"/a.txt"); code != 0 || out != "alpha\n" {
		t.Errorf("the copied file in the pod: exit %d %q %s", code, out, errOut)
	}
	back := filepath.Join(t.TempDir(), "back")
	if out, errOut, code := k.run(nil, "cp", pod+":"+dst, back, "-c", "web"); code != 0 {
		t.Fatalf("kubectl cp from the pod: exit %d\n%s%s", code, out, errOut)
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(back, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s copied there and back: %d bytes (want %d), %v", name, len(got), len(data), err)
		}
	}
}

// testRefusals: only identities allowed create on pods/exec (attach,
// portforward) may stream: not anonymous, not a node (even into its own
// pod), not a user without the permission.
func testRefusals(t *testing.T, u *upProcess, k kube, pod string) {
	t.Helper()
	server, ca := upServer(t, u)
	nodeToken := upToken(t, u, u.name)
	aliceCert, aliceKey := userCert(t, u, "alice")
	kcAlice := filepath.Join(t.TempDir(), "alice.kubeconfig")
	caPEM, _ := os.ReadFile(ca)
	if err := auth.WriteKubeconfig(kcAlice, server, caPEM, aliceCert, aliceKey, "", "alice"); err != nil {
		t.Fatal(err)
	}
	// kubectl, as a person runs it.
	node := kube{bin: k.bin, home: t.TempDir(), env: k.env, args: []string{"--server", server, "--certificate-authority", ca, "--token", nodeToken}}
	alice := kube{bin: k.bin, home: t.TempDir(), env: k.env, kubeconfig: kcAlice}
	for _, who := range []struct {
		name string
		k    kube
		want string
	}{
		// A node may read the pod, so the exec itself is what is refused.
		{"the pod's own node", node, `User "system:node:` + u.name + `" cannot create resource "pods/exec"`},
		// alice may not even read it.
		{"a user without the permission", alice, "Forbidden"},
	} {
		_, errOut, code := who.k.run(nil, "exec", pod, "-c", "app", "--", "true")
		if code == 0 || !strings.Contains(errOut, who.want) {
			t.Errorf("%s: kubectl exec: exit %d, %q: want a refusal with %q", who.name, code, errOut, who.want)
		}
	}
	// Each subresource, for each caller, at the subresource itself.
	aliceTLS, err := tls.X509KeyPair(aliceCert, aliceKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []struct {
		name   string
		client *http.Client
		token  string
		code   int
		msg    string
	}{
		{"anonymous", upClient(t, ca, nil), "", http.StatusUnauthorized, "anonymous"},
		{"the pod's own node", upClient(t, ca, nil), nodeToken, http.StatusForbidden, "may never exec"},
		{"a user without the permission", upClient(t, ca, &aliceTLS), "", http.StatusForbidden, `User "alice" cannot create resource "pods/`},
	} {
		for _, sub := range []string{"exec?command=true&stdout=true", "attach?stdout=true", "portforward"} {
			for _, method := range []string{"POST", "GET"} {
				req, _ := http.NewRequest(method, server+"/api/v1/namespaces/default/pods/"+pod+"/"+sub, nil)
				if who.token != "" {
					req.Header.Set("Authorization", "Bearer "+who.token)
				}
				resp, err := who.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var st struct{ Message string }
				_ = json.Unmarshal(b, &st)
				if resp.StatusCode != who.code || !strings.Contains(st.Message, who.msg) {
					t.Errorf("%s: %s pods/%s: %d %s, want %d with %q", who.name, method, sub, resp.StatusCode, b, who.code, who.msg)
				}
			}
		}
	}
}

// upServer returns the server URL and CA file of `ballast up`.
func upServer(t *testing.T, u *upProcess) (string, string) {
	t.Helper()
	out, err := u.k("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
	if err != nil || out == "" {
		t.Fatalf("the server URL from the kubeconfig: %q %v", out, err)
	}
	return out, filepath.Join(u.dataDir, "pki", "ca.crt")
}

func upClient(t *testing.T, caFile string, cert *tls.Certificate) *http.Client {
	t.Helper()
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	tc := &tls.Config{RootCAs: pool}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

// upToken creates a node token with `ballast server token create`.
func upToken(t *testing.T, u *upProcess, node string) string {
	t.Helper()
	out, err := exec.Command(u.bin, "server", "token", "create", "--data-dir", u.dataDir, "--node", node).Output()
	if err != nil {
		t.Fatalf("ballast server token create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// userCert issues a client certificate for an ordinary user (no groups)
// from the server's CA.
func userCert(t *testing.T, u *upProcess, user string) (certPEM, keyPEM []byte) {
	t.Helper()
	pki := filepath.Join(u.dataDir, "pki")
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	caKeyPEM, err := os.ReadFile(filepath.Join(pki, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(caPEM)
	kb, _ := pem.Decode(caKeyPEM)
	if cb == nil || kb == nil {
		t.Fatal("the server's CA files hold no PEM")
	}
	caCert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: user},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
