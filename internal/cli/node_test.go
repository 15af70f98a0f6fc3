package cli

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKubeletConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: /srv/manifests\ncontainerRuntimeEndpoint: unix:///run/x.sock\ncontainerLogMaxFiles: 3\nclusterDNS: [10.0.0.10]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	f := &nodeFlags{}
	cmd := nodeCmd(f)
	if err := cmd.ParseFlags([]string{"--config", file}); err != nil {
		t.Fatal(err)
	}
	if err := f.applyConfig(cmd, log); err != nil {
		t.Fatal(err)
	}
	if f.manifestDir != "/srv/manifests" || f.endpoint != "unix:///run/x.sock" || f.logMaxFiles != 3 {
		t.Errorf("config not applied: %+v", f)
	}

	// Flags on the command line win over the file.
	f = &nodeFlags{}
	cmd = nodeCmd(f)
	if err := cmd.ParseFlags([]string{"--config", file, "--pod-manifest-path", "/mine"}); err != nil {
		t.Fatal(err)
	}
	if err := f.applyConfig(cmd, log); err != nil {
		t.Fatal(err)
	}
	if f.manifestDir != "/mine" {
		t.Errorf("flag lost to the file: %s", f.manifestDir)
	}

	// A file of another kind is refused, naming it.
	other := filepath.Join(dir, "pod.yaml")
	os.WriteFile(other, []byte("apiVersion: v1\nkind: Pod\n"), 0o644)
	f = &nodeFlags{}
	cmd = nodeCmd(f)
	cmd.ParseFlags([]string{"--config", other})
	if err := f.applyConfig(cmd, log); err == nil || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), "KubeletConfiguration") {
		t.Errorf("error = %v", err)
	}
}

func TestHostnameOverrideIsAnAlias(t *testing.T) {
	f := &nodeFlags{}
	if err := nodeCmd(f).ParseFlags([]string{"--hostname-override", "edge-7"}); err != nil {
		t.Fatal(err)
	}
	if f.nodeName != "edge-7" {
		t.Errorf("node name %q", f.nodeName)
	}
}
