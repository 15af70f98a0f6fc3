// Package controlplane owns `ballast init`'s control plane as static pods:
// the manifests of the API server (and, with etcd in a pod of its own, of
// etcd) that the node agent runs from its manifest directory, the image
// they run, built from the running binary, and the checks that keep init
// from taking over another control plane. The manifests are a pure function
// of the configuration; the image and the checks are I/O at the edges.
package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/ballast-dev/ballast/internal/storage/etcd"
)

// Names of what init writes into the manifest directory, and of the pods.
const (
	ServerManifest = "ballast-server.yaml"
	EtcdManifest   = "ballast-etcd.yaml"
	ServerPod      = "ballast-server"
	EtcdPod        = "etcd"
	Namespace      = "kube-system"
	// AnnotationDataDir marks a pod as part of the control plane of the
	// data dir it names: init rewrites its own manifests and refuses others.
	AnnotationDataDir = "ballast.dev/control-plane"
	// BinaryPath is where the ballast binary is in the control plane's image.
	BinaryPath = "/ballast"
)

// Config is the control plane init writes.
type Config struct {
	// DataDir holds the PKI (DataDir/pki) and the embedded etcd's data
	// (DataDir/etcd); the server pod mounts both, at the same paths.
	DataDir string
	// Listen is the server's host:port (its pod uses the host's network).
	Listen string
	// Hosts are extra names and addresses for the serving certificate.
	Hosts []string
	// EtcdPod runs etcd in a static pod of its own, which the server waits for
	// (ballast.dev/after); otherwise the server embeds it. An external
	// cluster (EtcdServers, with the TLS files) needs neither.
	EtcdPod                               bool
	EtcdServers                           []string
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// Image is the image both pods run (see BuildImage).
	Image    string
	LogLevel string
}

// EtcdDir is where etcd keeps its data and socket.
func (c Config) EtcdDir() string { return filepath.Join(c.DataDir, "etcd") }

// PKIDir is where the server keeps its CA, certificates and tokens.
func (c Config) PKIDir() string { return filepath.Join(c.DataDir, "pki") }

// Manifests returns the files init writes into the manifest directory, by
// name: the server's, and etcd's with EtcdPod.
func Manifests(c Config) (map[string][]byte, error) {
	if !filepath.IsAbs(c.DataDir) {
		return nil, fmt.Errorf("data dir %q: the control plane's pods mount it, so it must be an absolute path", c.DataDir)
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil || port == "" || port == "0" {
		return nil, fmt.Errorf("--listen %q: the control plane needs a fixed host:port (e.g. 127.0.0.1:6443): its manifests, kubeconfigs and join command name it", c.Listen)
	}
	if len(c.EtcdServers) > 0 && c.EtcdPod {
		return nil, fmt.Errorf("--etcd=pod and --etcd-servers: choose one (an etcd pod on this node, or an external cluster)")
	}
	probeHost := host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		probeHost = "127.0.0.1"
	}
	args := []string{BinaryPath, "server", "--config-file=", "--data-dir=" + c.DataDir, "--listen=" + c.Listen}
	if len(c.Hosts) > 0 {
		args = append(args, "--tls-san="+strings.Join(c.Hosts, ","))
	}
	etcdServers := c.EtcdServers
	if c.EtcdPod {
		etcdServers = []string{etcd.SocketURL(c.EtcdDir())}
	}
	if len(etcdServers) > 0 {
		args = append(args, "--etcd-servers="+strings.Join(etcdServers, ","))
	}
	for flag, v := range map[string]string{"--etcd-cafile": c.EtcdCAFile, "--etcd-certfile": c.EtcdCertFile, "--etcd-keyfile": c.EtcdKeyFile} {
		if v != "" {
			args = append(args, flag+"="+v)
		}
	}
	if c.LogLevel != "" {
		args = append(args, "--log-level="+c.LogLevel)
	}
	slices.Sort(args[2:]) // the same flags give the same file
	mounts := []mount{{"pki", c.PKIDir()}}
	if len(c.EtcdServers) == 0 {
		mounts = append(mounts, mount{"etcd", c.EtcdDir()})
	}
	files := map[string][]byte{}
	server, err := render(serverTemplate, podData{
		Config: c, Name: ServerPod, Component: ServerPod, After: c.EtcdPod,
		Command: args, ProbeHost: probeHost, ProbePort: port, Mounts: mounts,
	})
	if err != nil {
		return nil, err
	}
	files[ServerManifest] = server
	if c.EtcdPod {
		cmd := []string{BinaryPath, "etcd", "--config-file=", "--data-dir=" + c.EtcdDir()}
		health := []string{BinaryPath, "etcd", "health", "--config-file=", "--data-dir=" + c.EtcdDir()}
		if c.LogLevel != "" {
			cmd = append(cmd, "--log-level="+c.LogLevel)
		}
		e, err := render(etcdTemplate, podData{
			Config: c, Name: EtcdPod, Component: EtcdPod, Command: cmd, Health: health,
			Mounts: []mount{{"etcd", c.EtcdDir()}},
		})
		if err != nil {
			return nil, err
		}
		files[EtcdManifest] = e
	}
	return files, nil
}

