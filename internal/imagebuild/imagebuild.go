// Package imagebuild builds small OCI images from statically linked programs,
// for Ballast's examples and tests (no image can be pulled on the test
// machines, so the sandbox image and test apps are built locally).
package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ballast-dev/ballast/internal/atomicfile"
)

// BuildProgram compiles the main package in pkgDir (a directory, absolute or
// relative to the current directory) into a statically linked linux/amd64
// binary at outBinary: CGO_ENABLED=0 go build -trimpath -ldflags="-s -w".
func BuildProgram(ctx context.Context, pkgDir string, outBinary string) error {
	absPkg, err := filepath.Abs(pkgDir)
	if err != nil {
		return err
	}
	absOut, err := filepath.Abs(outBinary)
	if err != nil {
		return err
	}
	goBin := "go"
	if p, err := exec.LookPath("go"); err == nil {
		goBin = p
	} else if gr := os.Getenv("GOROOT"); gr != "" {
		goBin = filepath.Join(gr, "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", absOut, ".")
	cmd.Dir = absPkg
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkgDir, err, out)
	}
	return nil
}

// Option changes what Image puts in the image.
type Option func(*options)

type options struct {
	links []string
}

// Links adds /bin/NAME symlinks to the binary for each name, for a
// multi-call program that acts on the name it is run as (as busybox).
func Links(names ...string) Option {
	return func(o *options) { o.links = append(o.links, names...) }
}

// Image returns a single-layer linux/amd64 image holding the binary at
// /<base name of binaryPath>, plus /tmp (1777) and minimal /etc/passwd,
// /etc/group and /etc/nsswitch.conf. The config's Entrypoint is entrypoint
// (default: the binary), Env is PATH plus env, and it runs as root.
func Image(binaryPath string, entrypoint []string, env []string, opts ...Option) (v1.Image, error) {
	bin, err := os.ReadFile(binaryPath)
	if err != nil {
		return nil, err
	}
	return ImageOf(filepath.Base(binaryPath), bin, entrypoint, env, opts...)
}

// ImageOf is Image for a binary already read, put at /<binName>.
func ImageOf(binName string, bin []byte, entrypoint []string, env []string, opts ...Option) (v1.Image, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	layerTar, err := layerTarball(binName, bin, o.links)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	if len(entrypoint) == 0 {
		entrypoint = []string{"/" + binName}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = append([]string(nil), entrypoint...)
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	cf.Config.WorkingDir = "/"
	return mutate.ConfigFile(img, cf)
}

func layerTarball(binName string, bin []byte, links []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	dir := func(n string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: mode, ModTime: mtime})
	}
	file := func(n string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: mode, Size: int64(len(data)), ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc/", 0o755) },
		func() error { return dir("tmp/", 0o1777) },
		func() error {
			return file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"))
		},
		func() error { return file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")) },
		func() error { return file("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")) },
		func() error { return file(binName, 0o755, bin) },
	}
	if len(links) > 0 {
		steps = append(steps, func() error { return dir("bin/", 0o755) })
	}
	for _, l := range links {
		steps = append(steps, func() error {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + l, Linkname: "/" + binName, Mode: 0o777, ModTime: mtime})
		})
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteTarball writes img as a docker-archive tarball (the format of
// `docker save`, which `ctr images import` accepts) tagged ref. Use a fully
// qualified ref (e.g. "ballast.local/pause:v1"): ctr and CRI normalize a
// short one like "hello:v1" to "docker.io/library/hello:v1".
func WriteTarball(img v1.Image, ref string, path string) error {
	tag, err := name.NewTag(ref, name.WeakValidation)
	if err != nil {
		return fmt.Errorf("image ref %q: %w", ref, err)
	}
	// Atomically: a watcher of an images directory sees it complete.
	return atomicfile.WriteWith(path, 0o644, func(w io.Writer) error { return tarball.Write(tag, img, w) })
}
