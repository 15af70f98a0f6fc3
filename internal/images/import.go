// Package images imports image tarballs from Ballast's images directory
// (--images-dir) into containerd, so that pods can run on machines with no
// registry access.
//
// The CRI API has no call to import an image (only PullImage from a
// registry), so tarballs are imported with ctr, which ships with
// containerd, into the CRI plugin's namespace "k8s.io", and unpacked into
// the snapshotter the CRI plugin uses. The CRI plugin then lists the image
// (ImageStatus) by the names in the tarball.
package images

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Namespace is the containerd namespace of the CRI plugin.
const Namespace = "k8s.io"

// IsTarball reports whether name looks like an image tarball the images
// directory accepts: .tar, .tar.gz or .tgz (OCI layout or docker-archive,
// as written by `docker save`, `ctr images export`, `crane pull --format`
// or internal/imagebuild.WriteTarball). Hidden files are ignored.
func IsTarball(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	return strings.HasSuffix(name, ".tar") || strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".tgz")
}

// Importer imports tarballs with ctr into a containerd.
type Importer struct {
	// Ctr is the ctr binary; "" means "ctr" on PATH.
	Ctr string
	// Socket is containerd's gRPC socket path.
	Socket string
	// Snapshotter to unpack into; it must be the CRI plugin's snapshotter
	// or containers cannot be created from the image. "" means overlayfs
	// (containerd's and ctr's default).
	Snapshotter string
}

// Import imports file (an OCI or docker-archive tarball, optionally gzip
// compressed) into containerd's "k8s.io" namespace on socket with
// `ctr --address SOCK -n k8s.io images import --no-unpack=false
// --snapshotter overlayfs FILE`.
func Import(ctx context.Context, ctrPath, socket, file string) error {
	return Importer{Ctr: ctrPath, Socket: socket}.Import(ctx, file)
}

// Import imports file; see the package function Import.
func (im Importer) Import(ctx context.Context, file string) error {
	ctr := im.Ctr
	if ctr == "" {
		ctr = "ctr"
	}
	path, err := exec.LookPath(ctr)
	if err != nil {
		return fmt.Errorf("importing %s: ctr not found (%v); it ships with containerd: apt-get install -y containerd", file, err)
	}
	snap := im.Snapshotter
	if snap == "" {
		snap = "overlayfs"
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("importing %s: %w", file, err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var in io.Reader = br
	// ctr 1.6 reads a plain tar stream; decompress gzip ourselves.
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("importing %s: %w", file, err)
		}
		defer zr.Close()
		in = zr
	}
	cmd := exec.CommandContext(ctx, path, "--address", im.Socket, "-n", Namespace,
		"images", "import", "--no-unpack=false", "--snapshotter", snap, "-")
	cmd.Stdin = in
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("importing %s: ctr images import: %w: %s", file, err, strings.TrimSpace(out.String()))
	}
	return nil
}
