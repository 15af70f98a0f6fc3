package volumes

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/podconfig"
)

func TestCheckHostPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tests := []struct {
		path string
		typ  corev1.HostPathType
		want string
	}{
		{dir, corev1.HostPathDirectory, ""},
		{file, corev1.HostPathDirectory, "hostPath type check failed: " + file + " is not a directory (hostPath type Directory)"},
		{filepath.Join(dir, "missing"), corev1.HostPathDirectory, "is not a directory"},
		{filepath.Join(dir, "made/deep"), corev1.HostPathDirectoryOrCreate, ""},
		{file, corev1.HostPathFile, ""},
		{dir, corev1.HostPathFile, "is not a file"},
		{filepath.Join(dir, "new-file"), corev1.HostPathFileOrCreate, ""},
		{sock, corev1.HostPathSocket, ""},
		{file, corev1.HostPathSocket, "is not a socket file"},
		{"/dev/null", corev1.HostPathCharDev, ""},
		{file, corev1.HostPathCharDev, "is not a character device"},
		{"/dev/null", corev1.HostPathBlockDev, "is not a block device"},
		{filepath.Join(dir, "anything"), corev1.HostPathUnset, ""},
		{dir, "Weird", `hostPath type "Weird" is not supported`},
	}
	for _, tt := range tests {
		err := checkHostPath(tt.path, tt.typ)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s %s: %v", tt.typ, tt.path, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s %s: got %v, want %q", tt.typ, tt.path, err, tt.want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "made/deep")); err != nil || !fi.IsDir() {
		t.Errorf("DirectoryOrCreate did not create: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "new-file")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("FileOrCreate did not create: %v", err)
	}
}

