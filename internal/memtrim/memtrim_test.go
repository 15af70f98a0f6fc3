package memtrim

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func rssFile(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatalf("reading /proc/self/status (Ballast runs on Linux): %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status (Linux 4.5 or later has it)")
	return 0
}

// Trimming drops file-backed pages and the program keeps working (the code
// it runs next faults back in).
func TestExecutable(t *testing.T) {
	before := rssFile(t)
	n, err := Executable()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no mapping of the executable advised")
	}
	after := rssFile(t)
	if after >= before {
		t.Errorf("RssFile %d kB -> %d kB: nothing given back", before, after)
	}
	// Still alive and computing.
	if s := strings.Repeat("x", 3); s != "xxx" {
		t.Fatal(s)
	}
}
