package executor_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/cri/fakecri"
	"github.com/ballast-dev/ballast/internal/executor"
	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/planner"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/podruntime"
)

const image = "registry.example/app:v1"

// events records what the executor reports.
type events struct {
	mu      sync.Mutex
	reasons []string
}

func (e *events) Event(_ corev1.ObjectReference, _, reason, _ string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reasons = append(e.reasons, reason)
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.reasons, " ")
}

func setup(t *testing.T) (*fakecri.Runtime, *executor.Executor, *events) {
	t.Helper()
	f, x, ev, _ := setupIn(t)
	return f, x, ev
}

// setupIn is setup, and the executor's data directory.
func setupIn(t *testing.T) (*fakecri.Runtime, *executor.Executor, *events, string) {
	t.Helper()
	f := fakecri.Start(t)
	f.AddImage(image)
	rt, err := cri.Dial(f.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	ev := &events{}
	dataDir := t.TempDir()
	x := executor.New(rt, cri.NewObserver(rt, "n1"), ev, executor.Options{
		NodeName: "n1", DataDir: dataDir, HostIP: "10.0.0.1", ResolvConf: "/nonexistent",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	return f, x, ev, dataDir
}

func testPod(t *testing.T, img string) *corev1.Pod {
	t.Helper()
	pods, err := manifest.Parse("/m/web.yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  hostNetwork: true\n  containers:\n  - name: app\n    image: "+img+"\n"), "n1")
	if err != nil {
		t.Fatal(err)
	}
	return pods[0]
}

func job(pod *corev1.Pod, rt *podruntime.Pod, plan podplan.Plan) planner.Job {
	if rt == nil {
		rt = &podruntime.Pod{UID: string(pod.UID), Name: pod.Name, Namespace: pod.Namespace}
	}
	return planner.Job{UID: rt.UID, Desired: pod, Runtime: rt, Plan: plan}
}

func start() podplan.Plan {
	return podplan.Plan{CreateSandbox: true, Start: []podplan.Start{{Name: "app"}}}
}

func TestStartAndStop(t *testing.T) {
	_, x, ev := setup(t)
	pod := testPod(t, image)
	d := x.Run(context.Background(), job(pod, nil, start()))
	if d.Err != nil || len(d.Failed) > 0 {
		t.Fatalf("start: %v %v", d.Err, d.Failed)
	}
	if sb := d.Runtime.LatestSandbox(); sb == nil || !sb.Ready {
		t.Fatalf("no ready sandbox: %+v", d.Runtime)
	}
	if c := d.Runtime.Latest("app"); c == nil || c.State != podruntime.StateRunning {
		t.Fatalf("app not running: %+v", d.Runtime)
	}
	if got := ev.String(); got != "Pulled Created Started" {
		t.Errorf("events %q", got)
	}
	// The file is gone: no desired pod.
	d = x.Run(context.Background(), job(nil, d.Runtime, podplan.Plan{KillPod: true, RemovePod: true}))
	if d.Err != nil || !d.Runtime.Empty() {
		t.Fatalf("stop: %v, left %+v", d.Err, d.Runtime)
	}
}

// Each failed step is reported with the container, for the planner to name.
func TestFailedSteps(t *testing.T) {
	for _, c := range []struct {
		method string
		step   planner.Step
	}{
		{"RunPodSandbox", planner.StepSandbox},
		{"CreateContainer", planner.StepCreate},
		{"StartContainer", planner.StepStart},
	} {
		t.Run(c.method, func(t *testing.T) {
			f, x, _ := setup(t)
			f.FailNext(c.method, errors.New("injected failure"))
			d := x.Run(context.Background(), job(testPod(t, image), nil, start()))
			if d.Err == nil {
				t.Fatal("no error")
			}
			got := d.Failed["app"]
			if got.Step != c.step || !strings.Contains(got.Message, "injected failure") || strings.Contains(got.Message, "rpc error") {
				t.Errorf("failure %+v, want step %d with the runtime's message", got, c.step)
			}
		})
	}
}

// A pull that fails is a pull failure (for the planner's back-off), not an
// error of the job, and events say so.
func TestPullFailure(t *testing.T) {
	f, x, ev := setup(t)
	f.SetPullError("registry.example/missing:v1", "not found")
	d := x.Run(context.Background(), job(testPod(t, "registry.example/missing:v1"), nil, start()))
	if d.Err != nil {
		t.Fatalf("err %v", d.Err)
	}
	pf := d.Pulls["registry.example/missing:v1"]
	if pf == nil || pf.Reason != "ErrImagePull" || !strings.Contains(pf.Err, "not found") {
		t.Fatalf("pull failure %+v", pf)
	}
	if got := ev.String(); got != "Pulling Failed Failed" {
		t.Errorf("events %q", got)
	}
}

// A cancelled job starts no more containers (a file removed mid-start).
func TestCancelledJobStartsNothingMore(t *testing.T) {
	f, x, _ := setup(t)
	pod := testPod(t, image)
	d := x.Run(context.Background(), job(pod, nil, podplan.Plan{CreateSandbox: true}))
	if d.Err != nil {
		t.Fatal(d.Err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d = x.Run(ctx, job(pod, d.Runtime, podplan.Plan{Start: []podplan.Start{{Name: "app"}}}))
	if !errors.Is(d.Err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", d.Err)
	}
	if n := len(f.Containers()); n != 0 {
		t.Errorf("%d containers created after the cancel", n)
	}
}
