package agent_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/agent"
	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/source"
	"github.com/ballast-dev/ballast/internal/volumes"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

const secretMarker = "s3cr3t-agent-marker"

// configSnap parses a file of pods and config objects as the source does.
func configSnap(t *testing.T, file, yaml string) source.Snapshot {
	t.Helper()
	path := filepath.Join(manifDir, file)
	f, err := manifest.ParseFile(path, []byte(yaml), nodeA)
	if err != nil {
		t.Fatal(err)
	}
	objs := map[manifest.ConfigKey]*manifest.Config{}
	for _, c := range f.Configs {
		objs[c.Key()] = c
	}
	s := source.Snapshot{Configs: f.Configs}
	for _, p := range f.Pods {
		s.Pods = append(s.Pods, source.Desired{Pod: manifest.WithConfigs(p, func(k manifest.ConfigKey) *manifest.Config { return objs[k] }), File: path})
	}
	return s
}

const cfgPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  volumes:
  - {name: cfg, configMap: {name: cfg}}
  containers:
  - name: app
    image: ` + image + `
    volumeMounts:
    - {name: cfg, mountPath: /etc/app}
`

func cfgObjects(value string) string {
	return `---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {app.conf: ` + value + `}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: ` + secretMarker + `}
`
}

// A pod waits for the ConfigMap its volume needs and starts as soon as it
// arrives; a change of the data rewrites the file in the same running
// container; readers see the objects, never the Secret's values. (Secret
// volumes are a tmpfs, which needs root: the e2e tests mount them.)
func TestConfigMapVolume(t *testing.T) {
	h := newHarness(t)
	var dataDir string
	a := h.start(nodeA, func(o *agent.Options) { dataDir = o.DataDir })
	a.send(configSnap(t, "web.yaml", cfgPod))
	p := waitPod(t, a, "web-"+nodeA, "waiting for its ConfigMap", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "CreateContainerConfigError" &&
			strings.Contains(cs[0].State.Waiting.Message, `configmap "cfg" not found`)
	})
	uid := string(p.UID)

	a.send(configSnap(t, "web.yaml", cfgPod+cfgObjects("v1")))
	waitPod(t, a, "web-"+nodeA, "running", runningWith(0))
	file := filepath.Join(volumes.PodDir(dataDir, uid), "configmap", "cfg", "app.conf")
	if b, _ := os.ReadFile(file); string(b) != "v1" {
		t.Fatalf("volume file %q", b)
	}
	ctrs := containersOf(h.fake, uid)

	a.send(configSnap(t, "web.yaml", cfgPod+cfgObjects("v2")))
	eventually(t, "the file shows the new data", func() (bool, string) {
		b, _ := os.ReadFile(file)
		return string(b) == "v2", string(b)
	})
	if got := containersOf(h.fake, uid); len(got) != len(ctrs) || got[0].ID != ctrs[0].ID {
		t.Errorf("the refresh changed containers: %v -> %v", ctrs, got)
	}
	waitPod(t, a, "web-"+nodeA, "still running, never restarted", runningWith(0))

	cms, secrets := a.ConfigMaps(), a.Secrets()
	if len(cms) != 1 || cms[0].Data["app.conf"] != "v2" || cms[0].Annotations[wellknown.AnnotationUsedBy] != "default/web-"+nodeA ||
		cms[0].Annotations[wellknown.AnnotationManifest] != filepath.Join(manifDir, "web.yaml") {
		t.Errorf("configmaps: %+v", cms)
	}
	if len(secrets) != 1 || len(secrets[0].Data) != 1 || len(secrets[0].Data["password"]) != 0 ||
		secrets[0].Annotations[wellknown.AnnotationSecretData] != wellknown.SecretDataNodeLocal {
		t.Errorf("secrets: %+v", secrets)
	}
	b, _ := json.Marshal([]any{a.Pods(), cms, secrets, a.Events(), a.ManifestProblems()})
	if strings.Contains(string(b), secretMarker) {
		t.Errorf("what the agent shows holds the secret value")
	}
}
