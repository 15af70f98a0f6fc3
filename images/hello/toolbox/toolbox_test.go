package toolbox

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code, ok := Main(args, strings.NewReader(stdin), &out, &errOut)
	if !ok {
		t.Fatalf("%s is not a toolbox command", args[0])
	}
	return code, out.String(), errOut.String()
}

func TestMainDispatchesOnBaseName(t *testing.T) {
	if _, ok := Main([]string{"/hello"}, nil, io.Discard, io.Discard); ok {
		t.Error("/hello is not a command: the server must run")
	}
	if code, ok := Main([]string{"/bin/false"}, nil, io.Discard, io.Discard); !ok || code != 1 {
		t.Errorf("/bin/false: code %d ok %v", code, ok)
	}
	for _, c := range Commands {
		if _, ok := commands()[c]; !ok {
			t.Errorf("Commands lists %q, which is not implemented", c)
		}
	}
}

func TestShell(t *testing.T) {
	for _, tc := range []struct {
		script string
		code   int
		out    string
	}{
		{"exit 3", 3, ""},
		{"exit", 0, ""},
		{"exit 256", 0, ""},
		{"true; exit 7; exit 1", 7, ""},
		{"false || exit 4", 4, ""},
		{"true && exit 5", 5, ""},
		{"false && exit 5", 1, ""},
		{"false; exit $?", 1, ""},
		{"X=hi; exit 9 # comment ; exit 1", 9, ""},
		{"echo 'a  b' \"c $0\" d\\ e", 0, "a  b c sh d e\n"},
		{"X=world; echo \"hello ${X}\" $X", 0, "hello world world\n"},
		{"nosuchcommand-xyz", 127, ""},
	} {
		code, out, errOut := run(t, "", "sh", "-c", tc.script)
		if code != tc.code || out != tc.out {
			t.Errorf("sh -c %q: code %d out %q (stderr %q), want %d %q", tc.script, code, out, errOut, tc.code, tc.out)
		}
	}
	if code, _, errOut := run(t, "", "sh", "-c", "cat x | true"); code != 2 || !strings.Contains(errOut, "no pipes") {
		t.Errorf("a pipe: code %d, stderr %q: want a clear refusal", code, errOut)
	}
	if code, _, errOut := run(t, "", "sh", "-c", "echo 'open"); code != 2 || !strings.Contains(errOut, "unterminated") {
		t.Errorf("unterminated quote: %d %q", code, errOut)
	}
	// Positional parameters after the script, as sh -c SCRIPT NAME ARGS.
	if code, out, _ := run(t, "", "sh", "-c", "echo $0 $1 $#", "me", "one"); code != 0 || out != "me one 1\n" {
		t.Errorf("parameters: %d %q", code, out)
	}
}

// sh < FILE: commands it runs share its standard input, so it reads a line
// at a time and leaves the rest to them (here cat reads the last line).
func TestShellReadsStandardInput(t *testing.T) {
	shIn := func(script string) (int, string) {
		p := filepath.Join(t.TempDir(), "in")
		os.WriteFile(p, []byte(script), 0o644)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out bytes.Buffer
		code, _ := Main([]string{"sh"}, f, &out, io.Discard)
		return code, out.String()
	}
	if code, out := shIn("echo one\nfalse\necho two $?; exit 6\necho never\n"); code != 6 || out != "one\ntwo 1\n" {
		t.Errorf("sh < script: code %d out %q", code, out)
	}
	if code, _ := shIn("false\n"); code != 1 {
		t.Errorf("at end of input sh exits with the last status: %d", code)
	}
	if code, out := shIn("cat\nfor cat\n"); code != 0 || out != "for cat\n" {
		t.Errorf("sh then cat on one input: %d %q", code, out)
	}
}

