package controlplane

import (
	"context"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/bootstrap"
	"github.com/ballast-dev/ballast/internal/imagebuild"
	"github.com/ballast-dev/ballast/internal/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden manifests in testdata")

func TestManifestsGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"embedded", Config{DataDir: "/var/lib/ballast", Listen: "127.0.0.1:6443", Image: "ballast.local/ballast:sha-0123", LogLevel: "info"}},
		{"etcd-pod", Config{DataDir: "/var/lib/ballast", Listen: "0.0.0.0:6443", Hosts: []string{"10.0.0.5", "cp.example"}, EtcdPod: true, Image: "ballast.local/ballast:sha-0123"}},
		{"external", Config{DataDir: "/srv/b", Listen: "10.0.0.5:7443", EtcdServers: []string{"https://10.0.0.9:2379"}, EtcdCAFile: "/etc/etcd/ca.crt", EtcdCertFile: "/etc/etcd/c.crt", EtcdKeyFile: "/etc/etcd/c.key", Image: "i:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := Manifests(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var all strings.Builder
			for _, name := range []string{ServerManifest, EtcdManifest} {
				data, ok := files[name]
				if !ok {
					continue
				}
				// Valid for the node agent, strictly decoded.
				pods, err := manifest.Parse(name, data, "cp1")
				if err != nil {
					t.Fatalf("%s is not a valid static pod:\n%v\n%s", name, err, data)
				}
				checkPod(t, tc.cfg, pods[0])
				all.WriteString("### " + name + "\n")
				all.Write(data)
			}
			golden := filepath.Join("testdata", tc.name+".yaml")
			if *update {
				if err := os.WriteFile(golden, []byte(all.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if all.String() != string(want) {
				t.Errorf("manifests differ from %s (go test -update to accept):\n%s", golden, all.String())
			}
			again, _ := Manifests(tc.cfg)
			for name := range files {
				if string(again[name]) != string(files[name]) {
					t.Errorf("%s differs from one call to the next", name)
				}
			}
		})
	}
}

func checkPod(t *testing.T, cfg Config, p *corev1.Pod) {
	t.Helper()
	if p.Namespace != Namespace || p.Annotations[AnnotationDataDir] != cfg.DataDir || !p.Spec.HostNetwork {
		t.Errorf("pod %s: namespace %q annotations %v hostNetwork %v", p.Name, p.Namespace, p.Annotations, p.Spec.HostNetwork)
	}
	c := p.Spec.Containers[0]
	if c.Image != cfg.Image || c.ImagePullPolicy != corev1.PullNever || c.ReadinessProbe == nil {
		t.Errorf("container %+v", c)
	}
	switch p.Name {
	case "ballast-server-cp1":
		if cfg.EtcdPod != (p.Annotations["ballast.dev/after"] == EtcdPod) {
			t.Errorf("server waits for etcd: %v, etcd in a pod: %v", p.Annotations, cfg.EtcdPod)
		}
		if c.Command[0] != BinaryPath || c.Command[1] != "server" || !contains(c.Command, "--data-dir="+cfg.DataDir) || !contains(c.Command, "--listen="+cfg.Listen) {
			t.Errorf("server command %v", c.Command)
		}
	case "etcd-cp1":
		if !contains(c.Command, "--data-dir="+cfg.EtcdDir()) || c.ReadinessProbe.Exec == nil {
			t.Errorf("etcd container %+v", c)
		}
	default:
		t.Errorf("unexpected pod %s", p.Name)
	}
}

func contains(a []string, s string) bool {
	for _, x := range a {
		if x == s {
			return true
		}
	}
	return false
}

func TestManifestsRefusals(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{DataDir: "rel", Listen: "127.0.0.1:6443"}, "absolute path"},
		{Config{DataDir: "/d", Listen: "127.0.0.1:0"}, "fixed host:port"},
		{Config{DataDir: "/d", Listen: "6443"}, "fixed host:port"},
		{Config{DataDir: "/d", Listen: "127.0.0.1:6443", EtcdPod: true, EtcdServers: []string{"https://e:2379"}}, "choose one"},
	} {
		if _, err := Manifests(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

var (
	staticOnce sync.Once
	staticBin  string
	staticErr  error
)

// staticBinary is a small static program to build the image from.
func staticBinary(t *testing.T) string {
	staticOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cp-bin")
		if err != nil {
			staticErr = err
			return
		}
		staticBin = filepath.Join(dir, "pause")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		staticErr = imagebuild.BuildProgram(ctx, "../../images/pause", staticBin)
	})
	if staticErr != nil {
		t.Fatal(staticErr)
	}
	return staticBin
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func options(t *testing.T, root string) Options {
	return Options{
		Config:      Config{DataDir: filepath.Join(root, "data"), Listen: freeAddr(t)},
		ManifestDir: filepath.Join(root, "manifests"), ImagesDir: filepath.Join(root, "data", "images"),
		NodeName: "cp1", Executable: staticBinary(t), JoinTTL: time.Hour,
	}
}

func TestPrepareIsIdempotent(t *testing.T) {
	root := t.TempDir()
	o := options(t, root)
	res, err := Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{res.Kubeconfig, bootstrap.KubeconfigPath(o.DataDir)} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", p, fi, err)
		}
	}
	if !strings.HasPrefix(res.Image, ImageRepo+":sha-") || len(res.Manifests) != 1 || !strings.Contains(res.JoinCommand(), "--ca-cert-hash "+res.CAHash) {
		t.Errorf("result %+v", res)
	}
	tars, _ := filepath.Glob(filepath.Join(o.ImagesDir, "*.tar"))
	if len(tars) != 1 {
		t.Errorf("images dir holds %v", tars)
	}
	tokens, err := auth.OpenTokens(filepath.Join(o.PKIDir(), auth.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.CheckJoinToken(res.JoinToken, time.Now()); err != nil {
		t.Errorf("the printed join token: %v", err)
	}
	creds, err := bootstrap.ReadCredentials(o.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.Check(res.URL, res.CAHash, "cp1", time.Now()); err != nil {
		t.Errorf("node credentials: %v", err)
	}

	// Again: nothing changes but a new join token.
	before := snapshot(t, root)
	res2, err := Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	if res2.CAHash != res.CAHash || res2.Image != res.Image || res2.JoinToken == res.JoinToken {
		t.Errorf("second run: %+v", res2)
	}
	after := snapshot(t, root)
	for p, m := range before {
		if after[p] != m && !strings.HasSuffix(p, auth.TokenFile) {
			t.Errorf("%s changed on the second run", p)
		}
	}

	// With etcd in a pod, then back: init's etcd manifest comes and goes.
	o.EtcdPod = true
	if res, err = Prepare(o); err != nil || len(res.Manifests) != 2 {
		t.Fatalf("etcd pod: %v %v", res, err)
	}
	o.EtcdPod = false
	if _, err := Prepare(o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(o.ManifestDir, EtcdManifest)); !os.IsNotExist(err) {
		t.Errorf("etcd manifest left behind: %v", err)
	}
}

// snapshot maps every file under root to its modification time.
func snapshot(t *testing.T, root string) map[string]time.Time {
	m := map[string]time.Time{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			m[p] = fi.ModTime()
		}
		return nil
	})
	return m
}

