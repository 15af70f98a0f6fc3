package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// TestSmoke runs a sandbox and the hello container through raw CRI calls,
// GETs it on the pod IP, and checks that the cleanup leaves nothing behind.
func TestSmoke(t *testing.T) {
	Require(t)
	var env *Env
	var shimPid int
	t.Run("run", func(t *testing.T) {
		env = Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		rt, is := env.Runtime(), env.Images()

		if _, err := is.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: env.HelloImage()}}); err != nil {
			t.Fatalf("pull %s: %v", env.HelloImage(), err)
		}
		podLogDir := filepath.Join(env.LogDir, "smoke")
		sbCfg := &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: "smoke", Namespace: "default", Uid: "smoke-uid-1"},
			Hostname:     "smoke",
			LogDirectory: podLogDir,
			Linux:        &runtimeapi.LinuxPodSandboxConfig{},
		}
		sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
		if err != nil {
			t.Fatalf("RunPodSandbox: %v", err)
		}
		st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.PodSandboxId})
		if err != nil {
			t.Fatal(err)
		}
		ip := st.GetStatus().GetNetwork().GetIp()
		_, subnet, _ := net.ParseCIDR(env.Subnet)
		if parsed := net.ParseIP(ip); parsed == nil || !subnet.Contains(parsed) {
			t.Fatalf("pod IP %q not in %s", ip, env.Subnet)
		}
		c, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
			PodSandboxId: sb.PodSandboxId,
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "hello"},
				Image:    &runtimeapi.ImageSpec{Image: env.HelloImage()},
				Envs:     []*runtimeapi.KeyValue{{Key: "POD_NAME", Value: []byte("smoke")}},
				LogPath:  "hello/0.log",
				Linux:    &runtimeapi.LinuxContainerConfig{},
			},
			SandboxConfig: sbCfg,
		})
		if err != nil {
			t.Fatalf("CreateContainer: %v", err)
		}
		if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		url := fmt.Sprintf("http://%s:%d/", ip, HelloPort)
		body, err := getWithRetry(url, 20*time.Second)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		if body != "hello from smoke\n" {
			t.Fatalf("GET %s = %q", url, body)
		}
		logs, err := os.ReadFile(filepath.Join(podLogDir, "hello", "0.log"))
		if err != nil || !strings.Contains(string(logs), "stdout F hello: starting as smoke") || !strings.Contains(string(logs), " stderr F ") {
			t.Errorf("container log: %v\n%s", err, logs)
		}
		shimPid = findShim(env.Socket)

		// Restarting containerd keeps the pod running and listed.
		oldPid := env.Containerd.Pid()
		env.RestartContainerd(t)
		if env.Containerd.Pid() == oldPid {
			t.Fatalf("containerd pid unchanged after restart")
		}
		list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil || len(list.Items) != 1 || list.Items[0].Id != sb.PodSandboxId || list.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Fatalf("after restart: %v %v", list, err)
		}
		if body, err := getWithRetry(url, 5*time.Second); err != nil || body != "hello from smoke\n" {
			t.Fatalf("after restart: GET %s = %q, %v", url, body, err)
		}
	})
	if env == nil {
		return
	}
	// After the subtest's cleanup: nothing may be left.
	if _, err := net.InterfaceByName(env.BridgeName); err == nil {
		t.Errorf("bridge %s still exists", env.BridgeName)
	}
	if _, err := os.Stat(env.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists (%v)", env.Dir, err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), env.Dir) {
		t.Errorf("mounts left under %s", env.Dir)
	}
	if alive(env.Containerd.Pid()) {
		t.Errorf("containerd pid %d still running", env.Containerd.Pid())
	}
	if shimPid == 0 {
		t.Errorf("no shim found while the pod ran")
	} else if alive(shimPid) {
		t.Errorf("shim pid %d still running", shimPid)
	}
}

func findShim(socket string) int {
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(filepath.Base(strings.Split(string(b), "\x00")[0]), "containerd-shim") && strings.Contains(string(b), socket) {
			var pid int
			fmt.Sscan(d.Name(), &pid)
			return pid
		}
	}
	return 0
}

func getWithRetry(url string, timeout time.Duration) (string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	var body string
	err := testutil.PollEvery(100*time.Millisecond, timeout, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s", resp.Status)
		}
		body = string(b)
		return err
	})
	return body, err
}