func TestPrepare(t *testing.T) {
	root := t.TempDir()
	podDir := PodDir(root, "uid-1")
	gid := int64(os.Getgid())
	files := map[string]podconfig.File{"labels": {Data: []byte("a=\"1\""), Mode: 0o644}, "meta/name": {Data: []byte("web"), Mode: 0o600}}
	vols := []podconfig.Volume{
		{Name: "host", HostPath: &podconfig.HostPathVolume{Path: root, Type: corev1.HostPathDirectory}},
		{Name: "scratch", EmptyDir: &podconfig.EmptyDirVolume{}},
		{Name: "shared", EmptyDir: &podconfig.EmptyDirVolume{}, FSGroup: &gid},
		{Name: "info", Files: files, FSGroup: &gid},
	}
	for range 2 { // preparing again keeps what is there
		got, err := Prepare(podDir, vols)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]podconfig.HostVolume{
			"host":    {Path: root},
			"scratch": {Path: filepath.Join(podDir, "empty-dir", "scratch")},
			"shared":  {Path: filepath.Join(podDir, "empty-dir", "shared")},
			"info":    {Path: filepath.Join(podDir, "downward-api", "info"), ReadOnly: true},
		}
		if len(got) != len(want) {
			t.Errorf("Prepare: %v, want %v", got, want)
		}
		for name, hv := range want {
			if got[name] != hv {
				t.Errorf("%s: %+v, want %+v", name, got[name], hv)
			}
		}
	}
	if fi, _ := os.Stat(filepath.Join(podDir, "empty-dir", "scratch")); fi.Mode().Perm() != 0o777 {
		t.Errorf("emptyDir mode %v, want world-writable", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(podDir, "empty-dir", "shared")); fi.Mode()&os.ModeSetgid == 0 || int64(fi.Sys().(*syscall.Stat_t).Gid) != gid {
		t.Errorf("emptyDir with fsGroup: mode %v gid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Gid)
	}
	info := filepath.Join(podDir, "downward-api", "info")
	if b, _ := os.ReadFile(filepath.Join(info, "meta/name")); string(b) != "web" {
		t.Errorf("downwardAPI meta/name: %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(info, "meta/name")); fi.Mode().Perm() != 0o640 {
		t.Errorf("downwardAPI file with fsGroup: mode %v, want 0640", fi.Mode().Perm())
	}
	// A changed value updates the directory in place.
	vols[3].Files = map[string]podconfig.File{"labels": {Data: []byte("a=\"2\""), Mode: 0o644}}
	if _, err := Prepare(podDir, vols); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(info, "labels")); string(b) != "a=\"2\"" {
		t.Errorf("downwardAPI labels after a change: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(info, "meta")); !os.IsNotExist(err) {
		t.Errorf("a dropped item is still there: %v", err)
	}

	_, err := Prepare(podDir, []podconfig.Volume{{Name: "bad", HostPath: &podconfig.HostPathVolume{Path: filepath.Join(root, "missing"), Type: corev1.HostPathFile}}})
	var ve *podconfig.VolumeError
	if !errors.As(err, &ve) || ve.Volume != "bad" || !strings.HasPrefix(err.Error(), `MountVolume.SetUp failed for volume "bad" : hostPath type check failed`) {
		t.Errorf("a failed hostPath check: %v", err)
	}
	if _, err := Prepare(podDir, []podconfig.Volume{{Name: "none"}}); err == nil || !strings.Contains(err.Error(), "volume type not supported") {
		t.Errorf("an empty plan: %v", err)
	}

	if err := RemovePodDir(podDir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(podDir); !os.IsNotExist(err) {
		t.Errorf("pod directory still there: %v", err)
	}
	if err := RemovePodDir(podDir); err != nil {
		t.Errorf("removing a removed pod directory: %v", err)
	}
}

func TestResolveSubPaths(t *testing.T) {
	vol := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(vol, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(vol, 0o750); err != nil {
		t.Fatal(err)
	}
	mounts := []*runtimeapi.Mount{{ContainerPath: "/etc/hosts"}, {ContainerPath: "/data", HostPath: filepath.Join(vol, "a/b")}}
	if err := ResolveSubPaths("app", mounts, []podconfig.SubPath{{Mount: 1, VolumeName: "v", Volume: vol, Path: "a/b"}}); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(filepath.Join(vol, "a/b"))
	if mounts[1].HostPath != real {
		t.Errorf("mount host path %q, want %q", mounts[1].HostPath, real)
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Errorf("subPath not created with the volume's mode: %v %v", fi, err)
	}
	err := ResolveSubPaths("app", mounts, []podconfig.SubPath{{Mount: 1, VolumeName: "v", Volume: vol, Path: "escape"}})
	if err == nil || !strings.Contains(err.Error(), `failed to prepare subPath for volumeMount "v" of container "app": subpath "escape" resolves to`) {
		t.Errorf("a subPath escaping its volume: %v", err)
	}
}

func TestWriteHostsFileInPlace(t *testing.T) {
	podDir := filepath.Join(t.TempDir(), "uid")
	pod := &corev1.Pod{}
	pod.Name = "web-n"
	p, err := WriteHostsFile(podDir, pod, []string{"10.0.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	var before syscall.Stat_t
	syscall.Stat(p, &before)
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), "10.0.0.5\tweb-n\n") {
		t.Errorf("hosts file:\n%s", b)
	}
	if _, err := WriteHostsFile(podDir, pod, []string{"10.0.0.6"}); err != nil {
		t.Fatal(err)
	}
	var after syscall.Stat_t
	syscall.Stat(p, &after)
	if after.Ino != before.Ino {
		t.Error("the hosts file was replaced: running containers bind-mount its inode")
	}
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), "10.0.0.6\tweb-n\n") {
		t.Errorf("hosts file after an update:\n%s", b)
	}
}

func TestTerminationMessageFile(t *testing.T) {
	podDir := t.TempDir()
	p, err := TerminationMessageFile(podDir, "app", 3)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(podDir, "containers", "app", "3") {
		t.Errorf("path %s", p)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o666 {
		t.Errorf("file %v %v, want empty and 0666", fi, err)
	}
}

func TestMountPointsUnder(t *testing.T) {
	mountinfo := `22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:40 / /data/volumes/u1/empty-dir/mem rw - tmpfs tmpfs rw,size=1024k
31 22 0:41 / /data/volumes/u1/empty-dir/mem/inner rw - tmpfs tmpfs rw
32 22 0:42 / /data/volumes/u10/empty-dir/mem rw - tmpfs tmpfs rw
33 22 0:43 / /data/volumes/u1/empty-dir/with\040space rw - tmpfs tmpfs rw
`
	got, err := mountPointsUnder(strings.NewReader(mountinfo), "/data/volumes/u1")
	if err != nil {
		t.Fatal(err)
	}
	// The deepest (longest) first: a mount under another goes before it.
	want := []string{"/data/volumes/u1/empty-dir/with space", "/data/volumes/u1/empty-dir/mem/inner", "/data/volumes/u1/empty-dir/mem"}
	if !slices.Equal(got, want) {
		t.Errorf("mount points %q, want %q", got, want)
	}
}

// A configMap volume lives in its own directory and is updated in place: a
// path opened through it before the update keeps working, and shows the new
// data after. A subPath into it must exist (it is never created there).
func TestConfigVolume(t *testing.T) {
	podDir := PodDir(t.TempDir(), "uid-2")
	vol := func(v string) []podconfig.Volume {
		return []podconfig.Volume{{Name: "cfg", FilesKind: podconfig.FilesConfigMap, Files: map[string]podconfig.File{
			"app.conf": {Data: []byte(v), Mode: 0o644}, "conf/nested": {Data: []byte(v), Mode: 0o400},
		}}}
	}
	got, err := Prepare(podDir, vol("v1"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(podDir, "configmap", "cfg")
	if got["cfg"] != (podconfig.HostVolume{Path: dir, ReadOnly: true}) {
		t.Fatalf("Prepare: %+v", got)
	}
	mounts := []*runtimeapi.Mount{{ContainerPath: "/etc/app.conf"}}
	if err := ResolveSubPaths("app", mounts, []podconfig.SubPath{{Mount: 0, VolumeName: "cfg", Volume: dir, Path: "app.conf", MustExist: true}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(mounts[0].HostPath); string(b) != "v1" {
		t.Errorf("subPath file: %q", b)
	}
	err = ResolveSubPaths("app", mounts, []podconfig.SubPath{{Mount: 0, VolumeName: "cfg", Volume: dir, Path: "nope", MustExist: true}})
	if err == nil || !strings.Contains(err.Error(), `"nope" is not in the volume`) {
		t.Errorf("a missing subPath in a files volume: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
		t.Errorf("the missing subPath was created in the volume: %v", err)
	}
	if _, err := Prepare(podDir, vol("v2")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"app.conf", "conf/nested"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); string(b) != "v2" {
			t.Errorf("%s after the update: %q", f, b)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "conf/nested")); fi.Mode().Perm() != 0o400 {
		t.Errorf("mode %v, want 0400", fi.Mode().Perm())
	}
}
