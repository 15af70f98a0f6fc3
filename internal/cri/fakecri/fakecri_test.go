package fakecri_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/cri/fakecri"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

const (
	node  = "node-a"
	image = "registry.example/app:v1"
)

func start(t *testing.T) (*fakecri.Runtime, *cri.Runtime, context.Context) {
	t.Helper()
	rt := fakecri.Start(t)
	rt.AddImage(image)
	c, err := cri.Dial(rt.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if _, err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return rt, c, ctx
}

func podLabels(name, uid string) map[string]string {
	return map[string]string{
		wellknown.LabelPodName: name, wellknown.LabelPodNamespace: "kube-system", wellknown.LabelPodUID: uid, wellknown.LabelNode: node,
	}
}

// runPod starts a sandbox the way Ballast does and returns its ID.
func runPod(t *testing.T, ctx context.Context, c *cri.Runtime, name, uid string, attempt uint32) string {
	t.Helper()
	pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system", UID: "u"}}
	raw, _ := json.Marshal(pod)
	r, err := c.RS.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "kube-system", Uid: uid, Attempt: attempt},
		Labels:       podLabels(name, uid),
		Annotations:  map[string]string{wellknown.AnnotationPod: string(raw)},
		LogDirectory: "/var/log/pods/kube-system_" + name + "_" + uid,
	}})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	return r.PodSandboxId
}

func createContainer(ctx context.Context, c *cri.Runtime, sb, pod, uid, name, img string, restarts int) (string, error) {
	l := podLabels(pod, uid)
	l[wellknown.LabelContainerName] = name
	r, err := c.RS.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: name, Attempt: uint32(restarts)},
		Image:       &runtimeapi.ImageSpec{Image: img},
		Labels:      l,
		Annotations: map[string]string{wellknown.AnnotationRestartCount: string(rune('0' + restarts))},
		LogPath:     name + "/" + string(rune('0'+restarts)) + ".log",
	}})
	if err != nil {
		return "", err
	}
	return r.ContainerId, nil
}

func runContainer(t *testing.T, ctx context.Context, c *cri.Runtime, sb, pod, uid, name string, restarts int) string {
	t.Helper()
	id, err := createContainer(ctx, c, sb, pod, uid, name, image, restarts)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if _, err := c.RS.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return id
}

func containerStatus(t *testing.T, ctx context.Context, c *cri.Runtime, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	r, err := c.RS.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	return r.Status
}

func wantCode(t *testing.T, err error, code codes.Code, what string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: got %v, want code %v", what, err, code)
	}
}

