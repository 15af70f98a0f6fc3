// Package critest is the one behaviour suite that every container runtime
// Ballast talks to must pass, through internal/cri's client: the in-process
// fake runtime (internal/cri/fakecri, in unit tests) and a real containerd
// (test/e2e). What the suite checks is what the node agent relies on: the
// lifecycle of sandboxes and containers, lists filtered by label, images
// present or not, and errors that keep their gRPC code through the client's
// wrapping (a missing object is NotFound).
package critest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/cri"
)

// Env is the runtime under test and what it needs.
type Env struct {
	Runtime *cri.Runtime
	// Image is present in the runtime; its entrypoint runs until SIGTERM.
	Image string
	// Missing is an image reference the runtime does not have and cannot pull.
	Missing string
	// Dir is a directory for sandboxes' logs.
	Dir string
}

// Run runs the suite.
func Run(t *testing.T, env Env) {
	t.Run("Version", func(t *testing.T) {
		v, err := env.Runtime.Version(ctx(t))
		if err != nil || v.RuntimeName == "" || v.RuntimeApiVersion == "" {
			t.Fatalf("Version = %v, %v", v, err)
		}
	})
	t.Run("Images", func(t *testing.T) { images(t, env) })
	t.Run("Lifecycle", func(t *testing.T) { lifecycle(t, env) })
	t.Run("NotFound", func(t *testing.T) { notFound(t, env) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func images(t *testing.T, env Env) {
	c := ctx(t)
	img, err := env.Runtime.ImageStatus(c, env.Image)
	if err != nil || img == nil || img.Id == "" {
		t.Fatalf("ImageStatus(%s) = %v, %v; want the image", env.Image, img, err)
	}
	img, err = env.Runtime.ImageStatus(c, env.Missing)
	if err != nil || img != nil {
		t.Fatalf("ImageStatus(%s) = %v, %v; want no image and no error", env.Missing, img, err)
	}
	if ref, err := env.Runtime.PullImage(c, env.Missing, nil, nil); err == nil {
		t.Fatalf("PullImage(%s) = %q; want an error", env.Missing, ref)
	}
}

// sandboxConfig is a host-network sandbox with a unique name.
func sandboxConfig(t *testing.T, env Env) *runtimeapi.PodSandboxConfig {
	name := fmt.Sprintf("critest-%d", time.Now().UnixNano())
	dir := filepath.Join(env.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "critest", Uid: name},
		LogDirectory: dir,
		Labels:       map[string]string{"critest": name},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
		}},
	}
}

func lifecycle(t *testing.T, env Env) {
	c := ctx(t)
	rt := env.Runtime
	sbCfg := sandboxConfig(t, env)
	sel := map[string]string{"critest": sbCfg.Labels["critest"]}
	sb, err := rt.RunPodSandbox(c, sbCfg)
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = rt.StopPodSandbox(c, sb)
		_ = rt.RemovePodSandbox(c, sb)
	})
	st, err := rt.PodSandboxStatus(c, sb)
	if err != nil || st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("PodSandboxStatus = %v, %v; want ready", st, err)
	}
	sbs, err := rt.ListPodSandboxes(c, sel)
	if err != nil || len(sbs) != 1 || sbs[0].Id != sb {
		t.Fatalf("ListPodSandboxes(%v) = %v, %v; want just %s", sel, sbs, err, sb)
	}

	ctrCfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image:    &runtimeapi.ImageSpec{Image: env.Image},
		LogPath:  "app/0.log",
		Labels:   sel,
	}
	id, err := rt.CreateContainer(c, sb, ctrCfg, sbCfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if cs, err := rt.ContainerStatus(c, id); err != nil || cs.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Fatalf("ContainerStatus after create = %v, %v; want created", cs, err)
	}
	if err := rt.StartContainer(c, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	cs, err := rt.ContainerStatus(c, id)
	if err != nil || cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING || cs.StartedAt == 0 {
		t.Fatalf("ContainerStatus after start = %v, %v; want running", cs, err)
	}
	ctrs, err := rt.ListContainers(c, sel)
	if err != nil || len(ctrs) != 1 || ctrs[0].Id != id || ctrs[0].PodSandboxId != sb {
		t.Fatalf("ListContainers(%v) = %v, %v; want just %s in %s", sel, ctrs, err, id, sb)
	}
	if err := rt.RemoveContainer(c, id); err == nil {
		if cs, err := rt.ContainerStatus(c, id); err == nil {
			t.Fatalf("removing a running container succeeded, and it is still there: %v", cs)
		}
		// Some runtimes stop and remove a running container at once: also fine.
	} else if err := rt.StopContainer(c, id, 10); err != nil {
		t.Fatalf("StopContainer: %v", err)
	} else {
		cs, err := rt.ContainerStatus(c, id)
		if err != nil || cs.State != runtimeapi.ContainerState_CONTAINER_EXITED || cs.FinishedAt == 0 {
			t.Fatalf("ContainerStatus after stop = %v, %v; want exited", cs, err)
		}
		if err := rt.RemoveContainer(c, id); err != nil {
			t.Fatalf("RemoveContainer after stop: %v", err)
		}
	}
	if _, err := rt.ContainerStatus(c, id); !cri.IsNotFound(err) {
		t.Fatalf("ContainerStatus of a removed container: %v; want not found", err)
	}
	if err := rt.StopPodSandbox(c, sb); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if st, err := rt.PodSandboxStatus(c, sb); err != nil || st.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("PodSandboxStatus after stop = %v, %v; want not ready", st, err)
	}
	if err := rt.RemovePodSandbox(c, sb); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if sbs, err := rt.ListPodSandboxes(c, sel); err != nil || len(sbs) != 0 {
		t.Fatalf("ListPodSandboxes after remove = %v, %v; want none", sbs, err)
	}
}

// notFound checks that a missing object's error keeps the runtime's code
// through the client's wrapping, and names the object.
func notFound(t *testing.T, env Env) {
	c := ctx(t)
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	_, err := env.Runtime.ContainerStatus(c, id)
	if err == nil {
		t.Fatal("ContainerStatus of a missing container succeeded")
	}
	if !cri.IsNotFound(err) {
		t.Errorf("ContainerStatus of a missing container: %v; want not found", err)
	}
	if _, ok := status.FromError(err); !ok || status.Code(err) == codes.OK {
		t.Errorf("ContainerStatus error %v lost its gRPC status", err)
	}
	_, err = env.Runtime.PodSandboxStatus(c, id)
	if !cri.IsNotFound(err) {
		t.Errorf("PodSandboxStatus of a missing sandbox: %v; want not found", err)
	}
	if msg := cri.Message(err); msg == "" || msg == err.Error() {
		t.Errorf("Message(%v) = %q; want the error without the gRPC framing", err, msg)
	}
}
