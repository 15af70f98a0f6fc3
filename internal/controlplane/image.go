package controlplane

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ballast-dev/ballast/internal/imagebuild"
)

// ImageRepo is the repository of the control plane's image; its tag is the
// binary's digest, so a new binary makes a new image and init's next run
// rolls the control plane onto it.
const ImageRepo = "ballast.local/ballast"

// imageFilePrefix names the tarballs init writes into the images directory.
const imageFilePrefix = "ballast-control-plane-"

// BuildImage makes the control plane's image from the binary at exe (the
// running one: /proc/self/exe) and writes it as a tarball into imagesDir,
// where the node agent imports it; it removes the tarballs of earlier
// binaries. A tarball already there for this binary is kept as it is. It
// returns the image's reference.
func BuildImage(exe, imagesDir string) (string, error) {
	bin, err := os.ReadFile(exe)
	if err != nil {
		return "", fmt.Errorf("reading the running binary to build the control plane's image: %w", err)
	}
	if err := checkStatic(exe); err != nil {
		return "", err
	}
	sum := sha256.Sum256(bin)
	tag := "sha-" + hex.EncodeToString(sum[:])[:16]
	ref := ImageRepo + ":" + tag
	if err := os.MkdirAll(imagesDir, 0o700); err != nil {
		return "", err
	}
	name := imageFilePrefix + tag + ".tar"
	olds, err := filepath.Glob(filepath.Join(imagesDir, imageFilePrefix+"*.tar"))
	if err != nil {
		return "", err
	}
	for _, old := range olds {
		if filepath.Base(old) != name {
			if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", err
			}
		}
	}
	path := filepath.Join(imagesDir, name)
	if _, err := os.Stat(path); err == nil {
		return ref, nil
	}
	img, err := imagebuild.ImageOf(strings.TrimPrefix(BinaryPath, "/"), bin, []string{BinaryPath}, nil)
	if err != nil {
		return "", fmt.Errorf("building the control plane's image: %w", err)
	}
	if err := imagebuild.WriteTarball(img, ref, path); err != nil {
		return "", fmt.Errorf("writing the control plane's image to %s: %w", path, err)
	}
	return ref, nil
}

// checkStatic refuses a dynamically linked binary: in an image of its own,
// with no C library, it could not start.
func checkStatic(exe string) error {
	f, err := elf.Open(exe)
	if err != nil {
		return fmt.Errorf("%s: not an ELF executable (%v): the control plane's image is built from the running ballast binary", exe, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: the control plane runs it alone in an image, so build it static (CGO_ENABLED=0 go build, as `make build` does)", exe)
		}
	}
	return nil
}
