package kubeletapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/streaming"
)

// reach records which of the node's data a request got to.
type reach struct {
	pods, logs, streams atomic.Int32
}

type fuzzProvider struct{ r *reach }

func (p fuzzProvider) Pods() []corev1.Pod {
	p.r.pods.Add(1)
	return []corev1.Pod{{
		ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "default", UID: "u1"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ContainerID: "containerd://c1",
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}}
}

func (p fuzzProvider) LogFile(string, string, string, bool) (string, func() bool, error) {
	p.r.logs.Add(1)
	return "", nil, localapi.ErrNotFound
}

var errFuzzRuntime = errors.New("fuzz: no runtime")

type fuzzRuntime struct{ r *reach }

func (f fuzzRuntime) Exec(context.Context, string, []string, bool, bool, bool, bool) (*url.URL, error) {
	f.r.streams.Add(1)
	return nil, errFuzzRuntime
}

func (f fuzzRuntime) Attach(context.Context, string, bool, bool, bool, bool) (*url.URL, error) {
	f.r.streams.Add(1)
	return nil, errFuzzRuntime
}

func (f fuzzRuntime) PortForward(context.Context, string, []int32) (*url.URL, error) {
	f.r.streams.Add(1)
	return nil, errFuzzRuntime
}

func (f fuzzRuntime) ReadySandbox(context.Context, string) (string, error) {
	f.r.streams.Add(1)
	return "", errFuzzRuntime
}

// The callers of the fuzz target, by bearer token.
var fuzzCallers = []string{"", "n1", "n2", "admin", "alice", "bogus"}

// Whatever the method, path (escapes included) and query, and whoever the
// caller: another node reads nothing of this node but /healthz; no node
// identity, this node's included, opens a stream into a pod; a caller the
// API server does not vouch for reaches nothing; and nothing panics.
func FuzzKubeletAPIRequests(f *testing.F) {
	client := fake.NewClientset()
	users := map[string]authenticationv1.UserInfo{
		"n1":    {Username: "system:node:n1", Groups: []string{"system:nodes"}},
		"n2":    {Username: "system:node:n2", Groups: []string{"system:nodes"}},
		"admin": {Username: "root", Groups: []string{"system:masters"}},
		"alice": {Username: "alice"},
	}
	reviewTokens(client, users)
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		sar.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: sar.Spec.User == "root"}
		return true, sar, nil
	})
	r := &reach{}
	log := slog.New(slog.DiscardHandler)
	next := streaming.Handler(localapi.Handler(fuzzProvider{r}, log), streaming.Options{Pods: fuzzProvider{r}, Runtime: fuzzRuntime{r}, Log: log})
	o := Options{Handler: next, Client: client, NodeName: "n1", Log: log}
	h := (&authn{o: o, cache: map[string]cached{}, streams: &streamAuthz{o: o}}).wrap(next)

	for _, p := range []string{
		"/healthz", "/pods", "/pods/", "/containerLogs/default/web-n1/app?tailLines=1&follow=false",
		"/exec/default/web-n1/app?command=sh&input=1&output=1", "/exec/default/web-n1/u1/app?command=id&output=1",
		"/attach/default/web-n1/app?output=1", "/portForward/default/web-n1?port=80", "/portForward/default/web-n1/u1",
		"/exec%2Fdefault%2Fweb-n1%2Fapp?command=sh", "//exec/default/web-n1/app", "/exec/default/web-n1/../web-n1/app",
		"/healthz/../pods", "/events", "/manifests/problems", "/run/default/web-n1/app", "/EXEC/default/web-n1/app",
	} {
		for c := range uint8(len(fuzzCallers)) {
			f.Add(uint8(0), p, c)
			f.Add(uint8(1), p, c)
		}
	}
	f.Fuzz(func(t *testing.T, method uint8, target string, caller uint8) {
		u, err := url.Parse(target)
		if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
			return // not a request line a client sends
		}
		m := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodHead, http.MethodDelete}[int(method)%5]
		who := fuzzCallers[int(caller)%len(fuzzCallers)]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, m, "https://n1"+u.RequestURI(), nil)
		if err != nil {
			return
		}
		if who != "" {
			req.Header.Set("Authorization", "Bearer "+who)
		}
		r.pods.Store(0)
		r.logs.Store(0)
		r.streams.Store(0)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		pods, logs, streams := r.pods.Load(), r.logs.Load(), r.streams.Load()
		switch who {
		case "", "bogus":
			if w.Code != http.StatusUnauthorized || pods+logs+streams > 0 {
				t.Fatalf("%s %s with no valid credentials: %d, reached pods %d logs %d streams %d", m, target, w.Code, pods, logs, streams)
			}
		case "n2":
			if pods+logs+streams > 0 || (w.Code < 300 && req.URL.Path != "/healthz") {
				t.Fatalf("%s %s as another node: %d, reached pods %d logs %d streams %d", m, target, w.Code, pods, logs, streams)
			}
		case "n1", "alice":
			if streams > 0 {
				t.Fatalf("%s %s as %s opened a stream into a pod", m, target, who)
			}
		}
		if w.Code >= 500 && !strings.Contains(w.Body.String(), errFuzzRuntime.Error()) {
			t.Fatalf("%s %s as %q: %d: %s", m, target, who, w.Code, w.Body.String())
		}
	})
}