func TestObserverSeesPodLifecycle(t *testing.T) {
	rt, c, ctx := start(t)
	sb := runPod(t, ctx, c, "web", "uid-web", 0)
	id := runContainer(t, ctx, c, sb, "web", "uid-web", "app", 2)
	runPod(t, ctx, c, "db", "uid-db", 0)
	if sbs := rt.Sandboxes(); len(sbs) != 2 || sbs[0].ID != sb || !sbs[0].Ready() || sbs[1].Name != "db" {
		t.Fatalf("Sandboxes() = %+v", sbs)
	}
	// Another node's agent sharing the runtime sees none of it.
	obs := cri.NewObserver(c, "node-b")
	pods, err := obs.List(ctx, "")
	if err != nil || len(pods) != 0 {
		t.Fatalf("node-b sees %v, %v; want nothing", pods, err)
	}

	obs = cri.NewObserver(c, node)
	pods, err = obs.List(ctx, "uid-web")
	if err != nil {
		t.Fatal(err)
	}
	p := pods["uid-web"]
	if len(pods) != 1 || p == nil {
		t.Fatalf("List(uid-web) = %v", pods)
	}
	if p.Name != "web" || p.Namespace != "kube-system" {
		t.Errorf("pod identity = %s/%s", p.Namespace, p.Name)
	}
	s := p.LatestSandbox()
	if s == nil || s.ID != sb || !s.Ready || s.IP != "10.99.0.2" || s.Pod == nil || s.Pod.Name != "web" || s.CreatedAt.IsZero() {
		t.Fatalf("sandbox = %+v", s)
	}
	cs := p.ContainersNamed("app")
	if len(cs) != 1 {
		t.Fatalf("containers = %+v", p.Containers)
	}
	got := cs[0]
	if got.ID != id || got.SandboxID != sb || got.State != cri.StateRunning || got.RestartCount != 2 ||
		got.Image != image || !strings.HasPrefix(got.ImageRef, "sha256:") ||
		got.LogPath != "/var/log/pods/kube-system_web_uid-web/app/2.log" ||
		got.StartedAt.Before(got.CreatedAt) || !got.FinishedAt.IsZero() {
		t.Fatalf("running container = %+v", got)
	}

	if err := rt.Exit(id[:12], 1); err != nil { // a unique prefix will do
		t.Fatal(err)
	}
	pods, err = obs.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 2 {
		t.Fatalf("List() has %d pods, want 2", len(pods))
	}
	got = pods["uid-web"].Containers[0]
	if got.State != cri.StateExited || got.ExitCode != 1 || got.Reason != "Error" || !got.FinishedAt.After(got.StartedAt) {
		t.Fatalf("exited container = %+v", got)
	}
	if err := rt.Exit(id, 1); err == nil {
		t.Error("Exit of an exited container: no error")
	}

	// Stopping the sandbox takes its IP out of the observer's view and keeps the containers.
	if _, err := c.RS.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	pods, _ = obs.List(ctx, "uid-web")
	if s := pods["uid-web"].LatestSandbox(); s.Ready || s.IP != "" {
		t.Fatalf("stopped sandbox = %+v", s)
	}
	if _, err := c.RS.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	pods, _ = obs.List(ctx, "uid-web")
	if len(pods) != 0 || len(rt.Containers()) != 0 {
		t.Fatalf("after RemovePodSandbox: %v, %+v", pods, rt.Containers())
	}
	// Removing again is fine; stopping a removed sandbox is NotFound.
	if _, err := c.RS.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Errorf("second RemovePodSandbox: %v", err)
	}
	_, err = c.RS.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb})
	wantCode(t, err, codes.NotFound, "StopPodSandbox of a removed sandbox")
	if !cri.IsNotFound(err) {
		t.Error("cri.IsNotFound is false")
	}
}

func TestWatchExits(t *testing.T) {
	rt, c, ctx := start(t)
	sb := runPod(t, ctx, c, "web", "uid-web", 0)
	app := runContainer(t, ctx, c, sb, "web", "uid-web", "app", 0)
	side := runContainer(t, ctx, c, sb, "web", "uid-web", "side", 0)

	wctx, cancel := context.WithCancel(ctx)
	exits := make(chan cri.Exit, 16)
	var reconnects atomic.Int32
	done := make(chan bool)
	go func() { done <- c.WatchExits(wctx, exits, func() { reconnects.Add(1) }) }()
	t.Cleanup(func() {
		cancel()
		if !<-done {
			t.Error("WatchExits returned false: the events service was not served")
		}
	})
	waitFor(t, "a subscription", func() bool { return rt.Subscribers() == 1 })

	next := func() cri.Exit {
		t.Helper()
		select {
		case e := <-exits:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no exit event")
			return cri.Exit{}
		}
	}
	if err := rt.ExitByName("web", "app", 3); err != nil {
		t.Fatal(err)
	}
	if e := next(); e != (cri.Exit{ID: app, ExitCode: 3}) {
		t.Fatalf("exit = %+v, want app with 3", e)
	}
	if err := rt.ExitByName("web", "app", 3); err == nil {
		t.Fatal("ExitByName of an exited container: no error")
	}

	// Stopping the sandbox kills what runs in it, then the sandbox itself.
	if _, err := c.RS.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	if e := next(); e != (cri.Exit{ID: side, ExitCode: 137}) {
		t.Fatalf("exit = %+v, want side with 137", e)
	}
	if e := next(); e != (cri.Exit{ID: sb, ExitCode: 137}) {
		t.Fatalf("exit = %+v, want the sandbox with 137", e)
	}
	// Idempotent, and no more events.
	if _, err := c.RS.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}

	// The runtime goes down and comes back: the watcher resubscribes and asks for a relist.
	rt.SetDown(true)
	waitFor(t, "the subscription to be cut", func() bool { return rt.Subscribers() == 0 })
	time.Sleep(150 * time.Millisecond)
	rt.SetDown(false)
	waitFor(t, "a relist after reconnecting", func() bool { return reconnects.Load() >= 1 })
	waitFor(t, "a new subscription", func() bool { return rt.Subscribers() == 1 })
	sb2 := runPod(t, ctx, c, "web", "uid-web", 1)
	app2 := runContainer(t, ctx, c, sb2, "web", "uid-web", "app", 1)
	if err := rt.Exit(app2, 0); err != nil {
		t.Fatal(err)
	}
	if e := next(); e != (cri.Exit{ID: app2, ExitCode: 0}) {
		t.Fatalf("exit = %+v, want app2 with 0", e)
	}
	select {
	case e := <-exits:
		t.Fatalf("unexpected exit %+v", e)
	default:
	}
}

