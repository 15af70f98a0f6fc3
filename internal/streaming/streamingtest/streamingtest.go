// Package streamingtest gives tests of streaming into pods a node's side to
// stream into: a fake runtime (internal/cri/fakecri, whose streaming server
// speaks the real protocols) with one pod whose containers run, and that
// pod as the agent would publish it.
package streamingtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	//lint:ignore SA1019 client-go's portforward and spdy still take apimachinery's httpstream types
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	utilexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/cri/fakecri"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// Pods is a fixed view of the agent's pods.
type Pods []corev1.Pod

// Pods returns the view.
func (p Pods) Pods() []corev1.Pod { return p }

const image = "registry.example/app:v1"

// RunningPod starts a fake runtime running pod namespace/name (uid) with
// the given containers, and returns a client of it and the pod with
// Running container statuses. Everything stops when t ends.
func RunningPod(t testing.TB, namespace, name, uid string, containers ...string) (*cri.Runtime, corev1.Pod) {
	t.Helper()
	fake := fakecri.Start(t)
	fake.AddImage(image)
	c, err := cri.Dial(fake.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{wellknown.LabelPodName: name, wellknown.LabelPodNamespace: namespace, wellknown.LabelPodUID: uid}
	sb, err := c.RS.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: uid}, Labels: labels,
	}})
	if err != nil {
		t.Fatal(err)
	}
	pod := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID(uid)},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, n := range containers {
		cr, err := c.RS.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: n}, Image: &runtimeapi.ImageSpec{Image: image}, Labels: labels,
		}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.RS.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
			t.Fatal(err)
		}
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: n})
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: n, ContainerID: "containerd://" + cr.ContainerId, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		})
	}
	return c, pod
}

// ExitCode is the remote command's exit code in err, as client-go's
// executors report it, or -1 when err carries none.
func ExitCode(err error) int {
	var ee utilexec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitStatus()
	}
	return -1
}

// Forward forwards a free local port on 127.0.0.1 to remotePort through
// dialer (client-go's port forwarder, as kubectl port-forward), and returns
// the local port and a stop function that reports how forwarding ended.
func Forward(t testing.TB, dialer httpstream.Dialer, remotePort int) (int, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddressesWithContext(ctx, dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf(":%d", remotePort)}, ready, io.Discard, io.Discard)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("port-forward ended before it listened: %v", err)
	}
	ports, err := pf.GetPorts()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return int(ports[0].Local), stop
}
