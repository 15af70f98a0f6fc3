package podconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ballast-dev/ballast/internal/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the translation produces")

// The node every golden pod runs on.
var goldenNode = Node{
	Name:       "node-a",
	DataDir:    "/var/lib/ballast",
	HostIP:     "192.168.7.1",
	ResolvConf: ParseResolvConf([]byte("nameserver 10.0.0.2\nsearch example.com\noptions ndots:1 timeout:2\n")),
	Capacity: corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("4"),
		corev1.ResourceMemory:           resource.MustParse("8Gi"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	},
}

const goldenPodIP = "10.123.0.7"

func int64p(v int64) *int64 { return &v }

// What the runtime says of the images' users (images absent: not known).
var goldenImageUsers = map[string]*ImageUser{
	"registry.example/numeric:v1": {UID: int64p(1000)},
	"registry.example/root:v1":    {UID: int64p(0)},
	"registry.example/named:v1":   {Username: "app"},
	"registry.example/nouser:v1":  {},
}

// Containers that have restarted, by pod/container: the restart count and
// the crash back-off entry recorded on the next instance.
var goldenRestarts = map[string]struct {
	count   int
	backoff time.Duration
}{
	"web/app": {2, 20 * time.Second},
}

var goldenBackoffSince = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

type goldenFile struct {
	Data string `json:"data"`
	Mode string `json:"mode"`
}

type goldenVolume struct {
	Name      string                `json:"name"`
	HostPath  *HostPathVolume       `json:"hostPath,omitempty"`
	EmptyDir  *EmptyDirVolume       `json:"emptyDir,omitempty"`
	Files     map[string]goldenFile `json:"files,omitempty"`
	FilesKind string                `json:"filesKind,omitempty"`
	Memory    bool                  `json:"memory,omitempty"`
	FSGroup   *int64                `json:"fsGroup,omitempty"`
}

type goldenContainer struct {
	Name string `json:"name"`
	// SkippedEnv are envFrom keys left out (InvalidEnvFromKeys).
	SkippedEnv     []string        `json:"skippedEnv,omitempty"`
	NeedsImageUser bool            `json:"needsImageUser,omitempty"`
	Error          string          `json:"error,omitempty"`
	Config         json.RawMessage `json:"config,omitempty"`
	SubPaths       []SubPath       `json:"subPaths,omitempty"`
}

type golden struct {
	NoClusterDNS bool              `json:"noClusterDNS,omitempty"`
	Sandbox      json.RawMessage   `json:"sandbox"`
	Volumes      []goldenVolume    `json:"volumes,omitempty"`
	VolumesError string            `json:"volumesError,omitempty"`
	HostsFile    string            `json:"hostsFile"`
	Containers   []goldenContainer `json:"containers"`
}

