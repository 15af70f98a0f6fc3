// Package toolbox is the hello test image's handful of shell commands, so
// that what operators run through `kubectl exec` and `kubectl cp` has
// something real to run in a container built from one static Go program:
//
//	sh [-c SCRIPT [NAME ARGS...]]  a minimal shell (see Shell)
//	tar cf - PATH... | tar [-]x[m]f - [-C DIR]   (see Tar)
//	test EXPR                      -d -f -e -t -n -z, = and !=
//	cat [FILE...]  echo [-n] ARGS  true  false  sleep SECONDS
//	stty size                      the terminal's rows and columns
//
// The hello binary is the only file; the image has /bin/NAME symlinks to it
// for each of Commands, and it dispatches on the name it was run as
// (argv[0]), like busybox. These are test programs, kept small: no pipes,
// redirections, globbing or job control in sh.
package toolbox

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Commands are the names the image links to the hello binary, in /bin.
var Commands = []string{"sh", "tar", "test", "cat", "echo", "true", "false", "sleep", "stty"}

// Main runs the command named by args[0] (its base name), and reports its
// exit code and whether args[0] names one of Commands at all.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	name := filepath.Base(args[0])
	run, ok := commands()[name]
	if !ok {
		return 0, false
	}
	return run(args[1:], stdin, stdout, stderr), true
}

type command func(args []string, stdin io.Reader, stdout, stderr io.Writer) int

func commands() map[string]command {
	return map[string]command{
		"sh":    Shell,
		"tar":   Tar,
		"test":  testCmd,
		"cat":   cat,
		"echo":  echo,
		"true":  func([]string, io.Reader, io.Writer, io.Writer) int { return 0 },
		"false": func([]string, io.Reader, io.Writer, io.Writer) int { return 1 },
		"sleep": sleep,
		"stty":  stty,
	}
}

func cat(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"-"}
	}
	code := 0
	for _, a := range args {
		var r io.Reader = stdin
		if a != "-" {
			f, err := os.Open(a)
			if err != nil {
				fmt.Fprintf(stderr, "cat: %v\n", err)
				code = 1
				continue
			}
			defer f.Close()
			r = f
		}
		if _, err := io.Copy(stdout, r); err != nil {
			fmt.Fprintf(stderr, "cat: %s: %v\n", a, err)
			code = 1
		}
	}
	return code
}

func echo(args []string, _ io.Reader, stdout, _ io.Writer) int {
	nl := "\n"
	if len(args) > 0 && args[0] == "-n" {
		nl, args = "", args[1:]
	}
	fmt.Fprint(stdout, strings.Join(args, " ")+nl)
	return 0
}

func sleep(args []string, _ io.Reader, _, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: sleep SECONDS")
		return 2
	}
	s, err := strconv.ParseFloat(args[0], 64)
	if err != nil || s < 0 {
		fmt.Fprintf(stderr, "sleep: invalid time interval %q\n", args[0])
		return 1
	}
	time.Sleep(time.Duration(s * float64(time.Second)))
	return 0
}

// stty supports only "stty size": the rows and columns of the terminal on
// standard input, as coreutils prints them.
func stty(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "size" {
		fmt.Fprintln(stderr, "stty: only `stty size` is supported")
		return 2
	}
	f, ok := stdin.(*os.File)
	if !ok {
		fmt.Fprintln(stderr, "stty: 'standard input': Inappropriate ioctl for device")
		return 1
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		fmt.Fprintf(stderr, "stty: 'standard input': %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d %d\n", ws.Row, ws.Col)
	return 0
}

// isTerminal reports whether fd is a terminal.
func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// testCmd is test(1) for one primary or one binary comparison.
func testCmd(args []string, _ io.Reader, _, stderr io.Writer) int {
	ok, err := evalTest(args)
	if err != nil {
		fmt.Fprintf(stderr, "test: %v\n", err)
		return 2
	}
	if ok {
		return 0
	}
	return 1
}

func evalTest(args []string) (bool, error) {
	if len(args) > 0 && args[0] == "!" {
		ok, err := evalTest(args[1:])
		return !ok, err
	}
	switch len(args) {
	case 0:
		return false, nil
	case 1:
		return args[0] != "", nil
	case 2:
		op, x := args[0], args[1]
		switch op {
		case "-n":
			return x != "", nil
		case "-z":
			return x == "", nil
		case "-e", "-d", "-f":
			st, err := os.Stat(x)
			if err != nil {
				return false, nil
			}
			return op == "-e" || (op == "-d" && st.IsDir()) || (op == "-f" && st.Mode().IsRegular()), nil
		case "-t":
			fd, err := strconv.Atoi(x)
			if err != nil {
				return false, fmt.Errorf("%s: integer expected", x)
			}
			return isTerminal(fd), nil
		}
		return false, fmt.Errorf("%s: unary operator expected", op)
	case 3:
		switch args[1] {
		case "=", "==":
			return args[0] == args[2], nil
		case "!=":
			return args[0] != args[2], nil
		}
		return false, fmt.Errorf("%s: binary operator expected", args[1])
	}
	return false, fmt.Errorf("too many arguments")
}
