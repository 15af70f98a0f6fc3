package podconfig

import (
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

func TestResources(t *testing.T) {
	gi := int64(1 << 30)
	tests := []struct {
		name               string
		ctr                corev1.Container
		shares, quota, mem int64
		oom                int64
	}{
		{"best effort", ctrWith(nil, nil), 2, 0, 0, 1000},
		{"tiny request", ctrWith(rl("cpu", "1m"), nil), 2, 0, 0, 999},
		{"burstable", ctrWith(rl("cpu", "250m", "memory", "256Mi"), rl("cpu", "500m", "memory", "512Mi")), 256, 50000, 512 << 20, 1000 - 1000*(256<<20)/(4*gi)},
		{"guaranteed", ctrWith(rl("cpu", "2", "memory", "1Gi"), rl("cpu", "2", "memory", "1Gi")), 2048, 200000, gi, -997},
		{"limit only", ctrWith(nil, rl("cpu", "5m")), 5, 1000, 0, 999},
	}
	for _, tt := range tests {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{tt.ctr}}}
		r := Resources(pod, &pod.Spec.Containers[0], 4*gi)
		if r.CpuShares != tt.shares || r.CpuQuota != tt.quota || r.MemoryLimitInBytes != tt.mem || r.CpuPeriod != 100000 {
			t.Errorf("%s: got shares %d quota %d/%d mem %d", tt.name, r.CpuShares, r.CpuQuota, r.CpuPeriod, r.MemoryLimitInBytes)
		}
		if r.OomScoreAdj != tt.oom {
			t.Errorf("%s: oom_score_adj %d, want %d", tt.name, r.OomScoreAdj, tt.oom)
		}
	}
	// Node-critical static pods are kept like Guaranteed ones.
	pod := &corev1.Pod{Spec: corev1.PodSpec{PriorityClassName: "system-node-critical", Containers: []corev1.Container{ctrWith(rl("cpu", "100m"), nil)}}}
	if got := Resources(pod, &pod.Spec.Containers[0], 4*gi).OomScoreAdj; got != -997 {
		t.Errorf("system-node-critical: oom_score_adj %d", got)
	}
	// Burstable with the node's memory unknown: just below BestEffort.
	pod = &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{ctrWith(rl("memory", "1Gi"), nil)}}}
	if got := Resources(pod, &pod.Spec.Containers[0], 0).OomScoreAdj; got != 999 {
		t.Errorf("burstable, node memory unknown: oom_score_adj %d", got)
	}
}

func TestPodDNS(t *testing.T) {
	node := ParseResolvConf([]byte("# comment\nnameserver 10.0.0.2\nsearch example.com\noptions ndots:1 edns0\n"))
	two := "2"
	pod := &corev1.Pod{Spec: corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst, DNSConfig: &corev1.PodDNSConfig{
		Nameservers: []string{"1.1.1.1", "10.0.0.2"}, Searches: []string{"a.b"},
		Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "rotate"}}}}}
	got := DNS(pod, node)
	want := &runtimeapi.DNSConfig{Servers: []string{"10.0.0.2", "1.1.1.1"}, Searches: []string{"example.com", "a.b"}, Options: []string{"ndots:2", "edns0", "rotate"}}
	if got.String() != want.String() {
		t.Errorf("ClusterFirst+dnsConfig:\n got %v\nwant %v", got, want)
	}
	if node.String() != (&runtimeapi.DNSConfig{Servers: []string{"10.0.0.2"}, Searches: []string{"example.com"}, Options: []string{"ndots:1", "edns0"}}).String() {
		t.Errorf("DNS changed the node's config: %v", node)
	}
	pod.Spec.DNSPolicy = corev1.DNSNone
	got = DNS(pod, node)
	if strings.Join(got.Servers, ",") != "1.1.1.1,10.0.0.2" || strings.Join(got.Searches, ",") != "a.b" {
		t.Errorf("None: %v", got)
	}
	pod.Spec = corev1.PodSpec{DNSPolicy: corev1.DNSDefault}
	if got := DNS(pod, nil); got != nil {
		t.Errorf("Default without a node resolv.conf: %v, want nil", got)
	}
	many := ParseResolvConf([]byte("nameserver 1.0.0.1\nnameserver 1.0.0.2\nnameserver 1.0.0.3\nnameserver 1.0.0.4\n"))
	if got := DNS(pod, many); len(got.Servers) != 3 {
		t.Errorf("servers %v, want the first 3", got.Servers)
	}
}

