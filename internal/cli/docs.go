package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra/doc"

	"github.com/ballast-dev/ballast/internal/config"
)

// WriteReference writes the command-line reference into dir, one markdown
// page per command (docs/cli), generated from the command definitions:
// `make docs` runs it, and a test fails when the pages are out of date.
func WriteReference(dir string) error {
	root := newRoot(config.DefaultPath)
	root.InitDefaultCompletionCmd()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	prepend := func(string) string {
		return "<!-- Generated from the command definitions by `make docs`: do not edit. -->\n\n"
	}
	link := func(name string) string { return strings.TrimSuffix(filepath.Base(name), ".md") + ".md" }
	return doc.GenMarkdownTreeCustom(root, dir, prepend, link)
}

// WriteDefaultConfig writes the commented default configuration file that
// the package installs as /etc/ballast/config.yaml.
func WriteDefaultConfig(w io.Writer) error {
	return config.Default(w, configKeys(newRoot(config.DefaultPath)))
}
