package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	//lint:ignore SA1019 client-go's portforward and spdy still take apimachinery's httpstream types
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	clientspdy "k8s.io/client-go/transport/spdy"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/streaming"
	"github.com/ballast-dev/ballast/internal/streaming/streamingtest"
)

// streamAuthenticate: "admin" is the admin, "node:NAME" a node, "alice" an
// ordinary user; no token is anonymous.
func streamAuthenticate(r *http.Request) (auth.User, bool, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok:
		return auth.Anonymous, false, nil
	case tok == "admin":
		return apitest.AdminUser, true, nil
	case tok == "alice":
		return auth.User{Name: "alice", Groups: []string{auth.GroupAuthenticated}}, true, nil
	case strings.HasPrefix(tok, "node:"):
		return apitest.NodeUser(strings.TrimPrefix(tok, "node:")), true, nil
	}
	return auth.User{}, false, auth.ErrInvalidToken
}

// newStreamEnv is an API server whose node n1 runs mirror pod web-n1 (one
// container, "web") on a fake runtime behind the node's streaming handler.
// Its node header records what reached the node.
func newStreamEnv(t *testing.T) (*testEnv, *http.Header) {
	t.Helper()
	rt, pod := streamingtest.RunningPod(t, "default", "web-n1", "uid-1", "web")
	seen := &http.Header{}
	node := streaming.Handler(http.NotFoundHandler(), streaming.Options{Pods: streamingtest.Pods{pod}, Runtime: rt})
	nodeSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*seen = r.Header.Clone()
		node.ServeHTTP(w, r)
	}))
	t.Cleanup(nodeSrv.Close)
	nodeURL, _ := url.Parse(nodeSrv.URL)
	e := newTestEnv(t, func(c *Config) {
		c.Authenticate = streamAuthenticate
		c.NodeLogs = func(_ context.Context, name string) (*http.Client, *url.URL, error) {
			if name != "n1" {
				return nil, nil, fmt.Errorf("node %s is not known here", name)
			}
			return &http.Client{Transport: &http.Transport{}}, nodeURL, nil
		}
	})
	e.addNode("n1")
	e.addMirror("web", "n1")
	return e, seen
}

func (e *testEnv) podURL(sub string, q url.Values) *url.URL {
	u, _ := url.Parse(e.ts.URL + "/api/v1/namespaces/default/pods/web-n1/" + sub)
	u.RawQuery = q.Encode()
	return u
}

// kubectl's two protocol families through the API server to the node:
// SPDY (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false) and WebSocket v5,
// translated to SPDY toward the node.
func TestStreamExec(t *testing.T) {
	e, seen := newStreamEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &rest.Config{Host: e.ts.URL, BearerToken: "admin"}
	q := func(cmd ...string) url.Values {
		return url.Values{"command": cmd, "stdout": {"true"}, "stderr": {"true"}, "stdin": {"true"}}
	}
	executors := map[string]func(u *url.URL) (remotecommand.Executor, error){
		"spdy": func(u *url.URL) (remotecommand.Executor, error) { return remotecommand.NewSPDYExecutor(cfg, "POST", u) },
		"websocket": func(u *url.URL) (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
		},
	}
	for name, newExec := range executors {
		t.Run(name, func(t *testing.T) {
			run := func(stdin string, cmd ...string) (string, error) {
				ex, err := newExec(e.podURL("exec", q(cmd...)))
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: io.Discard})
				return out.String(), err
			}
			if out, err := run("", "echo", "through", "the", "server"); err != nil || out != "through the server\n" {
				t.Errorf("echo: %v %q", err, out)
			}
			if _, err := run("", "exit", "3"); streamingtest.ExitCode(err) != 3 {
				t.Errorf("exit 3: %v", err)
			}
			if out, err := run("piped in", "cat"); err != nil || out != "piped in" {
				t.Errorf("cat: %v %q", err, out)
			}
		})
	}
	if seen.Get("Authorization") != "" {
		t.Errorf("the caller's token reached the node: %q", seen.Get("Authorization"))
	}
	// attach
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", e.podURL("attach", url.Values{"stdout": {"true"}, "stdin": {"true"}, "container": {"web"}}))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("hi\n"), Stdout: &out}); err != nil || out.String() != "attached to web\nhi\n" {
		t.Errorf("attach: %v %q", err, out.String())
	}
}

