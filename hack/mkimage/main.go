// Command mkimage builds one of Ballast's small images (images/<name>) into a
// docker-archive tarball, for the example and for offline machines:
//
//	go run ./hack/mkimage -program images/hello -ref ballast.local/hello:v1 -o hello.tar
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ballast-dev/ballast/images/hello/toolbox"
	"github.com/ballast-dev/ballast/internal/imagebuild"
)

func main() {
	program := flag.String("program", "", "main package directory of a statically linked program")
	ref := flag.String("ref", "", "image reference to tag the tarball with")
	out := flag.String("o", "", "tarball to write")
	flag.Parse()
	if *program == "" || *ref == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mkimage -program DIR -ref REF -o FILE")
		os.Exit(2)
	}
	if err := run(*program, *ref, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(program, ref, out string) error {
	dir, err := os.MkdirTemp("", "mkimage")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, filepath.Base(program))
	if err := imagebuild.BuildProgram(context.Background(), program, bin); err != nil {
		return err
	}
	var opts []imagebuild.Option
	if filepath.Base(program) == "hello" {
		// The test image's shell commands, for kubectl exec and cp.
		opts = append(opts, imagebuild.Links(toolbox.Commands...))
	}
	img, err := imagebuild.Image(bin, nil, nil, opts...)
	if err != nil {
		return err
	}
	// Written atomically, so a watcher of the images directory sees it complete.
	return imagebuild.WriteTarball(img, ref, out)
}
