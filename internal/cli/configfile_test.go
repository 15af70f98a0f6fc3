package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// run parses args on a fresh command tree and runs only the persistent
// pre-run (the configuration file), returning the command that would run.
func preRun(t *testing.T, defaultConfig string, args ...string) (*cobra.Command, error) {
	t.Helper()
	root := newRoot(defaultConfig)
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatal(err)
	}
	return cmd, root.PersistentPreRunE(cmd, cmd.Flags().Args())
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func flagValue(t *testing.T, cmd *cobra.Command, name string) string {
	t.Helper()
	f := cmd.Flags().Lookup(name)
	if f == nil {
		t.Fatalf("%s has no --%s", cmd.CommandPath(), name)
	}
	return f.Value.String()
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	kubelet := writeFile(t, dir, "kubelet.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: /from-kubelet\ncontainerRuntimeEndpoint: unix:///kubelet.sock\n")
	file := writeFile(t, dir, "config.yaml", `data-dir: /srv/ballast
pod-manifest-path: /from-file
node-name: from-file
config: `+kubelet+`
listen: 0.0.0.0:7443
crash-backoff-max: 30s
`)

	// Every command takes what it has from the file.
	cmd, err := preRun(t, file, "node")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"data-dir": "/srv/ballast", "pod-manifest-path": "/from-file", "node-name": "from-file", "crash-backoff-max": "30s"} {
		if got := flagValue(t, cmd, k); got != want {
			t.Errorf("node --%s = %q, want %q from the file", k, got, want)
		}
	}
	if cmd, err = preRun(t, file, "up"); err != nil || flagValue(t, cmd, "listen") != "0.0.0.0:7443" {
		t.Errorf("up --listen: %v", err)
	}
	if cmd, err = preRun(t, file, "pods"); err != nil || flagValue(t, cmd, "data-dir") != "/srv/ballast" {
		t.Errorf("pods --data-dir: %v", err)
	}
	if cmd, err = preRun(t, file, "server", "token", "list"); err != nil || flagValue(t, cmd, "data-dir") != "/srv/ballast" {
		t.Errorf("server token list --data-dir: %v", err)
	}

	// The command line wins over the file, --hostname-override too.
	cmd, err = preRun(t, file, "node", "--pod-manifest-path", "/mine", "--hostname-override", "edge-7")
	if err != nil {
		t.Fatal(err)
	}
	if flagValue(t, cmd, "pod-manifest-path") != "/mine" || flagValue(t, cmd, "node-name") != "edge-7" {
		t.Errorf("flags lost to the file: %s %s", flagValue(t, cmd, "pod-manifest-path"), flagValue(t, cmd, "node-name"))
	}

	// The file wins over the KubeletConfiguration it names; what it does
	// not set comes from the KubeletConfiguration.
	f := &nodeFlags{}
	cmd = nodeCmd(f)
	root := newRoot(file)
	root.AddCommand(cmd)
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if err := root.PersistentPreRunE(cmd, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.applyConfig(cmd, newLogger("error")); err != nil {
		t.Fatal(err)
	}
	if f.manifestDir != "/from-file" || f.endpoint != "unix:///kubelet.sock" {
		t.Errorf("precedence: manifests %q endpoint %q", f.manifestDir, f.endpoint)
	}

	// --config-file names another file; --config-file= reads none.
	other := writeFile(t, dir, "other.yaml", "data-dir: /other\n")
	if cmd, err = preRun(t, file, "node", "--config-file", other); err != nil || flagValue(t, cmd, "data-dir") != "/other" {
		t.Errorf("--config-file: %v", err)
	}
	if cmd, err = preRun(t, file, "node", "--config-file="); err != nil || flagValue(t, cmd, "data-dir") != "/var/lib/ballast" {
		t.Errorf("--config-file=: %v", err)
	}
	// The default path may be missing; a named file may not.
	if _, err = preRun(t, filepath.Join(dir, "none.yaml"), "node"); err != nil {
		t.Errorf("missing default file: %v", err)
	}
	if _, err = preRun(t, file, "node", "--config-file", filepath.Join(dir, "none.yaml")); err == nil {
		t.Error("a missing --config-file was accepted")
	}
}

func TestConfigFileRefusals(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		file, want string
	}{
		{"data-dir: /x\npod-manifest-dir: /y\n", `config.yaml:2: unknown key "pod-manifest-dir"`},
		{"output: json\n", `unknown key "output"`},                    // a per-invocation flag (pods -o) is no setting
		{"hostname-override: x\n", `unknown key "hostname-override"`}, // the alias: node-name is the key
		{"crash-backoff-max: soon\n", "config.yaml:1: crash-backoff-max: invalid argument"},
	} {
		file := writeFile(t, dir, "config.yaml", tc.file)
		if _, err := preRun(t, file, "node"); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file) {
			t.Errorf("%q: error %v, want %q naming the file", tc.file, err, tc.want)
		}
	}
	// Secrets and one-time values are never read from the file.
	file := writeFile(t, dir, "config.yaml", "token: abc\n")
	if _, err := preRun(t, file, "node"); err == nil || !strings.Contains(err.Error(), `unknown key "token"`) {
		t.Errorf("token in the file: %v", err)
	}
	for _, name := range []string{"token", "ca-cert-hash", "config-file"} {
		for _, k := range configKeys(newRoot("")) {
			if k.Flag.Name == name {
				t.Errorf("--%s is a configuration file key", name)
			}
		}
	}
}

// docs/cli and packaging/config.yaml are generated from the commands: they
// must be up to date (`make docs` regenerates them).
func TestGeneratedReferenceIsUpToDate(t *testing.T) {
	dir := t.TempDir()
	if err := WriteReference(dir); err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	have, _ := filepath.Glob(filepath.Join("..", "..", "docs", "cli", "*.md"))
	if len(want) != len(have) {
		t.Errorf("docs/cli has %d pages, the commands make %d: run `make docs`", len(have), len(want))
	}
	for _, w := range want {
		gen, _ := os.ReadFile(w)
		cur, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli", filepath.Base(w)))
		if err != nil || !bytes.Equal(gen, cur) {
			t.Errorf("docs/cli/%s is out of date: run `make docs`", filepath.Base(w))
		}
	}
	var b bytes.Buffer
	if err := WriteDefaultConfig(&b); err != nil {
		t.Fatal(err)
	}
	cur, err := os.ReadFile(filepath.Join("..", "..", "packaging", "config.yaml"))
	if err != nil || !bytes.Equal(cur, b.Bytes()) {
		t.Errorf("packaging/config.yaml is out of date: run `make docs` (%v)", err)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"completion", "bash"}, {"completion", "zsh"}, {"completion", "fish"}} {
		root := newRoot("")
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if out.Len() == 0 || (args[0] == "version" && !strings.Contains(out.String(), "commit: ")) || (args[0] == "completion" && !strings.Contains(out.String(), "ballast")) {
			t.Errorf("ballast %v:\n%.300s", args, out.String())
		}
	}
}