func protoJSON(t *testing.T, m proto.Message) json.RawMessage {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// translate runs the whole translation of a pod as the executor does, with
// the host's answers made up: volumes under /host/<uid>/<name>, and configs
// the ConfigMaps and Secrets the node has.
func translate(t *testing.T, pod *corev1.Pod, configs Configs) golden {
	var g golden
	g.NoClusterDNS = NoClusterDNS(pod)
	sb, err := Sandbox(pod, goldenNode, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.Sandbox = protoJSON(t, sb)
	podIPs := []string{goldenPodIP}
	if pod.Spec.HostNetwork {
		podIPs = []string{goldenNode.HostIP}
	}
	g.HostsFile = string(HostsFile(pod, podIPs, []byte("127.0.0.1\tlocalhost\n192.168.7.1\tnode-a")))
	podDir := path.Join("/host", string(pod.UID))
	hostVolumes := map[string]HostVolume{}
	vols, err := Volumes(pod, goldenNode, configs)
	if err != nil {
		g.VolumesError = err.Error()
	}
	for _, v := range vols {
		gv := goldenVolume{Name: v.Name, HostPath: v.HostPath, EmptyDir: v.EmptyDir, FSGroup: v.FSGroup, FilesKind: v.FilesKind, Memory: v.Memory}
		hv := HostVolume{Path: path.Join(podDir, v.Name)}
		switch {
		case v.HostPath != nil:
			hv.Path = v.HostPath.Path
		case v.Files != nil:
			hv.ReadOnly = true
			gv.Files = map[string]goldenFile{}
			for name, f := range v.Files {
				gv.Files[name] = goldenFile{Data: string(f.Data), Mode: fmt.Sprintf("%#o", f.Mode)}
			}
		}
		hostVolumes[v.Name] = hv
		g.Volumes = append(g.Volumes, gv)
	}
	var ctrs []corev1.Container
	ctrs = append(ctrs, pod.Spec.InitContainers...)
	ctrs = append(ctrs, pod.Spec.Containers...)
	for i := range ctrs {
		ctr := &ctrs[i]
		restart := goldenRestarts[strings.TrimSuffix(pod.Name, "-"+goldenNode.Name)+"/"+ctr.Name]
		in := ContainerInput{
			Node:         goldenNode,
			ImageRef:     fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(ctr.Image))),
			PodIPs:       podIPs,
			Volumes:      hostVolumes,
			Configs:      configs,
			RestartCount: restart.count,
			Backoff:      restart.backoff,
		}
		if restart.backoff > 0 {
			in.BackoffSince = goldenBackoffSince
		}
		gc := goldenContainer{Name: ctr.Name, NeedsImageUser: NeedsImageUser(pod, ctr), SkippedEnv: InvalidEnvFromKeys(pod, ctr, configs)}
		if gc.NeedsImageUser {
			in.ImageUser = goldenImageUsers[ctr.Image]
		}
		if !MountsEtcHosts(ctr) {
			in.HostsFile = path.Join(podDir, "etc-hosts")
		}
		if ctr.TerminationMessagePath != "" {
			in.TerminationMessageFile = path.Join(podDir, "containers", ctr.Name, fmt.Sprint(restart.count))
		}
		cfg, subPaths, err := Container(pod, ctr, in)
		if err != nil {
			gc.Error = err.Error()
		} else {
			gc.Config = protoJSON(t, cfg)
			gc.SubPaths = subPaths
		}
		g.Containers = append(g.Containers, gc)
	}
	return g
}

// readableEnvs shows env values (bytes, so base64 in protobuf JSON) as text.
func readableEnvs(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if envs, ok := x.([]any); ok && k == "envs" {
				for _, e := range envs {
					if kv, ok := e.(map[string]any); ok {
						if s, ok := kv["value"].(string); ok {
							if b, err := base64.StdEncoding.DecodeString(s); err == nil {
								kv["value"] = string(b)
							}
						}
					}
				}
				continue
			}
			readableEnvs(x)
		}
	case []any:
		for _, x := range v {
			readableEnvs(x)
		}
	}
}

// stableJSON indents JSON with sorted keys, whatever produced it
// (protojson's spacing is deliberately unstable).
func stableJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	readableEnvs(generic)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(generic); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestGolden translates representative pods (testdata/*.yaml, parsed and
// defaulted as manifests are) into CRI sandbox and container configs,
// volume plans and hosts files, and compares them with
// testdata/*.golden.json. Messages are protobuf JSON with env values shown
// as text; zero values are left out as protobuf does (seccomp {} is
// RuntimeDefault, namespace modes absent are POD). After a deliberate
// change: go test ./internal/podconfig -run TestGolden -update.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test pods in testdata: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			f, err := manifest.ParseFile(path.Join("/etc/kubernetes/manifests", filepath.Base(file)), data, goldenNode.Name)
			if err != nil {
				t.Fatal(err)
			}
			pods := f.Pods
			configs := Configs{}
			for _, c := range f.Configs {
				configs[c.Key()] = c
			}
			if len(pods) != 1 {
				t.Fatalf("%d pods in %s, want 1", len(pods), file)
			}
			got := stableJSON(t, translate(t, pods[0], configs))
			goldenPath := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("translation of %s differs from %s (go test -run TestGolden -update rewrites it):\n%s", file, goldenPath, lineDiff(string(want), string(got)))
			}
		})
	}
}

// lineDiff shows the lines that differ, with their numbers.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
