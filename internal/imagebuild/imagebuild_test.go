package imagebuild

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func TestBuildImageTarball(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pause")
	if err := BuildProgram(context.Background(), filepath.Join(repoRoot(t), "images", "pause"), bin); err != nil {
		t.Fatal(err)
	}
	img, err := Image(bin, nil, []string{"FOO=bar"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pause.tar")
	if err := WriteTarball(img, "ballast.local/pause:v1", out); err != nil {
		t.Fatal(err)
	}

	// docker-archive layout: manifest.json with the tag.
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var manifest []struct{ RepoTags []string }
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "manifest.json" {
			if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(manifest) != 1 || len(manifest[0].RepoTags) != 1 || manifest[0].RepoTags[0] != "ballast.local/pause:v1" {
		t.Fatalf("manifest.json = %+v", manifest)
	}

	back, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := back.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/pause" {
		t.Errorf("entrypoint %q", cf.Config.Entrypoint)
	}
	if cf.Config.Env[len(cf.Config.Env)-1] != "FOO=bar" {
		t.Errorf("env %q", cf.Config.Env)
	}
	seen := layerEntries(t, back)
	if h := seen["pause"]; h == nil || h.Mode&0o111 == 0 || h.Size < 1000 {
		t.Errorf("binary entry %+v", h)
	}
	if seen["tmp/"] == nil || seen["etc/passwd"] == nil {
		t.Errorf("missing basics: %v", seen)
	}
}

// layerEntries reads the headers of an image's single layer, by name.
func layerEntries(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	seen := map[string]*tar.Header{}
	lr := tar.NewReader(rc)
	for {
		h, err := lr.Next()
		if err == io.EOF {
			return seen
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = h
	}
}

func TestLinks(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "multi")
	if err := os.WriteFile(bin, []byte("#!not really a program"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := Image(bin, nil, nil, Links("sh", "tar"))
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{}
	for name, h := range layerEntries(t, img) {
		if h.Typeflag == tar.TypeSymlink {
			links[name] = h.Linkname
		}
	}
	if len(links) != 2 || links["bin/sh"] != "/multi" || links["bin/tar"] != "/multi" {
		t.Errorf("links %v, want bin/sh and bin/tar -> /multi", links)
	}
}
