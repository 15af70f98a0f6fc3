// Command gendocs writes what is generated from Ballast's command
// definitions: the CLI reference (docs/cli/*.md) and the default
// configuration file the package installs (packaging/config.yaml).
//
//	go run ./hack/gendocs -docs docs/cli -config packaging/config.yaml
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/cli"
)

func main() {
	docs := flag.String("docs", "docs/cli", "directory of the CLI reference (its .md files are replaced)")
	cfg := flag.String("config", "packaging/config.yaml", "default configuration file to write")
	flag.Parse()
	if err := run(*docs, *cfg); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(docs, cfg string) error {
	// Pages of commands that no longer exist go too.
	old, err := filepath.Glob(filepath.Join(docs, "*.md"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	if err := cli.WriteReference(docs); err != nil {
		return err
	}
	var b bytes.Buffer
	if err := cli.WriteDefaultConfig(&b); err != nil {
		return err
	}
	return atomicfile.WriteFile(cfg, b.Bytes(), 0o644)
}