func TestNoClusterDNS(t *testing.T) {
	tests := []struct {
		policy      corev1.DNSPolicy
		hostNetwork bool
		want        bool
	}{
		{"", false, true},
		{corev1.DNSClusterFirst, false, true},
		{corev1.DNSClusterFirst, true, false},
		{corev1.DNSClusterFirstWithHostNet, true, true},
		{corev1.DNSDefault, false, false},
		{corev1.DNSNone, false, false},
	}
	for _, tt := range tests {
		pod := &corev1.Pod{Spec: corev1.PodSpec{DNSPolicy: tt.policy, HostNetwork: tt.hostNetwork}}
		if got := NoClusterDNS(pod); got != tt.want {
			t.Errorf("%q hostNetwork=%v: %v, want %v", tt.policy, tt.hostNetwork, got, tt.want)
		}
	}
}

func TestDownwardAPIFiles(t *testing.T) {
	pod := &corev1.Pod{}
	pod.Name, pod.Labels = "web-n", map[string]string{"b": "2", "a": `x"y`}
	pod.Spec.Containers = []corev1.Container{ctrWith(nil, rl("memory", "1Gi"))}
	mode := int32(0o600)
	da := &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
		{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		{Path: "sub/./name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}, Mode: &mode},
		{Path: "mem", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
	}}
	files, err := downwardAPIFiles(pod, da, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]File{
		"labels":   {Data: []byte("a=\"x\\\"y\"\nb=\"2\""), Mode: 0o644},
		"sub/name": {Data: []byte("web-n"), Mode: 0o600},
		"mem":      {Data: []byte("1024"), Mode: 0o644},
	}
	if len(files) != len(want) {
		t.Errorf("files %v, want %v", files, want)
	}
	for name, f := range want {
		if got := files[name]; string(got.Data) != string(f.Data) || got.Mode != f.Mode {
			t.Errorf("%s: %q %v, want %q %v", name, got.Data, got.Mode, f.Data, f.Mode)
		}
	}
	da.Items = append(da.Items, corev1.DownwardAPIVolumeFile{Path: "x", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "nope", Resource: "limits.cpu"}})
	if _, err := downwardAPIFiles(pod, da, nil); err == nil || !strings.Contains(err.Error(), `item x: no container "nope" in the pod`) {
		t.Errorf("unknown container: %v", err)
	}
}

func TestResourceValue(t *testing.T) {
	c := ctrWith(rl("cpu", "250m", "memory", "100Mi"), rl("memory", "1Gi"))
	capacity := rl("cpu", "4", "memory", "8Gi")
	tests := []struct{ res, div, want string }{
		{"requests.cpu", "", "1"},
		{"requests.cpu", "1m", "250"},
		{"limits.memory", "1Mi", "1024"},
		{"requests.memory", "", "104857600"},
		// An unset limit is the node's capacity.
		{"limits.cpu", "", "4"},
		{"limits.cpu", "1m", "4000"},
		{"limits.ephemeral-storage", "", "0"},
	}
	for _, tt := range tests {
		rf := &corev1.ResourceFieldSelector{Resource: tt.res}
		if tt.div != "" {
			rf.Divisor = resource.MustParse(tt.div)
		}
		if got, err := ResourceValue(&c, rf, capacity); err != nil || got != tt.want {
			t.Errorf("%s/%s: %q %v, want %q", tt.res, tt.div, got, err, tt.want)
		}
	}
	if _, err := ResourceValue(&c, &corev1.ResourceFieldSelector{Resource: "cpu"}, capacity); err == nil {
		t.Error("a resource without limits./requests. accepted")
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{
		"plain":        "plain",
		"$(A)-$(B)":    "1-two",
		"$$(A)":        "$(A)",
		"$(UNKNOWN)":   "$(UNKNOWN)",
		"$(A":          "$(A",
		"cost $5 $":    "cost $5 $",
		"$(A)$(A)$$$$": "11$$",
	} {
		if got := Expand(in, env); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEmptyDirMemorySize(t *testing.T) {
	gi := int64(1 << 30)
	limit := resource.MustParse("64Mi")
	tests := []struct {
		name string
		ctrs []corev1.Container
		size *resource.Quantity
		node int64
		want int64
	}{
		{"node memory", []corev1.Container{ctrWith(nil, nil)}, nil, 4 * gi, 4 * gi},
		{"pod limit", []corev1.Container{ctrWith(nil, rl("memory", "1Gi")), ctrWith(nil, rl("memory", "1Gi"))}, nil, 4 * gi, 2 * gi},
		{"not every container has a limit", []corev1.Container{ctrWith(nil, rl("memory", "1Gi")), ctrWith(nil, nil)}, nil, 4 * gi, 4 * gi},
		{"sizeLimit smaller", []corev1.Container{ctrWith(nil, rl("memory", "1Gi"))}, &limit, 4 * gi, 64 << 20},
		{"unknown node memory", []corev1.Container{ctrWith(nil, nil)}, &limit, 0, 64 << 20},
	}
	for _, tt := range tests {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: tt.ctrs}}
		if got := emptyDirMemorySize(pod, &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: tt.size}, tt.node); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestContainerMountErrors(t *testing.T) {
	bidi := corev1.MountPropagationBidirectional
	yes := true
	tests := []struct {
		name string
		ctr  corev1.Container
		want string
	}{
		{"undefined volume", corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "nope", MountPath: "/x"}}},
			`container "c" mounts volume "nope", which the pod does not define`},
		{"subPathExpr to ..", corev1.Container{Name: "c", Env: []corev1.EnvVar{{Name: "D", Value: "../etc"}},
			VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/x", SubPathExpr: "$(D)"}}},
			`volume mount /x: subPathExpr "$(D)" expands to "../etc", which must be a relative path without '..'`},
		{"subPathExpr absolute", corev1.Container{Name: "c", Env: []corev1.EnvVar{{Name: "D", Value: "/etc"}},
			VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/x", SubPathExpr: "$(D)"}}},
			`expands to "/etc"`},
		{"bidirectional unprivileged", corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/x", MountPropagation: &bidi}}},
			"Bidirectional mount propagation is available only to privileged containers"},
		{"bidirectional privileged", corev1.Container{Name: "c", SecurityContext: &corev1.SecurityContext{Privileged: &yes},
			VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/x", MountPropagation: &bidi}}}, ""},
	}
	for _, tt := range tests {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{tt.ctr}}}
		in := ContainerInput{Volumes: map[string]HostVolume{"v": {Path: "/host/v"}}}
		cfg, _, err := Container(pod, &pod.Spec.Containers[0], in)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want == "" && cfg.Mounts[0].Propagation != runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			t.Errorf("%s: propagation %v", tt.name, cfg.Mounts[0].Propagation)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestHostAndFindContainer(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "init"}}, Containers: []corev1.Container{{Name: "app"}}}}
	if Host(pod, "10.0.0.5", "192.168.7.1") != "10.0.0.5" || Host(pod, "", "192.168.7.1") != "192.168.7.1" {
		t.Error("a pod-network pod is reached on its sandbox IP, else the node's")
	}
	pod.Spec.HostNetwork = true
	if Host(pod, "10.0.0.5", "192.168.7.1") != "192.168.7.1" {
		t.Error("a host-network pod is reached on the node's IP")
	}
	if FindContainer(pod, "init") != &pod.Spec.InitContainers[0] || FindContainer(pod, "app") != &pod.Spec.Containers[0] || FindContainer(pod, "x") != nil || FindContainer(nil, "app") != nil {
		t.Error("FindContainer")
	}
}

