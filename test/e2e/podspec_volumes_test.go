package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// hostPath types, emptyDir on disk and in memory (tmpfs, sizeLimit,
// unmounted when the pod goes), downwardAPI files, subPath, subPathExpr,
// readOnly and mount propagation.
func TestPodSpecVolumes(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	host := filepath.Join(env.Dir, "host")
	for _, d := range []string{host, filepath.Join(host, "dir/sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(host, "file"), []byte("a file"), 0o644)
	os.WriteFile(filepath.Join(host, "dir/sub/in-sub"), []byte("in sub"), 0o644)
	// HostToContainer propagation needs a shared mount on the host, as on a
	// systemd node (here / may be private): make host/dir one.
	dir := filepath.Join(host, "dir")
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_SHARED|syscall.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	l, err := net.Listen("unix", filepath.Join(host, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	n.write("vols.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels: {app: vols, tier: web}
  annotations: {note: "hello there"}
spec:
  volumes:
  - {name: doc, hostPath: {path: %[1]s/created, type: DirectoryOrCreate}}
  - {name: dir, hostPath: {path: %[1]s/dir, type: Directory}}
  - {name: file, hostPath: {path: %[1]s/file, type: File}}
  - {name: newfile, hostPath: {path: %[1]s/newfile, type: FileOrCreate}}
  - {name: sock, hostPath: {path: %[1]s/s.sock, type: Socket}}
  - {name: devnull, hostPath: {path: /dev/null, type: CharDevice}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: note, fieldRef: {fieldPath: "metadata.annotations['note']"}}
      - {path: meta/name, fieldRef: {fieldPath: metadata.name}}
      - {path: mem_limit, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
  containers:
  - name: app
    image: %[2]s
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    resources: {limits: {memory: 100Mi}}
    volumeMounts:
    - {name: doc, mountPath: /doc}
    - {name: dir, mountPath: /sub, subPath: sub, readOnly: true}
    - {name: dir, mountPath: /dir, mountPropagation: HostToContainer}
    - {name: file, mountPath: /file}
    - {name: newfile, mountPath: /newfile}
    - {name: sock, mountPath: /s.sock}
    - {name: devnull, mountPath: /null}
    - {name: mem, mountPath: /mem}
    - {name: mem, mountPath: /per-pod, subPathExpr: $(POD_NAME)}
    - {name: info, mountPath: /info}
`, host, env.HelloImage()))
	p := n.waitPod("vols", "running", running)
	if fi, err := os.Stat(filepath.Join(host, "created")); err != nil || !fi.IsDir() {
		t.Errorf("DirectoryOrCreate: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(host, "newfile")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("FileOrCreate: %v", err)
	}
	files := map[string]string{
		"/sub/in-sub":     "in sub",
		"/dir/sub/in-sub": "in sub",
		"/file":           "a file",
		"/info/labels":    "app=\"vols\"\ntier=\"web\"",
		"/info/note":      "hello there",
		"/info/meta/name": p.Name,
		"/info/mem_limit": "100",
	}
	for f, want := range files {
		if got := podGet(t, p, 0, "/file?path="+f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if got := podGet(t, p, 0, "/write?path=/sub/x&content=x"); !strings.Contains(got, "read-only file system") {
		t.Errorf("readOnly subPath mount writable: %q", got)
	}
	if got := podGet(t, p, 0, "/write?path=/info/x&content=x"); !strings.Contains(got, "read-only file system") {
		t.Errorf("downwardAPI volume writable: %q", got)
	}
	// The tmpfs: its size, and subPathExpr's directory in it.
	mi := podGet(t, p, 0, "/file?path=/proc/self/mountinfo")
	memLine := ""
	for _, line := range strings.Split(mi, "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == "/mem" {
			memLine = line
		}
	}
	if !strings.Contains(memLine, "tmpfs") || !strings.Contains(memLine, "size=16384k") {
		t.Errorf("/mem is not a 16Mi tmpfs: %q", memLine)
	}
	if got := podGet(t, p, 0, "/write?path=/per-pod/x&content=y"); strings.TrimSpace(got) != "ok" {
		t.Errorf("write to subPathExpr mount: %q", got)
	}
	if got := podGet(t, p, 0, "/file?path=/mem/"+p.Name+"/x"); got != "y" {
		t.Errorf("subPathExpr dir in the tmpfs: %q", got)
	}
	// HostToContainer: a mount made on the host afterwards shows inside.
	later := filepath.Join(dir, "later")
	os.MkdirAll(later, 0o755)
	if err := syscall.Mount("tmpfs", later, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(later, syscall.MNT_DETACH)
	os.WriteFile(filepath.Join(later, "x"), []byte("propagated"), 0o644)
	n.eventually("a host mount propagates into the container", 10*time.Second, func() error {
		if got, _ := get(fmt.Sprintf("http://%s:%d/file?path=/dir/later/x", p.Status.PodIP, harness.HelloPort)); got != "propagated" {
			return fmt.Errorf("%q", got)
		}
		return nil
	})
	// The tmpfs is Ballast's mount, under the pod's directory.
	podDir := filepath.Join(n.dataDir, "volumes", string(p.UID))
	memDir := filepath.Join(podDir, "empty-dir", "mem")
	if !mountedAt(memDir) {
		t.Errorf("no tmpfs mounted at %s on the host", memDir)
	}

	// A failed type check: the container waits, the message names path and type.
	n.write("badtype.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: badtype}
spec:
  volumes: [{name: d, hostPath: {path: %s/file, type: Directory}}]
  containers: [{name: app, image: %s, volumeMounts: [{name: d, mountPath: /d}]}]
`, host, env.HelloImage()))
	n.waitPod("badtype", "type check failed", waitingWith("CreateContainerConfigError",
		fmt.Sprintf(`MountVolume.SetUp failed for volume "d" : hostPath type check failed: %s/file is not a directory (hostPath type Directory)`, host)))

	// Removing the pod unmounts the tmpfs, then removes its directory.
	n.remove("vols.yaml")
	n.eventually("the pod's volume dir is gone", 60*time.Second, func() error {
		if mountedAt(memDir) {
			return fmt.Errorf("tmpfs still mounted at %s", memDir)
		}
		if _, err := os.Stat(podDir); err == nil {
			return fmt.Errorf("%s still there", podDir)
		}
		return nil
	})
}

func mountedAt(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}
