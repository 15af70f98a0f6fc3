package agent

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func ctrWith(req, lim corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
}

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func TestContainerResources(t *testing.T) {
	a := &Agent{}
	gi := int64(1 << 30)
	tests := []struct {
		name               string
		ctr                corev1.Container
		shares, quota, mem int64
		oom                int64
	}{
		{"best effort", ctrWith(nil, nil), 2, 0, 0, 1000},
		{"tiny request", ctrWith(rl("cpu", "1m"), nil), 2, 0, 0, -1},
		{"burstable", ctrWith(rl("cpu", "250m", "memory", "256Mi"), rl("cpu", "500m", "memory", "512Mi")), 256, 50000, 512 << 20, 1000 - 1000*(256<<20)/(4*gi)},
		{"guaranteed", ctrWith(rl("cpu", "2", "memory", "1Gi"), rl("cpu", "2", "memory", "1Gi")), 2048, 200000, gi, -997},
		{"limit only", ctrWith(nil, rl("cpu", "5m")), 5, 1000, 0, -1},
	}
	for _, tt := range tests {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{tt.ctr}}}
		r := a.containerResources(pod, &pod.Spec.Containers[0])
		if r.CpuShares != tt.shares || r.CpuQuota != tt.quota || r.MemoryLimitInBytes != tt.mem || (r.CpuQuota != 0 && r.CpuPeriod != 100000) {
			t.Errorf("%s: got shares %d quota %d/%d mem %d", tt.name, r.CpuShares, r.CpuQuota, r.CpuPeriod, r.MemoryLimitInBytes)
		}
		if tt.oom != -1 {
			if got := oomScoreAdj(pod, &pod.Spec.Containers[0], 4*gi); got != tt.oom {
				t.Errorf("%s: oom_score_adj %d, want %d", tt.name, got, tt.oom)
			}
		}
	}
	// Node-critical static pods are kept like Guaranteed ones.
	pod := &corev1.Pod{Spec: corev1.PodSpec{PriorityClassName: "system-node-critical", Containers: []corev1.Container{ctrWith(rl("cpu", "100m"), nil)}}}
	if got := oomScoreAdj(pod, &pod.Spec.Containers[0], 4*gi); got != -997 {
		t.Errorf("system-node-critical: oom_score_adj %d", got)
	}
}

func TestPodDNS(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "resolv.conf")
	os.WriteFile(rc, []byte("nameserver 10.0.0.2\nsearch example.com\noptions ndots:1 edns0\n"), 0o644)
	a := &Agent{opts: Options{ResolvConf: rc}, log: slog.New(slog.DiscardHandler)}
	two := "2"
	pod := &corev1.Pod{Spec: corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst, DNSConfig: &corev1.PodDNSConfig{
		Nameservers: []string{"1.1.1.1", "10.0.0.2"}, Searches: []string{"a.b"},
		Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "rotate"}}}}}
	got := a.podDNS(pod)
	want := &runtimeapi.DNSConfig{Servers: []string{"10.0.0.2", "1.1.1.1"}, Searches: []string{"example.com", "a.b"}, Options: []string{"ndots:2", "edns0", "rotate"}}
	if got.String() != want.String() {
		t.Errorf("ClusterFirst+dnsConfig:\n got %v\nwant %v", got, want)
	}
	pod.Spec.DNSPolicy = corev1.DNSNone
	got = a.podDNS(pod)
	if strings.Join(got.Servers, ",") != "1.1.1.1,10.0.0.2" || strings.Join(got.Searches, ",") != "a.b" {
		t.Errorf("None: %v", got)
	}
}

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

func TestDownwardAPIWriter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	pod := &corev1.Pod{}
	pod.Name, pod.Labels = "web-n", map[string]string{"b": "2", "a": `x"y`}
	da := &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
		{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		{Path: "sub/name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
	}}
	a := &Agent{}
	files, err := a.downwardAPIFiles(pod, da)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second write switches ..data and removes the old one
		if err := writeAtomic(dir, files, nil); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "labels")); string(b) != "a=\"x\\\"y\"\nb=\"2\"" {
		t.Errorf("labels: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sub/name")); string(b) != "web-n" {
		t.Errorf("name: %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "labels")); l != "..data/labels" {
		t.Errorf("labels link %q", l)
	}
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "..20") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d timestamped dirs, want 1", n)
	}
}

func TestResourceValue(t *testing.T) {
	c := ctrWith(rl("cpu", "250m", "memory", "100Mi"), rl("memory", "1Gi"))
	tests := []struct{ res, div, want string }{
		{"requests.cpu", "", "1"},
		{"requests.cpu", "1m", "250"},
		{"limits.memory", "1Mi", "1024"},
		{"requests.memory", "", "104857600"},
	}
	for _, tt := range tests {
		rf := &corev1.ResourceFieldSelector{Resource: tt.res}
		if tt.div != "" {
			rf.Divisor = resource.MustParse(tt.div)
		}
		if got, err := resourceValue(&c, rf); err != nil || got != tt.want {
			t.Errorf("%s/%s: %q %v, want %q", tt.res, tt.div, got, err, tt.want)
		}
	}
	// An unset limit is the node's capacity.
	got, _ := resourceValue(&c, &corev1.ResourceFieldSelector{Resource: "limits.cpu"})
	if got == "0" || got == "" {
		t.Errorf("limits.cpu default %q", got)
	}
}

func TestLookupAuth(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "config.json")
	os.WriteFile(f, []byte(`{"auths": {
  "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
  "registry.example.com": {"username": "u", "password": "p"},
  "registry.example.com/team": {"username": "team", "password": "tp"},
  "*.corp.example": {"username": "g", "password": "gp"}
}}`), 0o644)
	tests := []struct{ image, user string }{
		{"nginx:1.27", "hub"},
		{"docker.io/library/nginx", "hub"},
		{"registry.example.com/app:v1", "u"},
		{"registry.example.com/team/app:v1", "team"},
		{"r1.corp.example/app", "g"},
		{"a.b.corp.example/app", ""},
		{"127.0.0.1:5000/app", ""},
	}
	for _, tt := range tests {
		ac, _, err := lookupAuth([]string{filepath.Join(dir, "missing.json"), f}, tt.image)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if ac != nil {
			got = ac.Username
		}
		if got != tt.user {
			t.Errorf("%s: user %q, want %q", tt.image, got, tt.user)
		}
	}
}
