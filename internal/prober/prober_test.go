package prober

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type fakeExec struct{ code atomic.Int32 }

func (f *fakeExec) Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (string, int32, error) {
	c := f.code.Load()
	if c != 0 {
		return "not healthy yet", c, nil
	}
	return "", 0, nil
}

func start(t *testing.T, r Runner) (*Prober, chan Result) {
	results := make(chan Result, 100)
	p := New(r, results, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.second = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Run(ctx)
	return p, results
}

func next(t *testing.T, ch chan Result, cond func(Result) bool) Result {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-ch:
			if cond(r) {
				return r
			}
		case <-deadline:
			t.Fatal("no matching probe result")
		}
	}
}

func execProbe(failures int32) corev1.Probe {
	return corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"check"}}}, PeriodSeconds: 1, FailureThreshold: failures}
}

func TestLivenessExhaustsAfterThreshold(t *testing.T) {
	ex := &fakeExec{}
	ex.code.Store(1)
	p, results := start(t, ex)
	p.Update([]Target{{ContainerID: "c1", Container: "app", Kind: Liveness, Probe: execProbe(3), StartedAt: time.Now()}})
	var fails int
	r := next(t, results, func(r Result) bool {
		if r.Failed {
			fails++
		}
		return r.Exhausted
	})
	if fails != 3 || r.Success || r.Output != "not healthy yet" {
		t.Errorf("exhausted after %d failures, result %+v", fails, r)
	}
}

func TestReadinessFollowsThresholds(t *testing.T) {
	ex := &fakeExec{}
	p, results := start(t, ex)
	pr := execProbe(2)
	pr.SuccessThreshold = 1
	p.Update([]Target{{ContainerID: "c1", Kind: Readiness, Probe: pr, StartedAt: time.Now()}})
	next(t, results, func(r Result) bool { return r.Success })
	ex.code.Store(1)
	r := next(t, results, func(r Result) bool { return !r.Success })
	if r.Exhausted {
		t.Errorf("a readiness probe never asks for a kill")
	}
	ex.code.Store(0)
	next(t, results, func(r Result) bool { return r.Success })
}

func TestStartupHoldsOffLiveness(t *testing.T) {
	ex := &fakeExec{}
	ex.code.Store(1)
	p, results := start(t, ex)
	now := time.Now()
	sp := execProbe(1000)
	p.Update([]Target{
		{ContainerID: "c1", Kind: Startup, Probe: sp, StartedAt: now, HasStartup: true},
		{ContainerID: "c1", Kind: Liveness, Probe: execProbe(1), StartedAt: now, HasStartup: true},
	})
	// While the startup probe fails, liveness (threshold 1) must not run.
	deadline := time.After(300 * time.Millisecond)
wait:
	for {
		select {
		case r := <-results:
			if r.Target.Kind == Liveness {
				t.Fatalf("liveness ran before startup succeeded: %+v", r)
			}
		case <-deadline:
			break wait
		}
	}
	ex.code.Store(0)
	next(t, results, func(r Result) bool { return r.Target.Kind == Startup && r.Success })
}

func TestHTTPAndTCPProbes(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Check") != "yes" || r.URL.Path != "/healthz" {
			w.WriteHeader(400)
			return
		}
		w.WriteHeader(int(status.Load()))
		w.Write([]byte("body says why"))
	}))
	defer srv.Close()
	host, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)
	p := New(nil, nil, nil)
	target := Target{Host: host, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}, Probe: corev1.Probe{TimeoutSeconds: 1, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: "/healthz", Port: intstr.FromString("http"), HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Check", Value: "yes"}}}}}}
	if ok, out := p.runOnce(context.Background(), target); !ok {
		t.Errorf("http probe failed: %s", out)
	}
	status.Store(503)
	if ok, out := p.runOnce(context.Background(), target); ok || out != "HTTP probe failed with statuscode: 503: body says why" {
		t.Errorf("http probe: %v %q", ok, out)
	}
	target.Probe.ProbeHandler = corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(port))}}
	if ok, out := p.runOnce(context.Background(), target); !ok {
		t.Errorf("tcp probe failed: %s", out)
	}
	srv.Close()
	if ok, _ := p.runOnce(context.Background(), target); ok {
		t.Errorf("tcp probe to a closed port succeeded")
	}
}