func TestStopContainer(t *testing.T) {
	rt, c, ctx := start(t)
	rt.SetTimeScale(20 * time.Millisecond)
	rt.SetIgnoreSIGTERM("stubborn")
	sb := runPod(t, ctx, c, "p", "uid-p", 0)

	stop := func(id string, timeout int64) time.Duration {
		t.Helper()
		t0 := time.Now()
		if _, err := c.RS.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: timeout}); err != nil {
			t.Fatalf("StopContainer: %v", err)
		}
		return time.Since(t0)
	}
	check := func(id string, code int32) {
		t.Helper()
		st := containerStatus(t, ctx, c, id)
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != code || st.Reason != "Error" || st.FinishedAt == 0 {
			t.Fatalf("status = %+v, want exited with %d", st, code)
		}
	}

	polite := runContainer(t, ctx, c, sb, "p", "uid-p", "polite", 0)
	if d := stop(polite, 30); d > 500*time.Millisecond {
		t.Errorf("stopping a container that honours SIGTERM took %v", d)
	}
	check(polite, 143)
	stop(polite, 30) // stopping again is fine
	check(polite, 143)

	stubborn := runContainer(t, ctx, c, sb, "p", "uid-p", "stubborn", 0)
	if d := stop(stubborn, 3); d < 60*time.Millisecond {
		t.Errorf("stopping a container that ignores SIGTERM took %v, want the 3 s grace (60 ms scaled)", d)
	}
	check(stubborn, 137)

	stubborn1 := runContainer(t, ctx, c, sb, "p", "uid-p", "stubborn", 1)
	if d := stop(stubborn1, 0); d > 500*time.Millisecond {
		t.Errorf("stop with no grace took %v", d)
	}
	check(stubborn1, 137)

	// A container that exits by itself during the grace period ends the wait.
	stubborn2 := runContainer(t, ctx, c, sb, "p", "uid-p", "stubborn", 2)
	go func() {
		time.Sleep(30 * time.Millisecond)
		rt.Exit(stubborn2, 0)
	}()
	if d := stop(stubborn2, 1000); d > 5*time.Second {
		t.Errorf("stop took %v though the container exited", d)
	}
	if st := containerStatus(t, ctx, c, stubborn2); st.ExitCode != 0 || st.Reason != "Completed" {
		t.Fatalf("status = %+v, want Completed", st)
	}

	// A created container stays created; a missing one is NotFound.
	created, err := createContainer(ctx, c, sb, "p", "uid-p", "later", image, 0)
	if err != nil {
		t.Fatal(err)
	}
	stop(created, 10)
	if st := containerStatus(t, ctx, c, created); st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Fatalf("created container after stop: %v", st.State)
	}
	_, err = c.RS.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: "nope", Timeout: 1})
	wantCode(t, err, codes.NotFound, "StopContainer of a missing container")
}

