package toolbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// Shell is a minimal sh: `sh -c SCRIPT [NAME ARGS...]` runs SCRIPT; `sh`
// alone reads commands from standard input, a line at a time, with a "# "
// prompt when it is a terminal.
//
// A script is simple commands separated by newlines, ";", "&&" and "||".
// Words are split on blanks; '...' quotes literally, "..." expands $VAR,
// ${VAR}, $?, $# and $0-$9 and keeps backslash escapes of \ " $; a
// backslash outside quotes escapes the next character; # starts a comment.
// Builtins: exit [N], cd [DIR], NAME=VALUE and export NAME=VALUE. Anything
// else runs from $PATH with the shell's standard streams; a command that is
// not found exits 127, one killed by a signal 128+N.
func Shell(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := &shell{stdin: stdin, stdout: stdout, stderr: stderr, vars: map[string]string{}, params: []string{"sh"}}
	if len(args) > 0 && args[0] == "-c" {
		if len(args) < 2 {
			fmt.Fprintln(stderr, "sh: -c requires an argument")
			return 2
		}
		if len(args) > 2 {
			s.params = args[2:]
		}
		code, _ := s.run(args[1])
		return code
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "sh: running script files is not supported (%s); use sh -c or standard input\n", args[0])
		return 2
	}
	interactive := false
	if f, ok := stdin.(*os.File); ok {
		interactive = isTerminal(int(f.Fd()))
	}
	for {
		if interactive {
			fmt.Fprint(stdout, "# ")
		}
		line, err := readLine(stdin)
		if line != "" {
			if code, exited := s.run(line); exited {
				return code
			}
		}
		if err != nil {
			if interactive {
				fmt.Fprintln(stdout)
			}
			return s.status
		}
	}
}

type shell struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	vars           map[string]string
	params         []string // $0, $1, ...
	status         int
}

// readLine reads one line a byte at a time, so that a command the shell
// runs next reads the rest of standard input itself.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			return b.String(), err
		}
	}
}

// token is a word or an operator (";", "&&", "||"), and where it is in the
// script.
type token struct {
	word       string
	op         string
	start, end int
}

// run parses and runs a script; exited tells whether it ran `exit`. The
// script is split into commands first; each command's words are expanded
// just before it runs, so $? is the status of the one before.
func (s *shell) run(script string) (code int, exited bool) {
	toks, err := s.lex(script, false)
	if err != nil {
		fmt.Fprintf(s.stderr, "sh: %v\n", err)
		s.status = 2
		return 2, false
	}
	start := 0    // where the current command's text starts
	skip := false // the previous && or || short-circuits this command
	for i := 0; i <= len(toks); i++ {
		if i < len(toks) && toks[i].op == "" {
			continue
		}
		op, end := ";", len(script)
		if i < len(toks) {
			op, end = toks[i].op, toks[i].start
		}
		text := script[start:end]
		if i < len(toks) {
			start = toks[i].end
		}
		words, _ := s.lex(text, true)
		if len(words) > 0 && !skip {
			var argv []string
			for _, w := range words {
				argv = append(argv, w.word)
			}
			if code, exited := s.command(argv); exited {
				return code, true
			}
		}
		switch op {
		case "&&":
			skip = s.status != 0
		case "||":
			skip = s.status == 0
		default:
			skip = false
		}
	}
	return s.status, false
}

