package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// values are the flags' variables.
type values struct {
	dir     string
	port    int
	backoff time.Duration
	servers string
	list    []string
	debug   bool
	secret  string
}

func flags() (*pflag.FlagSet, *values) {
	v := &values{}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.StringVar(&v.dir, "data-dir", "/var/lib/ballast", "where")
	fs.IntVar(&v.port, "port", 10250, "port")
	fs.DurationVar(&v.backoff, "backoff", time.Second, "backoff")
	fs.StringVar(&v.servers, "etcd-servers", "", "servers")
	fs.StringSliceVar(&v.list, "sans", nil, "names")
	fs.BoolVar(&v.debug, "debug", false, "debug")
	fs.StringVar(&v.secret, "token", "", "secret")
	Exclude(fs, "token")
	return fs, v
}

var known = []string{"data-dir", "port", "backoff", "etcd-servers", "sans", "debug", "token", "listen"}

func TestApply(t *testing.T) {
	f, err := Parse("/etc/ballast/config.yaml", []byte(`# comment
data-dir: /srv/ballast
port: 0
backoff: 2s
etcd-servers: [https://a:2379, https://b:2379]
sans:
- a
- b
debug: true
token: from-the-file
listen: 0.0.0.0:6443 # another command's
`))
	if err != nil {
		t.Fatal(err)
	}
	fs, v := flags()
	if err := fs.Parse([]string{"--port", "9"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(fs, known); err != nil {
		t.Fatal(err)
	}
	if v.dir != "/srv/ballast" || v.backoff != 2*time.Second || v.servers != "https://a:2379,https://b:2379" || strings.Join(v.list, ",") != "a,b" || !v.debug {
		t.Errorf("not applied: %+v", v)
	}
	if v.port != 9 {
		t.Errorf("the command line lost to the file: port %d", v.port)
	}
	if v.secret != "" {
		t.Errorf("an excluded flag was read from the file: %q", v.secret)
	}
	if !fs.Lookup("data-dir").Changed {
		t.Error("an applied setting does not count as set")
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown key", "data-dir: /x\npod-manifest-dir: /y\n", "c.yaml:2: unknown key \"pod-manifest-dir\""},
		{"suggestion", "portt: 1\n", `did you mean "port"?`},
		{"bad value", "\n\nport: many\n", "c.yaml:3: port: invalid argument \"many\""},
		{"bad duration", "backoff: 5\n", "c.yaml:1: backoff:"},
		{"mapping value", "data-dir:\n  a: b\n", "c.yaml:2: data-dir: must be a value or a list of values, not a mapping"},
		{"null value", "data-dir:\n", "c.yaml:1: data-dir: no value"},
		{"duplicate", "port: 1\nport: 2\n", "c.yaml:2: port is set twice (first on line 1)"},
		{"not a mapping", "- a\n- b\n", "c.yaml:1: the file must be a mapping"},
		{"syntax", "port: [1\n", "c.yaml:1: invalid YAML"},
		{"two documents", "port: 1\n---\nport: 2\n", "a second YAML document"},
		{"comma in list item", "etcd-servers: [\"a,b\"]\n", "holds a comma"},
		{"nested list", "sans: [[a]]\n", "a list item must be a plain value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("c.yaml", []byte(tc.file))
			if err == nil {
				fs, _ := flags()
				err = f.Apply(fs, known)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestEmptyAndMissing(t *testing.T) {
	for _, data := range []string{"", "# only comments\n", "---\n"} {
		f, err := Parse("c.yaml", []byte(data))
		if err != nil || len(f.Settings) != 0 {
			t.Errorf("%q: %v %v", data, f, err)
		}
	}
	missing := filepath.Join(t.TempDir(), "none.yaml")
	if f, err := Read(missing, true); err != nil || len(f.Settings) != 0 {
		t.Errorf("missing default: %v %v", f, err)
	}
	if _, err := Read(missing, false); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing explicit file: %v", err)
	}
}

// The default file lists every key, commented out, and reads back as empty;
// uncommented, it reads back as the defaults.
func TestDefault(t *testing.T) {
	fs, _ := flags()
	var keys []Key
	fs.VisitAll(func(f *pflag.Flag) {
		if !Excluded(f) {
			keys = append(keys, Key{Flag: f, Commands: []string{"node"}})
		}
	})
	var b strings.Builder
	if err := Default(&b, keys); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	f, err := Parse("default.yaml", []byte(out))
	if err != nil || len(f.Settings) != 0 {
		t.Fatalf("the default file sets something: %v %v\n%s", f, err, out)
	}
	var uncommented []string
	for _, line := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(line, "#"); ok && strings.Contains(k, ": ") && !strings.HasPrefix(k, " ") {
			uncommented = append(uncommented, k)
		}
	}
	if len(uncommented) != len(keys) {
		t.Fatalf("%d keys in the file, want %d:\n%s", len(uncommented), len(keys), out)
	}
	f, err = Parse("default.yaml", []byte(strings.Join(uncommented, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	fs2, v := flags()
	if err := f.Apply(fs2, known); err != nil {
		t.Fatalf("the defaults do not apply: %v\n%s", err, strings.Join(uncommented, "\n"))
	}
	if v.dir != "/var/lib/ballast" || v.port != 10250 || v.backoff != time.Second {
		t.Errorf("defaults read back as %+v", v)
	}
}