func TestContainerRules(t *testing.T) {
	rt, c, ctx := start(t)
	sb := runPod(t, ctx, c, "p", "uid-p", 0)

	_, err := createContainer(ctx, c, "missing", "p", "uid-p", "app", image, 0)
	wantCode(t, err, codes.NotFound, "CreateContainer in a missing sandbox")
	_, err = createContainer(ctx, c, sb, "p", "uid-p", "app", "registry.example/absent:v1", 0)
	wantCode(t, err, codes.NotFound, "CreateContainer from an absent image")

	id := runContainer(t, ctx, c, sb, "p", "uid-p", "app", 0)
	_, err = createContainer(ctx, c, sb, "p", "uid-p", "app", image, 0)
	if err == nil || !strings.Contains(err.Error(), "is reserved for") {
		t.Fatalf("a second container with the same name and attempt: %v", err)
	}
	_, err = c.RS.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
	wantCode(t, err, codes.FailedPrecondition, "starting a running container")

	if err := c.ReopenLog(ctx, id); err != nil {
		t.Errorf("ReopenContainerLog of a running container: %v", err)
	}
	_, err = c.RS.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("RemoveContainer of a running container: %v", err)
	}
	if err := rt.Exit(id, 0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.ReopenLog(ctx, id), codes.FailedPrecondition, "ReopenContainerLog of an exited container")
	for range 2 { // removing is idempotent
		if _, err := c.RS.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("RemoveContainer: %v", err)
		}
	}
	_, err = c.RS.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	wantCode(t, err, codes.NotFound, "ContainerStatus of a removed container")
	// The name is free again.
	runContainer(t, ctx, c, sb, "p", "uid-p", "app", 0)

	// A sandbox whose own process died is not ready: nothing new goes in it.
	if err := rt.Exit(sb, 2); err != nil {
		t.Fatal(err)
	}
	if cs := rt.Containers(); cs[len(cs)-1].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("a container died with its sandbox's process: %+v", cs[len(cs)-1])
	}
	_, err = createContainer(ctx, c, sb, "p", "uid-p", "more", image, 0)
	wantCode(t, err, codes.NotFound, "CreateContainer in a sandbox that is not ready")

	// Sandbox names are reserved too; a new attempt is a new name.
	_, err = c.RS.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "kube-system", Uid: "uid-p"},
	}})
	if err == nil {
		t.Fatal("a second sandbox with the same name and attempt was created")
	}
	host, err := c.RS.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "kube-system", Uid: "uid-p", Attempt: 1},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.RS.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: host.PodSandboxId})
	if err != nil || st.Status.Network.Ip != "" || st.Status.Linux.Namespaces.Options.Network != runtimeapi.NamespaceMode_NODE {
		t.Fatalf("host-network sandbox status = %v, %v", st, err)
	}
}

