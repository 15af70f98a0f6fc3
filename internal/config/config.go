// Package config owns Ballast's configuration file (/etc/ballast/config.yaml
// by default): a flat YAML mapping whose keys are command-line flags, read
// strictly (unknown keys, duplicates and values of the wrong shape are errors
// that name the file and line) and applied to a command's flags wherever the
// command line left them unset. The flags are the one source of truth: this
// package knows no key of its own, and Default writes the commented file the
// package installs from the same flags.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	yaml "go.yaml.in/yaml/v3"

	"github.com/ballast-dev/ballast/internal/suggest"
)

// DefaultPath is read when it exists and --config-file is not given.
const DefaultPath = "/etc/ballast/config.yaml"

// Annotation marks a flag the file never sets: a secret or a value that only
// makes sense for one invocation (`ballast join --token`). Set it with
// Exclude.
const Annotation = "ballast.dev/config-file"

// Exclude marks flag name of fs as never read from the file.
func Exclude(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil {
			if f.Annotations == nil {
				f.Annotations = map[string][]string{}
			}
			f.Annotations[Annotation] = []string{"no"}
		}
	}
}

// Excluded tells whether f is never read from the file.
func Excluded(f *pflag.Flag) bool {
	return slices.Contains(f.Annotations[Annotation], "no")
}

// Setting is one key of the file.
type Setting struct {
	Key  string
	Line int
	// Values holds one value for a scalar, each item for a list.
	Values []string
	List   bool
}

// File is a parsed configuration file.
type File struct {
	Path     string
	Settings []Setting
}

// Error is a problem in the file, at a line (0 when the file as a whole is
// wrong).
type Error struct {
	Path string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// Read reads the file at path. missingOK makes a missing file an empty File
// (for the default path); otherwise a missing file is an error.
func Read(path string, missingOK bool) (*File, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && missingOK {
		return &File{Path: path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("configuration file: %w", err)
	}
	return Parse(path, data)
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse reads a configuration file's content: one YAML document, a mapping
// of keys to scalars or lists of scalars (or nothing at all: an empty file or
// only comments).
func Parse(path string, data []byte) (*File, error) {
	f := &File{Path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return f, nil
		}
		msg, line := err.Error(), 0
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		return nil, &Error{Path: path, Line: line, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ") + "; fix the syntax"}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, &Error{Path: path, Line: extra.Line, Msg: "a second YAML document: the file holds one mapping of settings; remove the '---' and what follows"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return f, nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return f, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{Path: path, Line: root.Line, Msg: "the file must be a mapping of settings (key: value, one per line, keys as the command-line flags without their dashes)"}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, &Error{Path: path, Line: k.Line, Msg: "a key must be a plain name (a command-line flag without its dashes)"}
		}
		key := strings.TrimPrefix(k.Value, "--")
		if prev, ok := seen[key]; ok {
			return nil, &Error{Path: path, Line: k.Line, Msg: fmt.Sprintf("%s is set twice (first on line %d); keep one", key, prev)}
		}
		seen[key] = k.Line
		s := Setting{Key: key, Line: k.Line}
		switch {
		case v.Kind == yaml.AliasNode:
			return nil, &Error{Path: path, Line: v.Line, Msg: key + ": YAML aliases are not supported here; write the value"}
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			return nil, &Error{Path: path, Line: v.Line, Msg: key + ": no value; give one (\"\" for an empty string) or remove the line"}
		case v.Kind == yaml.ScalarNode:
			s.Values = []string{v.Value}
		case v.Kind == yaml.SequenceNode:
			s.List = true
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return nil, &Error{Path: path, Line: item.Line, Msg: key + ": a list item must be a plain value"}
				}
				s.Values = append(s.Values, item.Value)
			}
		default:
			return nil, &Error{Path: path, Line: v.Line, Msg: key + ": must be a value or a list of values, not a mapping"}
		}
		f.Settings = append(f.Settings, s)
	}
	return f, nil
}

