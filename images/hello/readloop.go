package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// readLoop is /readloop?dir=D&files=a,b&until=V&timeout=10s: it reads the
// files of a volume Ballast updates in place (ConfigMap, Secret), over and
// over, until every one of them holds V, and reports what it saw:
//
//	reads=N mixed=M broken=B seen=v1,v2
//
// Each round reads the set through one resolution of D/..data (as a reader
// that wants a consistent set does): mixed counts rounds whose files did
// not all hold the same content (a torn update). Each round also opens
// every file by its own path (D/a): broken counts opens that failed or
// read nothing, which an atomic swap never causes. It logs "hello:
// readloop started" once it has read the set once, so a test knows when to
// change it.
func readLoop(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dir, until := q.Get("dir"), q.Get("until")
	files := strings.Split(q.Get("files"), ",")
	timeout, err := time.ParseDuration(q.Get("timeout"))
	if err != nil {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	seen := map[string]bool{}
	reads, mixed, broken := 0, 0, 0
	started := false
	for time.Now().Before(deadline) {
		values, ok := readSet(dir, files)
		for _, f := range files {
			if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || len(b) == 0 {
				broken++
			}
		}
		if !ok {
			continue // the version read was removed meanwhile: read again
		}
		reads++
		for _, v := range values[1:] {
			if v != values[0] {
				mixed++
				break
			}
		}
		for _, v := range values {
			seen[v] = true
		}
		if !started {
			started = true
			fmt.Fprintln(os.Stdout, "hello: readloop started")
		}
		if values[0] == until {
			done := true
			for _, v := range values {
				done = done && v == until
			}
			if done {
				break
			}
		}
	}
	var vs []string
	for v := range seen {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	fmt.Fprintf(w, "reads=%d mixed=%d broken=%d seen=%s\n", reads, mixed, broken, strings.Join(vs, ","))
}

// readSet reads files in the version dir/..data points to now; ok is false
// when that version went away before all were read.
func readSet(dir string, files []string) ([]string, bool) {
	version, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		return nil, false
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, version, f))
		if errors.Is(err, fs.ErrNotExist) || err != nil {
			return nil, false
		}
		out = append(out, strings.TrimSpace(string(b)))
	}
	return out, true
}

// stat is /stat?path=P: the file's permission bits in octal (following
// links), or the error.
func stat(w http.ResponseWriter, r *http.Request) {
	fi, err := os.Stat(r.URL.Query().Get("path"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	fmt.Fprintf(w, "%04o", fi.Mode().Perm())
}
