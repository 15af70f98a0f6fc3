package manifest

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/validation"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// marker is a secret value: no error message may ever hold it.
const marker = "s3cr3t-MARKER-value"

func mustParseFile(t *testing.T, path, data string) *File {
	t.Helper()
	f, err := ParseFile(path, []byte(data), node)
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	for _, p := range f.Pods {
		if err := validation.ValidatePod(p); err != nil {
			t.Errorf("ValidatePod refuses the pod ParseFile made of %s: %v", path, err)
		}
	}
	return f
}

func parseFileErr(t *testing.T, data string) string {
	t.Helper()
	f, err := ParseFile("/m/cfg.yaml", []byte(data), node)
	if err == nil {
		t.Fatalf("ParseFile succeeded, want an error; got %d pods, %d configs", len(f.Pods), len(f.Configs))
	}
	if len(Errors(err)) == 0 {
		t.Fatalf("error holds no *Error: %v", err)
	}
	return err.Error()
}

const appPod = `apiVersion: v1
kind: Pod
metadata:
  name: app
spec:
  containers:
  - name: app
    image: app:v1
`

func TestConfigObjects(t *testing.T) {
	f := mustParseFile(t, "/m/app.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  labels: {app: web}
data:
  app.conf: "port = 8080\n"
  level: debug
binaryData:
  blob: AAEC
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: kube-system
type: kubernetes.io/basic-auth
data:
  username: YWRtaW4=
stringData:
  password: `+marker+`
---
`+appPod)
	if len(f.Pods) != 1 || len(f.Configs) != 2 {
		t.Fatalf("got %d pods and %d configs", len(f.Pods), len(f.Configs))
	}
	cm, s := f.Configs[0], f.Configs[1]
	if cm.Kind() != KindConfigMap || cm.Key() != (ConfigKey{KindConfigMap, "default", "app-config"}) || cm.File != "/m/app.yaml" {
		t.Errorf("configmap: %v in %s", cm.Key(), cm.File)
	}
	if got := cm.Keys(); strings.Join(got, ",") != "app.conf,blob,level" {
		t.Errorf("keys %v", got)
	}
	if v, _ := cm.Value("blob"); string(v) != "\x00\x01\x02" {
		t.Errorf("binaryData blob = %q", v)
	}
	if s.Key() != (ConfigKey{KindSecret, "kube-system", "creds"}) {
		t.Errorf("secret: %v", s.Key())
	}
	if v, _ := s.Value("password"); string(v) != marker || s.Secret.StringData != nil {
		t.Errorf("stringData not merged into data: %q %v", v, s.Secret.StringData)
	}
	if v, _ := s.Value("username"); string(v) != "admin" {
		t.Errorf("username = %q", v)
	}
	if s.Secret.APIVersion != "v1" || s.Secret.Kind != "Secret" || cm.ConfigMap.Kind != "ConfigMap" {
		t.Errorf("type meta not set")
	}
	if cm.Hash == "" || cm.Hash == s.Hash {
		t.Errorf("hashes %q %q", cm.Hash, s.Hash)
	}
	r := Redacted(s.Secret)
	if v := r.Data["password"]; v == nil || len(v) != 0 {
		t.Errorf("redacted password = %q", v)
	}
	if string(s.Secret.Data["password"]) != marker {
		t.Errorf("Redacted changed the original")
	}

	// Opaque by default; a List beside Pods; JSON.
	f = mustParseFile(t, "/m/list.json", `{"apiVersion": "v1", "kind": "List", "items": [
	  {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "stringData": {"k": "v"}},
	  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
	  {"kind": "ConfigMap", "metadata": {"name": "c"}}
	]}`)
	if len(f.Pods) != 1 || len(f.Configs) != 2 || f.Configs[0].Secret.Type != corev1.SecretTypeOpaque {
		t.Fatalf("list: %d pods, %d configs", len(f.Pods), len(f.Configs))
	}
}

// A pod keeps its identity when ConfigMaps join it in its file: adding
// config to a manifest restarts nothing.
func TestPodIdentityBesideConfigs(t *testing.T) {
	alone := mustParseFile(t, "/m/app.yaml", appPod).Pods[0]
	with := mustParseFile(t, "/m/app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"+appPod).Pods[0]
	if alone.UID != with.UID {
		t.Errorf("a ConfigMap document before the pod changed its UID")
	}
	list := "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {containers: [{name: c, image: i}]}}\n"
	before := mustParseFile(t, "/m/l.yaml", list).Pods[0]
	after := mustParseFile(t, "/m/l.yaml", strings.Replace(list, "items:\n", "items:\n- {kind: ConfigMap, apiVersion: v1, metadata: {name: x}}\n", 1)).Pods[0]
	if before.UID != after.UID {
		t.Errorf("a ConfigMap item before the pod changed its UID")
	}
}

func TestConfigErrors(t *testing.T) {
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
	sec := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n"
	tests := []struct{ name, data, want string }{
		{"bad key", cm + "data:\n  a/b: x\n", `cfg.yaml:6: data[a/b]: Invalid value: "a/b": a valid config key must consist of alphanumeric characters`},
		{"dot dot key", cm + "data:\n  ..x: x\n", `data[..x]: Invalid value: "..x": must not start with '..'`},
		{"number value", cm + "data:\n  port: 8080\n", "cfg.yaml:6: data[port]: Invalid type: must be a string, not a number (8080); put it in quotes"},
		{"duplicate key", cm + "data:\n  k: x\nbinaryData:\n  k: eA==\n", `data[k]: Invalid value: "k": duplicate of key present in binaryData`},
		{"too big", cm + "data:\n  k: " + strings.Repeat("x", validation.MaxConfigSize+1) + "\n", "data: Too long: the ConfigMap's values hold 1048577 bytes, at most 1048576 are allowed"},
		{"no name", "apiVersion: v1\nkind: ConfigMap\ndata: {}\n", "metadata.name: Required value: name the ConfigMap"},
		{"bad name", strings.Replace(cm, "name: c", "name: C_1", 1), `cfg.yaml:4: metadata.name: Invalid value: "C_1"`},
		{"unknown field", cm + "dta: {}\n", `cfg.yaml:5: dta: Unknown field: "dta" is not a field Kubernetes knows here; did you mean "data"?`},
		{"spec", cm + "spec: {}\n", `spec: Unknown field`},
		{"generateName", strings.Replace(cm, "  name: c\n", "  name: c\n  generateName: c-\n", 1), "metadata.generateName: Forbidden: a ConfigMap or Secret of the manifest directory needs a fixed name"},
		{"immutable not bool", cm + "immutable: yes\n", "immutable: Invalid type: must be a boolean"},
		{"secret bad base64", sec + "data:\n  k: " + marker + "\n", "data[k]: Invalid value: not valid base64"},
		{"secret number", sec + "stringData:\n  k: 12345\n", "stringData[k]: Invalid type: must be a string, not a number; put it in quotes"},
		{"secret tls", sec + "type: kubernetes.io/tls\nstringData:\n  tls.crt: x\n", `data[tls.key]: Required value: a Secret of type kubernetes.io/tls needs the key "tls.key"`},
		{"secret dockerconfig", sec + "type: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: " + marker + "\n", "data[.dockerconfigjson]: Invalid value: must be valid JSON"},
		{"secret token", sec + "type: kubernetes.io/service-account-token\n", "type: Forbidden: static pods cannot use service account tokens"},
		{"secret bad stringData key", sec + "stringData:\n  a b: " + marker + "\n", `stringData[a b]: Invalid value: "a b"`},
		{"duplicate configmap", cm + "---\n" + cm, `cfg.yaml:9: metadata.name: Duplicate value: "c": the document at line 1 already defines this ConfigMap`},
		{"List item kind", "apiVersion: v1\nkind: List\nitems:\n- {kind: Service, metadata: {name: x}}\n", `items[0].kind: Unsupported value: "Service": a manifest file holds a Pod, ConfigMap or Secret`},
		{"PodList of configmaps", "apiVersion: v1\nkind: PodList\nitems:\n- {kind: ConfigMap, apiVersion: v1, metadata: {name: x}}\n", `items[0].kind: Unsupported value: "ConfigMap": a PodList holds Pods only; make it a List`},
		{"second document broken", cm + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: [1]\n", "cfg.yaml:9: data: Invalid type: must be a mapping, not a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := parseFileErr(t, tt.data)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error\n  %s\nwant it to contain\n  %s", msg, tt.want)
			}
			if strings.Contains(msg, marker) {
				t.Errorf("the error shows a secret value: %s", msg)
			}
		})
	}
}

func TestConfigChange(t *testing.T) {
	parse := func(data string) *Config {
		return mustParseFile(t, "/m/c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"+data).Configs[0]
	}
	mutable, changed := parse("data: {k: a}\n"), parse("data: {k: b}\n")
	if err := ValidateConfigChange(mutable, changed); err != nil {
		t.Errorf("a mutable ConfigMap may change: %v", err)
	}
	im := parse("immutable: true\ndata: {k: a}\n")
	if err := ValidateConfigChange(im, mustParseFile(t, "/m/c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: {x: y}}\nimmutable: true\ndata: {k: a}\n").Configs[0]); err != nil {
		t.Errorf("an immutable ConfigMap's labels may change: %v", err)
	}
	for what, next := range map[string]*Config{
		"its data cannot change": parse("immutable: true\ndata: {k: b}\n"),
		"it cannot be unset":     parse("data: {k: a}\n"),
	} {
		err := ValidateConfigChange(im, next)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), what) || !strings.HasPrefix(err.Error(), "/m/c.yaml: configmap c: Forbidden") {
			t.Errorf("want %q, got %v", what, err)
		}
	}
}

const refPod = `apiVersion: v1
kind: Pod
metadata:
  name: app
spec:
  volumes:
  - {name: cfg, configMap: {name: app-config, items: [{key: app.conf, path: conf/app.conf, mode: 0600}]}}
  - {name: creds, secret: {secretName: creds, defaultMode: 0400, optional: true}}
  - name: all
    projected:
      sources:
      - configMap: {name: app-config}
      - secret: {name: creds, items: [{key: password, path: pw}]}
      - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
  initContainers:
  - name: init
    image: app:v1
    envFrom: [{secretRef: {name: init-env}}]
  containers:
  - name: app
    image: app:v1
    envFrom: [{prefix: CFG_, configMapRef: {name: app-config}}]
    env:
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: LEVEL, valueFrom: {configMapKeyRef: {name: other, key: level, optional: true}}}
    volumeMounts:
    - {name: cfg, mountPath: /etc/app}
    - {name: creds, mountPath: /etc/app/app.conf, subPath: app.conf}
`

func TestConfigRefs(t *testing.T) {
	pod := mustParseFile(t, "/m/app.yaml", refPod).Pods[0]
	if m := pod.Spec.Volumes[0].ConfigMap.DefaultMode; m == nil || *m != 0o644 {
		t.Errorf("configMap defaultMode = %v, want 0644", m)
	}
	if m := pod.Spec.Volumes[2].Projected.DefaultMode; m == nil || *m != 0o644 {
		t.Errorf("projected defaultMode = %v, want 0644", m)
	}
	var got []string
	for _, r := range ConfigRefs(pod) {
		got = append(got, r.Key.String()+"|"+r.Item+"|"+r.Volume+"|"+r.Container)
	}
	want := []string{
		"configmap default/app-config||cfg|", "secret default/creds||creds|",
		"configmap default/app-config||all|", "secret default/creds||all|",
		"secret default/init-env|||init", "configmap default/app-config|||app",
		"secret default/creds|password||app", "configmap default/other|level||app",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("refs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var keys []string
	for _, k := range ConfigKeys(pod) {
		keys = append(keys, k.String())
	}
	if strings.Join(keys, ",") != "configmap default/app-config,configmap default/other,secret default/creds,secret default/init-env" {
		t.Errorf("keys %v", keys)
	}
}

func TestWithConfigs(t *testing.T) {
	objs := func(docs ...string) func(ConfigKey) *Config {
		m := map[ConfigKey]*Config{}
		for _, d := range docs {
			for _, c := range mustParseFile(t, "/m/c.yaml", d).Configs {
				m[c.Key()] = c
			}
		}
		return func(k ConfigKey) *Config { return m[k] }
	}
	cm := func(data string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata: {" + data + "}\n"
	}
	sec := func(pw string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {password: " + pw + ", other: x}\n"
	}
	plain := mustParseFile(t, "/m/p.yaml", appPod).Pods[0]
	if got := WithConfigs(plain, objs()); got != plain {
		t.Errorf("a pod without references changed")
	}
	pod := mustParseFile(t, "/m/app.yaml", refPod).Pods[0]
	base := WithConfigs(pod, objs(cm("k: a"), sec(marker)))
	if base == pod || base.UID == pod.UID || base.Annotations[wellknown.AnnotationConfigHash] != string(base.UID) || base.Annotations[wellknown.AnnotationConfigDataHash] == "" {
		t.Fatalf("identity not covering the config: %s %v", base.UID, base.Annotations)
	}
	if pod.Annotations[wellknown.AnnotationConfigDataHash] != "" || pod.UID == base.UID {
		t.Errorf("WithConfigs changed its argument")
	}
	if strings.Contains(base.Annotations[wellknown.AnnotationConfigDataHash], marker) {
		t.Errorf("the hash shows the secret")
	}
	same := WithConfigs(pod, objs(cm("k: a"), sec(marker)))
	if same.UID != base.UID {
		t.Errorf("the identity is not a function of the data")
	}
	for name, tc := range map[string]struct {
		lookup  func(ConfigKey) *Config
		changes bool
	}{
		"envFrom data":          {objs(cm("k: b"), sec(marker)), true},
		"keyRef value":          {objs(cm("k: a"), sec("other")), true},
		"another key of keyRef": {objs(cm("k: a"), strings.Replace(sec(marker), "other: x", "other: y", 1)), false},
		"secret missing":        {objs(cm("k: a")), true},
	} {
		got := WithConfigs(pod, tc.lookup)
		if (got.UID != base.UID) != tc.changes {
			t.Errorf("%s: UID changed = %v, want %v", name, got.UID != base.UID, tc.changes)
		}
	}
	// Volumes alone: updated in place, unless the pod asks to restart.
	vol := mustParseFile(t, "/m/v.yaml", strings.Replace(appPod, "spec:\n", "spec:\n  volumes: [{name: c, configMap: {name: app-config}}]\n", 1)).Pods[0]
	if WithConfigs(vol, objs(cm("k: a"))) != vol {
		t.Errorf("a pod using config in volumes only changed identity")
	}
	restart := mustParseFile(t, "/m/v.yaml", strings.Replace(strings.Replace(appPod, "spec:\n", "spec:\n  volumes: [{name: c, configMap: {name: app-config}}]\n", 1),
		"  name: app\n", "  name: app\n  annotations: {ballast.dev/restart-on-config-change: \"true\"}\n", 1)).Pods[0]
	a, b := WithConfigs(restart, objs(cm("k: a"))), WithConfigs(restart, objs(cm("k: b")))
	if a.UID == b.UID || a.UID == restart.UID {
		t.Errorf("restart-on-config-change: a volume's data change keeps the identity")
	}
	msg := parseFileErr(t, strings.Replace(appPod, "  name: app\n", "  name: app\n  annotations: {ballast.dev/restart-on-config-change: \"yes\"}\n", 1))
	if !strings.Contains(msg, `metadata.annotations[ballast.dev/restart-on-config-change]: Unsupported value: "yes"`) {
		t.Errorf("got %s", msg)
	}
}

// Every prefix of a file with pods, ConfigMaps and Secrets (as a file being
// written looks) is parsed or refused, never a crash, and no message shows
// the secret value.
func TestParseFilePrefixes(t *testing.T) {
	data := "apiVersion: v1\nkind: List\nitems:\n- {kind: Secret, apiVersion: v1, metadata: {name: s}, stringData: {k: " + marker + "}}\n" +
		"---\n" + refPod + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata: {a: b}\n"
	for i := range len(data) {
		_, err := ParseFile("/m/p.yaml", []byte(data[:i]), node)
		if err != nil && strings.Contains(err.Error(), marker) {
			t.Fatalf("prefix %d: the error shows the secret: %v", i, err)
		}
	}
}