// The sandbox runs under the runtime's default seccomp profile when any of
// the pod's containers runs under a profile, unconfined when all do.
func TestSandboxSeccomp(t *testing.T) {
	profile := func(t corev1.SeccompProfileType) *corev1.SeccompProfile { return &corev1.SeccompProfile{Type: t} }
	withProfile := func(name string, sp *corev1.SeccompProfile) corev1.Container {
		return corev1.Container{Name: name, SecurityContext: &corev1.SecurityContext{SeccompProfile: sp}}
	}
	rd, unconfined := runtimeapi.SecurityProfile_RuntimeDefault, runtimeapi.SecurityProfile_Unconfined
	for _, tt := range []struct {
		name string
		spec corev1.PodSpec
		want runtimeapi.SecurityProfile_ProfileType
	}{
		{"no profile anywhere", corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}, unconfined},
		{"pod RuntimeDefault", corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{SeccompProfile: profile(corev1.SeccompProfileTypeRuntimeDefault)},
			Containers: []corev1.Container{{Name: "a"}}}, rd},
		{"pod Localhost", corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{SeccompProfile: profile(corev1.SeccompProfileTypeLocalhost)},
			Containers: []corev1.Container{{Name: "a"}}}, rd},
		{"one container RuntimeDefault", corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}, withProfile("b", profile(corev1.SeccompProfileTypeRuntimeDefault))}}, rd},
		{"init container Localhost", corev1.PodSpec{InitContainers: []corev1.Container{withProfile("i", profile(corev1.SeccompProfileTypeLocalhost))},
			Containers: []corev1.Container{{Name: "a"}}}, rd},
		{"pod RuntimeDefault, every container Unconfined", corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{SeccompProfile: profile(corev1.SeccompProfileTypeRuntimeDefault)},
			Containers: []corev1.Container{withProfile("a", profile(corev1.SeccompProfileTypeUnconfined))}}, unconfined},
		{"pod Unconfined", corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{SeccompProfile: profile(corev1.SeccompProfileTypeUnconfined)},
			Containers: []corev1.Container{{Name: "a"}}}, unconfined},
	} {
		pod := &corev1.Pod{Spec: tt.spec}
		if got := sandboxSecurityContext(pod).GetSeccomp().GetProfileType(); got != tt.want {
			t.Errorf("%s: sandbox seccomp %s, want %s", tt.name, got, tt.want)
		}
	}
}