func TestListFilters(t *testing.T) {
	rt, c, ctx := start(t)
	a := runPod(t, ctx, c, "a", "uid-a", 0)
	b := runPod(t, ctx, c, "b", "uid-b", 0)
	a1 := runContainer(t, ctx, c, a, "a", "uid-a", "one", 0)
	a2, _ := createContainer(ctx, c, a, "a", "uid-a", "two", image, 0)
	b1 := runContainer(t, ctx, c, b, "b", "uid-b", "one", 0)
	rt.Exit(b1, 0)
	if _, err := c.RS.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: b}); err != nil {
		t.Fatal(err)
	}

	ids := func(f *runtimeapi.ContainerFilter) string {
		t.Helper()
		r, err := c.RS.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range r.Containers {
			out = append(out, map[string]string{a1: "a1", a2: "a2", b1: "b1"}[x.Id])
		}
		return strings.Join(sorted(out), ",")
	}
	state := func(s runtimeapi.ContainerState) *runtimeapi.ContainerStateValue {
		return &runtimeapi.ContainerStateValue{State: s}
	}
	for _, tc := range []struct {
		f    *runtimeapi.ContainerFilter
		want string
	}{
		{nil, "a1,a2,b1"},
		{&runtimeapi.ContainerFilter{Id: a1}, "a1"},
		{&runtimeapi.ContainerFilter{Id: a2[:10]}, "a2"},
		{&runtimeapi.ContainerFilter{Id: "zzz"}, ""},
		{&runtimeapi.ContainerFilter{PodSandboxId: a}, "a1,a2"},
		{&runtimeapi.ContainerFilter{State: state(runtimeapi.ContainerState_CONTAINER_RUNNING)}, "a1"},
		{&runtimeapi.ContainerFilter{State: state(runtimeapi.ContainerState_CONTAINER_CREATED)}, "a2"},
		{&runtimeapi.ContainerFilter{State: state(runtimeapi.ContainerState_CONTAINER_EXITED)}, "b1"},
		{&runtimeapi.ContainerFilter{LabelSelector: map[string]string{wellknown.LabelContainerName: "one"}}, "a1,b1"},
		{&runtimeapi.ContainerFilter{LabelSelector: map[string]string{wellknown.LabelContainerName: "one", wellknown.LabelPodUID: "uid-b"}}, "b1"},
	} {
		if got := ids(tc.f); got != tc.want {
			t.Errorf("ListContainers(%v) = %q, want %q", tc.f, got, tc.want)
		}
	}

	sbs := func(f *runtimeapi.PodSandboxFilter) string {
		t.Helper()
		r, err := c.RS.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range r.Items {
			out = append(out, x.Metadata.Name)
		}
		return strings.Join(sorted(out), ",")
	}
	for _, tc := range []struct {
		f    *runtimeapi.PodSandboxFilter
		want string
	}{
		{nil, "a,b"},
		{&runtimeapi.PodSandboxFilter{Id: b}, "b"},
		{&runtimeapi.PodSandboxFilter{Id: a[:8]}, "a"},
		{&runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}, "a"},
		{&runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}}, "b"},
		{&runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{wellknown.LabelPodUID: "uid-a", wellknown.LabelNode: node}}, "a"},
		{&runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{wellknown.LabelNode: "elsewhere"}}, ""},
	} {
		if got := sbs(tc.f); got != tc.want {
			t.Errorf("ListPodSandbox(%v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestImages(t *testing.T) {
	rt, c, ctx := start(t)
	present := func(ref string) *runtimeapi.Image {
		t.Helper()
		r, err := c.IS.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		if err != nil {
			t.Fatalf("ImageStatus: %v", err)
		}
		return r.Image
	}
	pull := func(ref string) (string, error) {
		r, err := c.IS.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		return r.GetImageRef(), err
	}

	_, err := pull("busybox")
	wantCode(t, err, codes.NotFound, "pulling an image the registry lacks")
	if want := `failed to resolve reference "docker.io/library/busybox:latest"`; !strings.Contains(cri.Message(err), want) {
		t.Errorf("pull error %q lacks %q", cri.Message(err), want)
	}
	if present("busybox") != nil {
		t.Fatal("a failed pull left an image")
	}

	rt.SetPullable("docker.io/library/busybox:latest", true)
	ref, err := pull("busybox")
	if err != nil || !strings.HasPrefix(ref, "sha256:") {
		t.Fatalf("pull = %q, %v", ref, err)
	}
	img := present("busybox:latest")
	if img == nil || img.Id != ref || len(img.RepoTags) != 1 || img.RepoTags[0] != "docker.io/library/busybox:latest" {
		t.Fatalf("ImageStatus = %v", img)
	}
	if present(ref) == nil {
		t.Error("ImageStatus by ID found nothing")
	}
	list, err := c.IS.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 2 {
		t.Fatalf("ListImages = %v, %v; want busybox and %s", list, err, image)
	}

	rt.SetPullError("registry.example/private:v2", "unexpected status from HEAD request: 401 Unauthorized")
	_, err = pull("registry.example/private:v2")
	if !strings.Contains(cri.Message(err), "401 Unauthorized") {
		t.Errorf("pull error = %v", err)
	}

	for range 2 { // removing is idempotent
		if _, err := c.IS.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}}); err != nil {
			t.Fatal(err)
		}
	}
	if present("busybox") != nil {
		t.Fatal("image still present after RemoveImage")
	}
	// Containers can be created from an image ID as the kubelet does.
	sb := runPod(t, ctx, c, "p", "uid-p", 0)
	if _, err := createContainer(ctx, c, sb, "p", "uid-p", "app", present(image).Id, 0); err != nil {
		t.Fatalf("CreateContainer by image ID: %v", err)
	}
}