func TestPrepareRefusesAnotherControlPlane(t *testing.T) {
	root := t.TempDir()
	o := options(t, root)
	if _, err := Prepare(o); err != nil {
		t.Fatal(err)
	}

	other := o
	other.DataDir = filepath.Join(root, "other")
	if _, err := Prepare(other); err == nil || !strings.Contains(err.Error(), "control plane of data dir "+o.DataDir) {
		t.Errorf("another data dir, same manifests: %v", err)
	}

	kubeadm := options(t, t.TempDir())
	os.MkdirAll(kubeadm.ManifestDir, 0o755)
	os.WriteFile(filepath.Join(kubeadm.ManifestDir, "kube-apiserver.yaml"), []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n"), 0o644)
	if _, err := Prepare(kubeadm); err == nil || !strings.Contains(err.Error(), "runs kube-apiserver") {
		t.Errorf("kubeadm's manifests: %v", err)
	}

	foreign := options(t, t.TempDir())
	os.MkdirAll(foreign.ManifestDir, 0o755)
	os.WriteFile(filepath.Join(foreign.ManifestDir, ServerManifest), []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: mine\n"), 0o644)
	if _, err := Prepare(foreign); err == nil || !strings.Contains(err.Error(), "not written by ballast init") {
		t.Errorf("a file of init's name: %v", err)
	}

	busy := options(t, t.TempDir())
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	busy.Listen = strings.TrimPrefix(srv.URL, "https://")
	if _, err := Prepare(busy); err == nil || !strings.Contains(err.Error(), "something else listens on") {
		t.Errorf("a foreign server on the address: %v", err)
	}

	// A node that joined another cluster does not init in the same data dir.
	joined := options(t, t.TempDir())
	otherPKI, err := auth.LoadOrCreatePKI(filepath.Join(t.TempDir(), "pki"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, _ := otherPKI.IssueClientCert(auth.User{Name: "system:node:cp1", Groups: []string{auth.GroupNodes}})
	c := &bootstrap.Credentials{Server: "https://10.9.9.9:6443", CAPEM: otherPKI.CAPEM(), CertPEM: cert, KeyPEM: key}
	if err := c.Write(joined.DataDir); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(joined); err == nil || !strings.Contains(err.Error(), "belongs to the cluster at https://10.9.9.9:6443") {
		t.Errorf("a joined node: %v", err)
	}
}

func TestBuildImageRefusesADynamicBinary(t *testing.T) {
	for _, p := range []string{"/bin/sh", "/usr/bin/env"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if _, err := BuildImage(p, t.TempDir()); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
			t.Errorf("%s: %v", p, err)
		}
		return
	}
	t.Skip("no dynamically linked binary found to try")
}

func TestPrepareRefusesARunningAgent(t *testing.T) {
	o := options(t, shortDir(t))
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(o.DataDir, "ballast.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Prepare(o); err == nil || !strings.Contains(err.Error(), "a node agent already runs") {
		t.Errorf("with an agent on the data dir: %v", err)
	}
	if _, err := os.Stat(o.ManifestDir); !os.IsNotExist(err) {
		t.Errorf("the refusal wrote manifests: %v", err)
	}
}

func shortDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "cp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