// lex splits script into tokens; expand substitutes parameters (without
// it, they expand to nothing: for splitting only).
func (s *shell) lex(script string, expand bool) ([]token, error) {
	var toks []token
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			toks = append(toks, token{word: cur.String()})
		}
		cur.Reset()
		inWord = false
	}
	for i := 0; i < len(script); i++ {
		c := script[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '\n' || c == ';':
			flush()
			toks = append(toks, token{op: ";", start: i, end: i + 1})
		case c == '&' && strings.HasPrefix(script[i:], "&&"), c == '|' && strings.HasPrefix(script[i:], "||"):
			flush()
			toks = append(toks, token{op: script[i : i+2], start: i, end: i + 2})
			i++
		case c == '|' || c == '&' || c == '<' || c == '>' || c == '`' || c == '(' || c == ')':
			return nil, fmt.Errorf("%q is not supported by this minimal shell (no pipes, redirections, subshells or background jobs)", string(c))
		case c == '#' && !inWord:
			for i < len(script) && script[i] != '\n' {
				i++
			}
			i--
		case c == '\\':
			if i+1 < len(script) {
				i++
				if script[i] != '\n' {
					cur.WriteByte(script[i])
					inWord = true
				}
			}
		case c == '\'':
			end := strings.IndexByte(script[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated quoted string")
			}
			cur.WriteString(script[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case c == '"':
			j := i + 1
			for ; j < len(script) && script[j] != '"'; j++ {
				switch {
				case script[j] == '\\' && j+1 < len(script) && strings.IndexByte(`\"$`, script[j+1]) >= 0:
					j++
					cur.WriteByte(script[j])
				case script[j] == '$':
					n := s.expand(script[j:], &cur, expand)
					j += n - 1
				default:
					cur.WriteByte(script[j])
				}
			}
			if j >= len(script) {
				return nil, errors.New("unterminated quoted string")
			}
			inWord = true
			i = j
		case c == '$':
			n := s.expand(script[i:], &cur, expand)
			i += n - 1
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return toks, nil
}

// expand writes the value of the parameter at the start of src ("$...")
// (nothing unless write), and returns how many bytes it used.
func (s *shell) expand(src string, b *strings.Builder, write bool) int {
	out := b
	if !write {
		out = &strings.Builder{}
	}
	if len(src) < 2 {
		out.WriteByte('$')
		return 1
	}
	switch c := src[1]; {
	case c == '?':
		out.WriteString(strconv.Itoa(s.status))
		return 2
	case c == '#':
		out.WriteString(strconv.Itoa(len(s.params) - 1))
		return 2
	case c >= '0' && c <= '9':
		if i := int(c - '0'); i < len(s.params) {
			out.WriteString(s.params[i])
		}
		return 2
	case c == '{':
		end := strings.IndexByte(src, '}')
		if end < 0 {
			out.WriteString(src)
			return len(src)
		}
		out.WriteString(s.lookup(src[2:end]))
		return end + 1
	}
	n := 1
	for n < len(src) && (src[n] == '_' || isAlnum(src[n])) {
		n++
	}
	if n == 1 {
		out.WriteByte('$')
		return 1
	}
	out.WriteString(s.lookup(src[1:n]))
	return n
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (s *shell) lookup(name string) string {
	if v, ok := s.vars[name]; ok {
		return v
	}
	return os.Getenv(name)
}

// command runs one simple command and sets s.status.
func (s *shell) command(words []string) (code int, exited bool) {
	name := words[0]
	switch {
	case name == "exit":
		code := s.status
		if len(words) > 1 {
			n, err := strconv.Atoi(words[1])
			if err != nil {
				fmt.Fprintf(s.stderr, "sh: exit: illegal number: %s\n", words[1])
				n = 2
			}
			code = n & 0xff
		}
		return code, true
	case name == "cd":
		dir := os.Getenv("HOME")
		if len(words) > 1 {
			dir = words[1]
		}
		s.status = 0
		if err := os.Chdir(dir); err != nil {
			fmt.Fprintf(s.stderr, "sh: cd: %v\n", err)
			s.status = 2
		}
		return s.status, false
	case name == "export" || strings.Contains(name, "=") && !strings.HasPrefix(name, "="):
		assigns := words
		if name == "export" {
			assigns = words[1:]
		}
		for _, a := range assigns {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				continue
			}
			s.vars[k] = v
			if name == "export" {
				os.Setenv(k, v)
			}
		}
		s.status = 0
		return 0, false
	}
	cmd := exec.Command(name, words[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.stdin, s.stdout, s.stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		s.status = 0
	case errors.As(err, &ee):
		s.status = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			s.status = 128 + int(ws.Signal())
		}
	case errors.Is(err, exec.ErrNotFound):
		fmt.Fprintf(s.stderr, "sh: %s: not found\n", name)
		s.status = 127
	default:
		fmt.Fprintf(s.stderr, "sh: %s: %v\n", name, err)
		s.status = 126
	}
	return s.status, false
}
