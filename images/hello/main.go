// Command hello is Ballast's example and test application.
//
// It serves HTTP on $PORT (default 8080):
//
//	/          "hello from <$POD_NAME or hostname>\n"
//	/healthz   200 "ok"
//	/env       the environment, one VAR=value a line
//	/exit?code=N  exits with code N (after answering)
//	/write?path=P&content=C  writes a file; answers "ok" or the error
//	/bytes?n=N    N bytes of zeros (throughput measurements)
//	/readloop?dir=D&files=a,b&until=V  reads a volume updated in place until it holds V (see readLoop)
//	/stat?path=P  the file's permission bits, in octal
//
// It logs one startup line to stdout and one to stderr, and each request to
// stdout. Behaviour from the environment:
//
//	EXIT_AFTER=<duration>          exit with $EXIT_CODE (default 0) after that long
//	IGNORE_SIGTERM_FOR=<duration>  on SIGTERM log "got SIGTERM", keep running that long, exit 0
//	LOG_LINES=<n>                  print n numbered lines ("line 1" ... "line n") at start
//	WRITE_FILE=<path>=<content>    write a file at start
//	ALLOC_MB=<n>                   allocate and touch n MiB at start
//	NEEDS=<host:port>              exit 1 at start unless host:port accepts a TCP
//	                               connection (one try, 1 s timeout): a server that
//	                               cannot run without another one
//	SERVE_AFTER=<duration>         listen only after that long (a slow start)
//
// Otherwise SIGTERM (and SIGINT) make it log "got SIGTERM" and exit 0.
//
// Run under another name (the image links /bin/sh, /bin/tar, ... to it), it
// is that command of package toolbox, for `kubectl exec` and `kubectl cp`.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ballast-dev/ballast/images/hello/toolbox"
)

// tool runs the small commands exec probes and hooks use (the image has no
// shell): "check FILE" exits 0 if FILE exists, "touch FILE" creates it,
// "rm FILE" removes it, "sleep SECONDS" sleeps. It reports whether it ran one.
func tool(args []string) bool {
	if len(args) < 3 {
		return false
	}
	switch args[1] {
	case "check":
		if _, err := os.Stat(args[2]); err != nil {
			fmt.Println("missing", args[2])
			os.Exit(1)
		}
	case "touch":
		if err := os.WriteFile(args[2], []byte(time.Now().Format(time.RFC3339Nano)), 0o644); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stdout, "hello: touched %s\n", args[2])
	case "rm":
		os.Remove(args[2])
	case "sleep":
		d, _ := strconv.Atoi(args[2])
		time.Sleep(time.Duration(d) * time.Second)
	default:
		return false
	}
	os.Exit(0)
	return true
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// held keeps ALLOC_MB's memory alive.
var held [][]byte

