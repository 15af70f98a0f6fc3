package executor_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/planner"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/volumes"
)

const configPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  hostNetwork: true
  volumes:
  - {name: cfg, configMap: {name: cfg}}
  containers:
  - name: app
    image: registry.example/app:v1
    envFrom: [{configMapRef: {name: cfg}}]
    volumeMounts:
    - {name: cfg, mountPath: /etc/app}
`

func configsOf(t *testing.T, yaml string) map[manifest.ConfigKey]*manifest.Config {
	t.Helper()
	f, err := manifest.ParseFile("/m/cfg.yaml", []byte(yaml), "n1")
	if err != nil {
		t.Fatal(err)
	}
	out := map[manifest.ConfigKey]*manifest.Config{}
	for _, c := range f.Configs {
		out[c.Key()] = c
	}
	return out
}

// A missing object fails the container at the config step with the
// kubelet's message; with the object the container starts with the files;
// a refresh rewrites them in place and starts nothing.
func TestConfigVolumes(t *testing.T) {
	f, x, ev, dataDir := setupIn(t)
	pods, err := manifest.Parse("/m/web.yaml", []byte(configPod), "n1")
	if err != nil {
		t.Fatal(err)
	}
	pod := pods[0]

	d := x.Run(context.Background(), job(pod, nil, start()))
	got := d.Failed["app"]
	if d.Err == nil || got.Step != planner.StepConfig || got.Message != `MountVolume.SetUp failed for volume "cfg" : configmap "cfg" not found` {
		t.Fatalf("without the ConfigMap: %v %+v", d.Err, got)
	}
	if !strings.Contains(ev.String(), "Failed") {
		t.Errorf("no Failed event: %s", ev)
	}

	j := job(pod, d.Runtime, podplan.Plan{Start: []podplan.Start{{Name: "app"}}})
	j.Configs = configsOf(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {app.conf: v1}\n")
	d = x.Run(context.Background(), j)
	if d.Err != nil {
		t.Fatalf("with the ConfigMap: %v %+v", d.Err, d.Failed)
	}
	file := filepath.Join(volumes.PodDir(dataDir, string(pod.UID)), "configmap", "cfg", "app.conf")
	if b, _ := os.ReadFile(file); string(b) != "v1" {
		t.Errorf("volume file %q", b)
	}
	containers := len(f.Containers())

	j = job(pod, d.Runtime, podplan.Plan{Refresh: []string{"cfg"}})
	j.Configs = configsOf(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {app.conf: v2}\n")
	d = x.Run(context.Background(), j)
	if d.Err != nil {
		t.Fatalf("refresh: %v", d.Err)
	}
	if b, _ := os.ReadFile(file); string(b) != "v2" {
		t.Errorf("volume file after the refresh %q", b)
	}
	if n := len(f.Containers()); n != containers {
		t.Errorf("a refresh made containers: %d -> %d", containers, n)
	}
}