func TestTest(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"-d", dir}, 0},
		{[]string{"-d", file}, 1},
		{[]string{"-f", file}, 0},
		{[]string{"-e", filepath.Join(dir, "none")}, 1},
		{[]string{"!", "-e", filepath.Join(dir, "none")}, 0},
		{[]string{"a", "=", "a"}, 0},
		{[]string{"a", "!=", "a"}, 1},
		{[]string{"-z", ""}, 0},
		{[]string{"-q", "x"}, 2},
	} {
		if code, _, _ := run(t, "", append([]string{"test"}, tc.args...)...); code != tc.code {
			t.Errorf("test %q: %d, want %d", tc.args, code, tc.code)
		}
	}
}

func TestCatEchoStty(t *testing.T) {
	if code, out, _ := run(t, "from stdin", "cat"); code != 0 || out != "from stdin" {
		t.Errorf("cat: %d %q", code, out)
	}
	if code, out, _ := run(t, "", "echo", "-n", "a", "b"); code != 0 || out != "a b" {
		t.Errorf("echo -n: %d %q", code, out)
	}
	if code, _, errOut := run(t, "", "stty", "size"); code != 1 || errOut == "" {
		t.Errorf("stty size without a terminal: %d %q", code, errOut)
	}
}

// The commands `kubectl cp` runs, both ways, through a pipe.
func TestTarAsKubectlCpRunsIt(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "data", "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "data", "a.txt"), []byte("alpha"), 0o640)
	os.WriteFile(filepath.Join(src, "data", "sub", "b.bin"), bytes.Repeat([]byte{0, 1, 2}, 100000), 0o600)
	os.Symlink("a.txt", filepath.Join(src, "data", "link"))

	// From the pod: tar cf - /abs/path; names lose the leading slash.
	code, archive, errOut := run(t, "", "tar", "cf", "-", filepath.Join(src, "data"))
	if code != 0 {
		t.Fatalf("tar cf: %d %s", code, errOut)
	}
	var names []string
	tr := tar.NewReader(strings.NewReader(archive))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	prefix := strings.TrimPrefix(filepath.Join(src, "data"), "/")
	for _, n := range names {
		if !strings.HasPrefix(n, prefix) {
			t.Errorf("member %q does not start with %q (kubectl cp checks it)", n, prefix)
		}
	}
	if len(names) != 5 {
		t.Errorf("members %q, want the dir, 2 files, a subdir and a symlink", names)
	}

	// To the pod: tar -xmf - -C DIR.
	dst := t.TempDir()
	code, _, errOut = run(t, archive, "tar", "-xmf", "-", "-C", dst)
	if code != 0 {
		t.Fatalf("tar -xmf: %d %s", code, errOut)
	}
	got, err := os.ReadFile(filepath.Join(dst, prefix, "sub", "b.bin"))
	if err != nil || len(got) != 300000 {
		t.Fatalf("extracted b.bin: %d bytes, %v", len(got), err)
	}
	if st, _ := os.Stat(filepath.Join(dst, prefix, "a.txt")); st == nil || st.Mode().Perm() != 0o640 {
		t.Errorf("a.txt mode: %v", st)
	}
	if l, _ := os.Readlink(filepath.Join(dst, prefix, "link")); l != "a.txt" {
		t.Errorf("symlink: %q", l)
	}
	code, _, errOut = run(t, archive, "tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", t.TempDir())
	if code != 0 {
		t.Errorf("tar --no-same-permissions --no-same-owner -xmf: %d %s", code, errOut)
	}

	// A member that leaves the directory is refused.
	var evil bytes.Buffer
	tw := tar.NewWriter(&evil)
	tw.WriteHeader(&tar.Header{Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	if code, _, errOut := run(t, evil.String(), "tar", "xf", "-", "-C", dst); code == 0 || !strings.Contains(errOut, "leaves") {
		t.Errorf("../escape: %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dst), "escape")); err == nil {
		t.Error("../escape was written")
	}
	if code, _, errOut := run(t, "", "tar", "cf", "archive.tar", src); code != 2 || !strings.Contains(errOut, "f -") {
		t.Errorf("tar to a file: %d %q", code, errOut)
	}
}