func main() {
	if code, ok := toolbox.Main(os.Args, os.Stdin, os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	tool(os.Args)
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	name := os.Getenv("POD_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}

	fmt.Fprintf(os.Stdout, "hello: starting as %s on port %s\n", name, port)
	fmt.Fprintf(os.Stderr, "hello: stderr startup line (pid %d)\n", os.Getpid())
	cwd, _ := os.Getwd()
	fmt.Fprintf(os.Stdout, "hello: args=%q cwd=%s uid=%d\n", os.Args[1:], cwd, os.Getuid())

	if n, err := strconv.Atoi(os.Getenv("LOG_LINES")); err == nil {
		for i := 1; i <= n; i++ {
			fmt.Fprintf(os.Stdout, "line %d\n", i)
		}
	}
	if wf := os.Getenv("WRITE_FILE"); wf != "" {
		path, content, _ := strings.Cut(wf, "=")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			err = os.WriteFile(path, []byte(content), 0o644)
			if err != nil {
				fmt.Fprintf(os.Stderr, "hello: WRITE_FILE %s: %v\n", path, err)
			} else {
				fmt.Fprintf(os.Stdout, "hello: wrote %s\n", path)
			}
		} else {
			fmt.Fprintf(os.Stderr, "hello: WRITE_FILE %s: %v\n", path, err)
		}
	}

	if mb, err := strconv.Atoi(os.Getenv("ALLOC_MB")); err == nil && mb > 0 {
		// ALLOC_MB=<n>: allocate and touch n MiB at start (memory limit tests).
		fmt.Fprintf(os.Stdout, "hello: allocating %d MiB\n", mb)
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			held = append(held, b)
		}
		fmt.Fprintf(os.Stdout, "hello: allocated %d MiB\n", mb)
	}

	exitCode := 0
	if c, err := strconv.Atoi(os.Getenv("EXIT_CODE")); err == nil {
		exitCode = c
	}
	if d, err := time.ParseDuration(os.Getenv("EXIT_AFTER")); err == nil {
		time.AfterFunc(d, func() {
			fmt.Fprintf(os.Stdout, "hello: EXIT_AFTER %s elapsed, exiting %d\n", d, exitCode)
			os.Exit(exitCode)
		})
	}

	ignore, _ := time.ParseDuration(os.Getenv("IGNORE_SIGTERM_FOR"))
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		terminating := false
		for s := range sigs {
			if s == syscall.SIGTERM {
				fmt.Fprintln(os.Stdout, "got SIGTERM")
			} else {
				fmt.Fprintln(os.Stdout, "got SIGINT")
			}
			if ignore > 0 && s == syscall.SIGTERM {
				if !terminating {
					terminating = true
					time.AfterFunc(ignore, func() {
						fmt.Fprintf(os.Stdout, "hello: ignored SIGTERM for %s, exiting 0\n", ignore)
						os.Exit(0)
					})
				}
				continue
			}
			os.Exit(0)
		}
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "hello from %s\n", name)
	})
	// /healthz fails once /sick was called (until /well), and while the
	// file $UNHEALTHY_IF exists.
	var sick atomic.Bool
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if f := os.Getenv("UNHEALTHY_IF"); f != "" {
			if _, err := os.Stat(f); err == nil {
				http.Error(w, "unhealthy: "+f+" exists", http.StatusInternalServerError)
				return
			}
		}
		if sick.Load() {
			http.Error(w, "sick on request", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) {
		sick.Store(true)
		fmt.Fprintln(w, "now sick")
	})
	mux.HandleFunc("/well", func(w http.ResponseWriter, r *http.Request) {
		sick.Store(false)
		fmt.Fprintln(w, "now well")
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := os.Environ()
		sort.Strings(env)
		for _, e := range env {
			fmt.Fprintln(w, e)
		}
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	// /write?path=P&content=C writes a file and answers "ok" or the error.
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		if err := os.WriteFile(r.URL.Query().Get("path"), []byte(r.URL.Query().Get("content")), 0o644); err != nil {
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readloop", readLoop)
	mux.HandleFunc("/stat", stat)
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "n must be a number of bytes", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.CopyN(w, zeros{}, n)
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		fmt.Fprintf(w, "exiting %d\n", code)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			fmt.Fprintf(os.Stdout, "hello: /exit requested, exiting %d\n", code)
			os.Exit(code)
		}()
	})
	if need := os.Getenv("NEEDS"); need != "" {
		c, err := net.DialTimeout("tcp", need, time.Second)
		if err != nil {
			fmt.Fprintf(os.Stdout, "hello: NEEDS %s, which does not answer (%v): exiting 1\n", need, err)
			os.Exit(1)
		}
		c.Close()
		fmt.Fprintf(os.Stdout, "hello: NEEDS %s, which answers\n", need)
	}
	if d, err := time.ParseDuration(os.Getenv("SERVE_AFTER")); err == nil && d > 0 {
		fmt.Fprintf(os.Stdout, "hello: SERVE_AFTER %s: listening in %s\n", d, d)
		time.Sleep(d)
	}
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(os.Stdout, "hello: %s %s from %s\n", r.Method, r.URL.RequestURI(), r.RemoteAddr)
		mux.ServeHTTP(w, r)
	})
	if err := http.ListenAndServe(":"+port, logged); err != nil {
		fmt.Fprintf(os.Stderr, "hello: %v\n", err)
		os.Exit(1)
	}
}