func TestAutoExit(t *testing.T) {
	rt, c, ctx := start(t)
	rt.AddImage("crasher:v1")
	rt.AutoExit("crasher:v1", 2, 20*time.Millisecond)
	sb := runPod(t, ctx, c, "p", "uid-p", 0)
	id, err := createContainer(ctx, c, sb, "p", "uid-p", "crash", "crasher:v1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RS.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	steady := runContainer(t, ctx, c, sb, "p", "uid-p", "steady", 0)
	waitFor(t, "the crasher to exit", func() bool {
		return containerStatus(t, ctx, c, id).State == runtimeapi.ContainerState_CONTAINER_EXITED
	})
	if st := containerStatus(t, ctx, c, id); st.ExitCode != 2 || st.Reason != "Error" {
		t.Fatalf("status = %+v", st)
	}
	if st := containerStatus(t, ctx, c, steady); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("the other container: %v", st.State)
	}
}

func TestInjectedFailures(t *testing.T) {
	rt, c, ctx := start(t)
	rt.FailNext("RunPodSandbox", status.Error(codes.ResourceExhausted, "no IPs left"))
	rt.FailNext("RunPodSandbox", errors.New("boom"))
	_, err := c.RS.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{})
	wantCode(t, err, codes.ResourceExhausted, "first injected failure")
	_, err = c.RS.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{})
	wantCode(t, err, codes.Unknown, "second injected failure")
	runPod(t, ctx, c, "p", "uid-p", 0)

	_, err = c.RS.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: "x"})
	wantCode(t, err, codes.Unimplemented, "ExecSync")

	rt.SetDown(true)
	_, err = c.RS.Version(ctx, &runtimeapi.VersionRequest{})
	if !cri.IsUnavailable(err) {
		t.Fatalf("Version while down: %v", err)
	}
	rt.SetDown(false)
	if _, err := c.RS.Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		t.Fatal(err)
	}

	calls := rt.Calls()
	if calls["RunPodSandbox"] != 3 || calls["ExecSync"] != 1 || calls["Version"] < 2 {
		t.Errorf("Calls() = %v", calls)
	}
	defer func() {
		if recover() == nil {
			t.Error("FailNext of a misspelt method did not panic")
		}
	}()
	rt.FailNext("RunPodSandBox", errors.New("x"))
}

func TestNewServeStop(t *testing.T) {
	rt := fakecri.New()
	// A short directory: unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "fakecri")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := dir + "/x.sock"
	if err := rt.Serve(sock); err != nil {
		t.Fatal(err)
	}
	if rt.Endpoint() != "unix://"+sock {
		t.Errorf("Endpoint() = %q", rt.Endpoint())
	}
	c, err := cri.Dial(rt.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.WaitReady(ctx)
	if err != nil || v.RuntimeApiVersion != "v1" {
		t.Fatalf("Version = %v, %v", v, err)
	}
	rt.Stop()
	rt.Stop()
	cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer ccancel()
	if _, err := c.RS.Version(cctx, &runtimeapi.VersionRequest{}); !cri.IsUnavailable(err) {
		t.Errorf("Version after Stop: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sorted(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}
