package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// pty is a pseudo-terminal that drives an interactive command as a person
// at a terminal would: the command gets the slave side as its controlling
// terminal; the test types into the master side, reads what the terminal
// shows, and resizes it (the kernel sends the command SIGWINCH).
type pty struct {
	t      *testing.T
	master *os.File
	slave  *os.File
	mu     sync.Mutex
	screen bytes.Buffer
	closed chan struct{}
}

func openPTY(t *testing.T, rows, cols uint16) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening /dev/ptmx: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pty slave: %v", err)
	}
	p := &pty{t: t, master: m, slave: s, closed: make(chan struct{})}
	p.resize(rows, cols)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.screen.Write(buf[:n])
			p.mu.Unlock()
			if err != nil { // EIO once every slave is closed
				close(p.closed)
				return
			}
		}
	}()
	t.Cleanup(func() { m.Close(); s.Close() })
	return p
}

// start runs cmd with the terminal as its standard streams and controlling
// terminal.
func (p *pty) start(cmd *exec.Cmd) {
	p.t.Helper()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.slave, p.slave, p.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s on a terminal: %v", cmd.Path, err)
	}
	p.slave.Close() // the command holds it now
}

func (p *pty) resize(rows, cols uint16) {
	p.t.Helper()
	if err := unix.IoctlSetWinsize(int(p.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		p.t.Fatalf("resizing the terminal: %v", err)
	}
}

// typeLine types a line and Enter (a terminal sends CR).
func (p *pty) typeLine(s string) {
	p.t.Helper()
	if _, err := p.master.Write([]byte(s + "\r")); err != nil {
		p.t.Fatalf("typing %q: %v", s, err)
	}
}

func (p *pty) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.screen.String()
}

// waitFor waits until the screen shows want after offset (a position in
// its text), and returns the position after it.
func (p *pty) waitFor(want string, offset int, timeout time.Duration) int {
	p.t.Helper()
	at := -1
	if err := testutil.PollEvery(50*time.Millisecond, timeout, func() error {
		if i := strings.Index(p.text()[offset:], want); i >= 0 {
			at = offset + i + len(want)
			return nil
		}
		return fmt.Errorf("the terminal did not show %q", want)
	}); err != nil {
		p.t.Fatalf("%v; it shows:\n%q", err, p.text()[offset:])
	}
	return at
}