// Apply sets on fs each setting whose flag the command line did not set.
// known reports whether a key is a setting at all (a flag of some command
// that reads the file); a known key that fs does not have is left alone
// (another command's setting). An unknown key is an error naming its line.
// Applied flags count as set (Changed), so what reads other files later
// (the KubeletConfiguration of --config) leaves them alone: the command line
// wins over this file, and this file over the KubeletConfiguration.
func (f *File) Apply(fs *pflag.FlagSet, known []string) error {
	for _, s := range f.Settings {
		if !slices.Contains(known, s.Key) {
			return &Error{Path: f.Path, Line: s.Line, Msg: unknownKey(s.Key, known)}
		}
		fl := fs.Lookup(s.Key)
		if fl == nil || Excluded(fl) || fl.Changed {
			continue
		}
		if err := set(fs, fl, s); err != nil {
			return &Error{Path: f.Path, Line: s.Line, Msg: fmt.Sprintf("%s: %v", s.Key, err)}
		}
	}
	return nil
}

func set(fs *pflag.FlagSet, fl *pflag.Flag, s Setting) error {
	if sv, ok := fl.Value.(pflag.SliceValue); ok {
		if err := sv.Replace(s.Values); err != nil {
			return err
		}
		fl.Changed = true
		return nil
	}
	// A list for a comma-separated flag (--etcd-servers a,b).
	for _, v := range s.Values {
		if s.List && strings.Contains(v, ",") {
			return fmt.Errorf("list item %q holds a comma; give one value per item", v)
		}
	}
	return fs.Set(fl.Name, strings.Join(s.Values, ","))
}

func unknownKey(key string, known []string) string {
	msg := fmt.Sprintf("unknown key %q: the keys are the flags of ballast node, server, up, init and join (without their dashes)", key)
	if best := suggest.Closest(key, slices.Values(known)); best != "" {
		return msg + fmt.Sprintf("; did you mean %q?", best)
	}
	return msg + "; see `ballast node --help` or docs/cli"
}

// Key is one setting the file may hold, for Default.
type Key struct {
	Flag *pflag.Flag
	// Commands are the commands that have the flag.
	Commands []string
}

// Default writes the commented configuration file the package installs:
// every key, commented out, with its flag's help text and default, and the
// commands it applies to.
func Default(w io.Writer, keys []Key) error {
	sort.Slice(keys, func(i, j int) bool { return keys[i].Flag.Name < keys[j].Flag.Name })
	var b strings.Builder
	b.WriteString(`# Ballast's configuration file, read by every ballast command (default
# /etc/ballast/config.yaml; another with --config-file PATH).
#
# Each key is a command-line flag without its dashes; a flag given on the
# command line wins over this file, and this file over a KubeletConfiguration
# (--config). Unknown keys are errors. Everything below is commented out: the
# values shown are the defaults. Lists may be written as YAML lists or as one
# comma-separated string.
#
# A secret is never read from here (tokens: use a kubeconfig). Tuning flags
# that --help hides are accepted too. This file is generated from the flags
# (make docs); docs/cli has the same reference per command.
`)
	for _, k := range keys {
		fl := k.Flag
		if fl.Hidden {
			continue // tuning flags: accepted, not advertised
		}
		b.WriteString("\n")
		for _, line := range wrap(fl.Usage+" ("+strings.Join(k.Commands, ", ")+")", 76) {
			b.WriteString("# " + line + "\n")
		}
		def := fl.DefValue
		if _, ok := fl.Value.(pflag.SliceValue); ok {
			def = strings.Trim(def, "[]")
		}
		fmt.Fprintf(&b, "#%s: %s\n", fl.Name, yamlScalar(def))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wrap breaks text into lines of at most width characters, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// yamlScalar quotes s when plain YAML would read it as something else.
func yamlScalar(s string) string {
	if s == "" {
		return `""`
	}
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err == nil {
		if str, ok := v.(string); ok && str == s {
			return s
		}
		if _, isNum := v.(int); isNum {
			return s
		}
		if _, isBool := v.(bool); isBool {
			return s
		}
	}
	return strconv.Quote(s)
}