func TestStreamPortForward(t *testing.T) {
	e, _ := newStreamEnv(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pod says "+r.URL.Path) }))
	defer backend.Close()
	port := backend.Listener.Addr().(*net.TCPAddr).Port
	cfg := &rest.Config{Host: e.ts.URL, BearerToken: "admin"}
	u := e.podURL("portforward", nil)
	rt, upgrader, err := clientspdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wsDialer, err := portforward.NewSPDYOverWebsocketDialer(u, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		dialer httpstream.Dialer
	}{
		{"spdy", clientspdy.NewDialer(upgrader, &http.Client{Transport: rt}, "POST", u)},
		{"websocket", wsDialer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local, stop := streamingtest.Forward(t, tc.dialer, port)
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			for i := range 5 {
				resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/%d", local, i))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != fmt.Sprintf("pod says /%d", i) {
					t.Errorf("through the forwarded port: %q", b)
				}
			}
			if err := stop(); err != nil {
				t.Errorf("port-forward after stop: %v", err)
			}
		})
	}
}

// Every refusal: who may not stream, and what is wrong with a request.
func TestStreamRefusals(t *testing.T) {
	e, _ := newStreamEnv(t)
	exec := "/api/v1/namespaces/default/pods/web-n1/exec?command=echo&stdout=true"
	for _, tc := range []struct {
		name, method, path, token string
		code                      int
		reason                    metav1.StatusReason
		msg                       string
	}{
		{"anonymous", "POST", exec, "", 401, metav1.StatusReasonUnauthorized, "anonymous"},
		{"a node, into its own pod", "POST", exec, "node:n1", 403, metav1.StatusReasonForbidden,
			`pods "web-n1" is forbidden: User "system:node:n1" cannot create resource "pods/exec" "web-n1" in namespace "default": a node's credentials may never exec`},
		{"a node, port-forward (GET)", "GET", "/api/v1/namespaces/default/pods/web-n1/portforward", "node:n1", 403, metav1.StatusReasonForbidden, "never exec"},
		{"another node", "GET", "/api/v1/namespaces/default/pods/web-n1/attach?stdout=true", "node:n2", 403, metav1.StatusReasonForbidden, "never exec"},
		{"a user without the permission", "POST", exec, "alice", 403, metav1.StatusReasonForbidden, `User "alice" cannot create resource "pods/exec"`},
		{"a pod that does not exist", "POST", "/api/v1/namespaces/default/pods/nope/exec?command=x&stdout=true", "admin", 404, metav1.StatusReasonNotFound, `pods "nope" not found`},
		{"a container that does not exist", "POST", exec + "&container=other", "admin", 400, metav1.StatusReasonBadRequest, "container other is not valid for pod web-n1"},
		{"no command", "POST", "/api/v1/namespaces/default/pods/web-n1/exec?stdout=true", "admin", 400, metav1.StatusReasonBadRequest, "at least one command"},
		{"no stream", "POST", "/api/v1/namespaces/default/pods/web-n1/exec?command=x", "admin", 400, metav1.StatusReasonBadRequest, "at least 1 of stdin, stdout, stderr"},
		{"a bad port", "POST", "/api/v1/namespaces/default/pods/web-n1/portforward?ports=70000", "admin", 400, metav1.StatusReasonBadRequest, "70000"},
		{"PUT", "PUT", exec, "admin", 405, metav1.StatusReasonMethodNotAllowed, "supported: GET, POST"},
		{"no upgrade", "POST", exec, "admin", 400, metav1.StatusReasonBadRequest, "needs an upgrade request"},
	} {
		req, _ := http.NewRequest(tc.method, e.ts.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var st metav1.Status
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(b, &st); err != nil {
			t.Errorf("%s: not a Status: %s", tc.name, b)
			continue
		}
		if resp.StatusCode != tc.code || st.Code != int32(tc.code) || st.Reason != tc.reason || !strings.Contains(st.Message, tc.msg) || st.Kind != "Status" {
			t.Errorf("%s: %d %+v, want %d %s with %q", tc.name, resp.StatusCode, st, tc.code, tc.reason, tc.msg)
		}
	}
}