type mount struct{ Name, Path string }

type podData struct {
	Config
	Name, Component      string
	After                bool
	Command, Health      []string
	ProbeHost, ProbePort string
	Mounts               []mount
}

var funcs = template.FuncMap{
	// q quotes a string for YAML (JSON strings are YAML).
	"q": func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	},
}

func render(t *template.Template, d podData) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("control plane manifest %s: %w", d.Name, err)
	}
	return b.Bytes(), nil
}

const header = `# {{.Name}}: part of this node's control plane, written by ` + "`ballast init`" + `.
# The node agent runs it from this file like any static pod: edit it to
# change it (the change rolls out, and goes back by itself if the new pod
# fails); ` + "`ballast init`" + ` with the same flags writes it again.
apiVersion: v1
kind: Pod
metadata:
  name: {{.Name}}
  namespace: ` + Namespace + `
  labels:
    component: {{.Component}}
    tier: control-plane
  annotations:
    ` + AnnotationDataDir + `: {{q .DataDir}}
{{- if .After}}
    ballast.dev/after: ` + EtcdPod + `
{{- end}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 15
  containers:
  - name: {{.Component}}
    image: {{q .Image}}
    # Built by ballast init from its own binary and imported from the
    # images directory: never pulled.
    imagePullPolicy: Never
    command:
{{- range .Command}}
    - {{q .}}
{{- end}}
`

const mountsPart = `    volumeMounts:
{{- range .Mounts}}
    - name: {{.Name}}
      mountPath: {{q .Path}}
{{- end}}
  volumes:
{{- range .Mounts}}
  - name: {{.Name}}
    hostPath:
      path: {{q .Path}}
      type: DirectoryOrCreate
{{- end}}
`

var serverTemplate = template.Must(template.New("server").Funcs(funcs).Parse(header + `    readinessProbe:
      httpGet:
        host: {{q .ProbeHost}}
        port: {{.ProbePort}}
        path: /readyz
        scheme: HTTPS
      periodSeconds: 2
      failureThreshold: 3
    livenessProbe:
      httpGet:
        host: {{q .ProbeHost}}
        port: {{.ProbePort}}
        path: /livez
        scheme: HTTPS
      initialDelaySeconds: 15
      periodSeconds: 10
      failureThreshold: 6
` + mountsPart))

var etcdTemplate = template.Must(template.New("etcd").Funcs(funcs).Parse(header + `    readinessProbe:
      exec:
        command:
{{- range .Health}}
        - {{q .}}
{{- end}}
      periodSeconds: 2
      timeoutSeconds: 5
` + mountsPart))
