// Package source watches the static pod manifest directory and emits full
// snapshots of the desired pods, the node-local ConfigMaps and Secrets, and
// the files' problems.
//
// It owns: watching the directory and the directories that symlinked
// manifests point into (through internal/dirwatch), reading each file once
// it is complete, keeping each file's last good content (a file that
// becomes unreadable or invalid keeps its pods and config objects and is
// reported as a Problem; so does one changing an immutable object), resolving
// pods and config objects defined twice, giving each pod the identity that
// covers the config data it uses (manifest.WithConfigs), warning about
// Secret files others may read, and the kubernetes.io/config.seen annotation.
// Decoding and validating a file is internal/manifest's job.
package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/dirwatch"
	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// Desired is a pod a manifest file asks for. Pod is shared: never modify it.
type Desired struct {
	Pod  *corev1.Pod
	File string
}

// Problem is a manifest file that is wrong (unreadable, invalid, or
// defining a pod another file already defines).
type Problem struct {
	File string
	Err  error    // for invalid content, manifest.Errors(Err) gives each *manifest.Error
	Pods []string // pod names this file defined at its last good content, if any (still running)
}

// Snapshot is the full desired state of the manifest directory.
type Snapshot struct {
	Pods []Desired // sorted by namespace/name
	// Configs are the node-local ConfigMaps and Secrets, sorted by kind,
	// namespace and name. Shared: never modify them.
	Configs  []*manifest.Config
	Problems []Problem // sorted by file
	// Warnings are about files that work but should be fixed (a Secret
	// file others may read), sorted by file.
	Warnings []Warning
	Ignored  []string // files in the directory that are not manifests, sorted
}

// Warning is something wrong with a file that still works.
type Warning struct {
	File, Message string
}

// Options configure Run.
type Options struct {
	Dir, NodeName string
	Log           *slog.Logger
	Rescan        time.Duration // safety-net full rescan, default 10s
	Settle        time.Duration // wait after a write with no close, default 1s
	Now           func() time.Time

	// rescanTick, for tests, replaces the Rescan ticker: each value sent
	// is one rescan.
	rescanTick <-chan time.Time
}

// watchOps is what the manifest directory (and each directory a symlinked
// manifest goes through) is watched for.
const watchOps = dirwatch.CloseWrite | dirwatch.MovedIn | dirwatch.MovedOut | dirwatch.Create |
	dirwatch.Delete | dirwatch.Modify | dirwatch.Attrib | dirwatch.DeleteSelf | dirwatch.MoveSelf

const (
	removeGrace = 50 * time.Millisecond // lets an editor's rename-and-rewrite not stop the pod
	maxFileSize = 4 << 20
)

// Run watches opts.Dir. It sends a first snapshot at once (even for a missing
// or empty directory), then a full snapshot after each settled change that
// changes the desired pods or the problems. It returns when ctx ends.
func Run(ctx context.Context, opts Options, out chan<- Snapshot) error {
	if opts.Rescan <= 0 {
		opts.Rescan = 10 * time.Second
	}
	if opts.Settle <= 0 {
		opts.Settle = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		return errors.New("source: no manifest directory")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return err
	}
	opts.Dir = filepath.Clean(dir)

	in, err := dirwatch.New()
	if err != nil {
		return err
	}
	defer in.Close()
	w := &watcher{
		opts:      opts,
		log:       opts.Log.With("dir", opts.Dir),
		in:        in,
		files:     map[string]*fileState{},
		pending:   map[string]pendingOp{},
		ignored:   map[string]string{},
		seen:      map[types.UID]string{},
		loggedDup: map[string]string{},
		watches:   map[string]int{},
		linkWDs:   map[int][]string{},
		dirWD:     -1,
		parentWD:  -1,
	}
	events := in.Events()

	w.ensureDirWatch()
	w.rescan(true)
	if !w.send(ctx, out, true) {
		return nil
	}

	rescanTick := opts.rescanTick
	if rescanTick == nil {
		rescan := time.NewTicker(opts.Rescan)
		defer rescan.Stop()
		rescanTick = rescan.C
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	for {
		if d, ok := w.nextDeadline(); ok {
			timer.Reset(max(0, time.Until(d)))
		}
		select {
		case <-ctx.Done():
			return nil
		case evs, ok := <-events:
			if !ok {
				w.log.Error("inotify failed; falling back to periodic rescans", "err", in.Err())
				events = nil
				continue
			}
			w.handle(evs)
			// Take every batch already queued before computing a snapshot.
		drain:
			for {
				select {
				case more, ok := <-events:
					if !ok {
						break drain
					}
					w.handle(more)
				default:
					break drain
				}
			}
		case <-timer.C:
			w.fireDue()
		case <-rescanTick:
			w.rescan(false)
		}
		timer.Stop()
		if !w.send(ctx, out, false) {
			return nil
		}
	}
}

type opKind int

const (
	opSettle opKind = iota // read when no event came for Settle
	opRemove               // the file went away: drop it unless it is back
)

type pendingOp struct {
	kind opKind
	at   time.Time
}

type fileState struct {
	path    string
	key     string // stat of what was last read, to skip unchanged files on rescan
	sum     [32]byte
	hasSum  bool
	pods    []*corev1.Pod      // from the last good content
	configs []*manifest.Config // from the last good content
	mode    fs.FileMode        // of the file (its target for a symlink), when last read
	warned  string             // the warning last logged
	err     error              // current problem, nil if the content is good
	logged  string             // text of the last problem logged
	links   []string           // directories the symlink chain goes through (watched)
	isLink  bool
}

type watcher struct {
	opts Options
	log  *slog.Logger
	in   *dirwatch.Watcher

	files   map[string]*fileState // by file name in Dir
	pending map[string]pendingOp
	ignored map[string]string // name -> reason, logged once each
	seen    map[types.UID]string

	loggedDup  map[string]string
	dirMissing bool

	dirWD    int
	parentWD int            // nearest existing ancestor, while Dir is missing
	watches  map[string]int // symlink-related directory -> wd
	linkWDs  map[int][]string

	lastSig string
}

// ---- watches ----

func (w *watcher) ensureDirWatch() {
	if w.dirWD >= 0 {
		return
	}
	wd, err := w.in.Add(w.opts.Dir, watchOps)
	if err == nil {
		w.dirWD = wd
		if w.parentWD >= 0 && w.parentWD != wd {
			w.in.Remove(w.parentWD)
		}
		w.parentWD = -1
		if w.dirMissing {
			w.log.Info("manifest directory appeared")
		}
		w.dirMissing = false
		return
	}
	if !w.dirMissing {
		w.log.Info("manifest directory is missing; waiting for it to appear", "err", err)
	}
	w.dirMissing = true
	// Watch the nearest existing ancestor to learn when it appears.
	for p := filepath.Dir(w.opts.Dir); ; p = filepath.Dir(p) {
		if wd, err := w.in.Add(p, watchOps); err == nil {
			if w.parentWD >= 0 && w.parentWD != wd {
				w.in.Remove(w.parentWD)
			}
			w.parentWD = wd
			return
		}
		if p == filepath.Dir(p) {
			return
		}
	}
}

// updateLinkWatches watches the directories that symlinked manifests go
// through, so that a change of a link's target is seen at once.
func (w *watcher) updateLinkWatches() {
	want := map[string][]string{}
	for name, f := range w.files {
		for _, d := range f.links {
			want[d] = append(want[d], name)
		}
	}
	for d, wd := range w.watches {
		if _, ok := want[d]; !ok {
			delete(w.watches, d)
			if !w.wdInUse(wd) {
				w.in.Remove(wd)
			}
		}
	}
	clear(w.linkWDs)
	for d, names := range want {
		wd, ok := w.watches[d]
		if !ok {
			var err error
			wd, err = w.in.Add(d, watchOps)
			if err != nil {
				continue // the rescan is the safety net
			}
			w.watches[d] = wd
		}
		w.linkWDs[wd] = append(w.linkWDs[wd], names...)
	}
}

func (w *watcher) wdInUse(wd int) bool {
	if wd == w.dirWD || wd == w.parentWD {
		return true
	}
	for _, o := range w.watches {
		if o == wd {
			return true
		}
	}
	return false
}

// linkDirs lists the directories a symlink's chain goes through: the
// directory of each hop and its parent (so that swapping an intermediate
// link, as Kubernetes' atomic writer does with "..data", is seen).
func linkDirs(path string) []string {
	var dirs []string
	add := func(d string) {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			d = r
		}
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	p := path
	for range 16 {
		t, err := os.Readlink(p)
		if err != nil {
			break
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(p), t)
		}
		add(filepath.Dir(t))
		add(filepath.Dir(filepath.Dir(t)))
		p = t
	}
	if r, err := filepath.EvalSymlinks(path); err == nil {
		add(filepath.Dir(r))
	}
	return dirs
}

// ---- events ----

func (w *watcher) handle(evs []dirwatch.Event) {
	now := time.Now()
	for _, ev := range evs {
		if ev.Op.Has(dirwatch.Overflow) {
			w.log.Warn("inotify queue overflowed; rescanning")
			w.rescan(false)
			continue
		}
		if ev.Watch == w.dirWD {
			if ev.Op.Has(dirwatch.Ignored | dirwatch.DeleteSelf | dirwatch.MoveSelf) {
				if ev.Op.Has(dirwatch.Ignored | dirwatch.MoveSelf) {
					if ev.Op.Has(dirwatch.MoveSelf) {
						w.in.Remove(w.dirWD)
					}
					w.dirWD = -1
					w.log.Warn("manifest directory was removed or moved")
					w.ensureDirWatch()
					w.rescan(false)
				}
				continue
			}
			if ev.Name != "" {
				w.onName(ev.Name, ev.Op, now)
			}
		} else if ev.Watch == w.parentWD {
			if ev.Op.Has(dirwatch.Ignored) {
				w.parentWD = -1
			}
			w.ensureDirWatch()
			if w.dirWD >= 0 {
				w.rescan(false)
			}
		}
		if names, ok := w.linkWDs[ev.Watch]; ok {
			if ev.Op.Has(dirwatch.Ignored) {
				for d, wd := range w.watches {
					if wd == ev.Watch {
						delete(w.watches, d)
					}
				}
				delete(w.linkWDs, ev.Watch)
			}
			for _, name := range names {
				if _, isPending := w.pending[name]; isPending {
					continue
				}
				if ev.Op.Has(dirwatch.Create | dirwatch.Modify) {
					w.pending[name] = pendingOp{kind: opSettle, at: now.Add(w.opts.Settle)}
				} else {
					w.read(name, false)
				}
			}
			if ev.Op.Has(dirwatch.Ignored) {
				w.updateLinkWatches()
			}
		}
	}
}

// onName handles an event for one entry of the manifest directory.
func (w *watcher) onName(name string, op dirwatch.Op, now time.Time) {
	if reason, ign := manifest.Ignored(name); ign {
		if op.Has(dirwatch.CloseWrite|dirwatch.MovedIn) && !strings.HasPrefix(name, ".") {
			w.noteIgnored(name, reason)
		}
		if op.Has(dirwatch.Delete | dirwatch.MovedOut) {
			delete(w.ignored, name)
		}
		// An intermediate link (such as "..data") may have changed.
		if strings.HasPrefix(name, ".") && op.Has(dirwatch.MovedIn|dirwatch.Create) {
			for n, f := range w.files {
				if f.isLink {
					w.read(n, false)
				}
			}
		}
		return
	}
	switch {
	case op.Has(dirwatch.CloseWrite | dirwatch.MovedIn):
		delete(w.pending, name)
		w.read(name, true)
	case op.Has(dirwatch.Delete | dirwatch.MovedOut):
		w.pending[name] = pendingOp{kind: opRemove, at: now.Add(removeGrace)}
	case op.Has(dirwatch.Create):
		if fi, err := os.Lstat(filepath.Join(w.opts.Dir, name)); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			delete(w.pending, name) // a symlink is complete when it is created
			w.read(name, true)
			return
		}
		w.pending[name] = pendingOp{kind: opSettle, at: now.Add(w.opts.Settle)}
	case op.Has(dirwatch.Modify):
		w.pending[name] = pendingOp{kind: opSettle, at: now.Add(w.opts.Settle)}
	case op.Has(dirwatch.Attrib):
		if p, ok := w.pending[name]; ok && p.kind == opSettle {
			return // still being written
		}
		delete(w.pending, name)
		w.read(name, true)
	}
}

func (w *watcher) nextDeadline() (time.Time, bool) {
	var first time.Time
	for _, p := range w.pending {
		if first.IsZero() || p.at.Before(first) {
			first = p.at
		}
	}
	return first, !first.IsZero()
}

func (w *watcher) fireDue() {
	now := time.Now()
	for name, p := range w.pending {
		if p.at.After(now) {
			continue
		}
		delete(w.pending, name)
		w.read(name, p.kind == opSettle)
	}
}

func (w *watcher) noteIgnored(name, reason string) {
	if _, ok := w.ignored[name]; ok {
		return
	}
	w.ignored[name] = reason
	w.log.Info("ignoring file", "file", filepath.Join(w.opts.Dir, name), "reason", reason)
}

// ---- reading ----

// rescan lists the directory. With now (the first scan), it reads every
// manifest at once. Otherwise it is a safety net for changes inotify did not
// report: a file whose stat changed is read after Settle with no event for
// it, as it may be being written right now (its events still queued).
// Files waiting to settle are left alone.
func (w *watcher) rescan(now bool) {
	w.ensureDirWatch()
	entries, err := os.ReadDir(w.opts.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.log.Warn("cannot list the manifest directory", "err", err)
	}
	present := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if reason, ign := manifest.Ignored(name); ign {
			present[name] = true
			w.noteIgnored(name, reason)
			continue
		}
		present[name] = true
		if _, busy := w.pending[name]; busy {
			continue
		}
		if now {
			w.read(name, true)
		} else if w.changed(name) {
			w.pending[name] = pendingOp{kind: opSettle, at: time.Now().Add(w.opts.Settle)}
		}
	}
	for name := range w.ignored {
		if !present[name] {
			delete(w.ignored, name)
		}
	}
	for name := range w.files {
		if !present[name] {
			if _, busy := w.pending[name]; !busy {
				w.pending[name] = pendingOp{kind: opRemove, at: time.Now().Add(removeGrace)}
			}
		}
	}
	w.updateLinkWatches()
}

// changed reports whether a file's stat (or symlink target) differs from
// what it was when last read.
func (w *watcher) changed(name string) bool {
	f := w.files[name]
	if f == nil || f.key == "" {
		return true
	}
	path := filepath.Join(w.opts.Dir, name)
	fi, err := os.Stat(path)
	if err != nil {
		return true
	}
	target := ""
	if f.isLink {
		target, _ = filepath.EvalSymlinks(path)
	}
	return statKey(fi, target) != f.key
}

func statKey(fi os.FileInfo, target string) string {
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		return fmt.Sprintf("%s|%d|%d|%v", target, fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
	}
	return fmt.Sprintf("%s|%d|%d|%d|%d|%d.%d|%d.%d", target, st.Dev, st.Ino, st.Size, st.Mode,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}

// read (re)reads one manifest. Unless force, a file whose stat did not
// change since it was last read is skipped.
func (w *watcher) read(name string, force bool) {
	path := filepath.Join(w.opts.Dir, name)
	li, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		w.drop(name)
		return
	}
	f := w.files[name]
	if f == nil {
		f = &fileState{path: path}
	}
	isLink := err == nil && li.Mode()&fs.ModeSymlink != 0
	oldLinks := f.links
	f.isLink = isLink
	f.links = nil
	if isLink {
		f.links = linkDirs(path)
	}
	defer func() {
		if !slices.Equal(oldLinks, f.links) {
			w.updateLinkWatches()
		}
	}()
	fail := func(err error) {
		f.err = err
		f.key, f.hasSum = "", false
		w.files[name] = f
	}
	if err != nil {
		fail(fmt.Errorf("cannot read %s: %w", path, err))
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		if isLink && errors.Is(err, fs.ErrNotExist) {
			t, _ := os.Readlink(path)
			fail(fmt.Errorf("%s: symlink points to %s, which does not exist; fix the link or remove it", path, t))
			return
		}
		fail(fmt.Errorf("cannot read %s: %w", path, err))
		return
	}
	if fi.IsDir() {
		if _, known := w.files[name]; known {
			w.drop(name)
		}
		w.noteIgnored(name, "directory")
		return
	}
	if !fi.Mode().IsRegular() {
		fail(fmt.Errorf("%s is not a regular file; a manifest must be a file (or a symlink to one)", path))
		return
	}
	target := ""
	if isLink {
		target, _ = filepath.EvalSymlinks(path)
	}
	f.mode = fi.Mode()
	key := statKey(fi, target)
	if !force && key == f.key && w.files[name] != nil {
		return
	}
	if fi.Size() > maxFileSize {
		fail(fmt.Errorf("%s is %d bytes, more than a manifest may be (%d); it is not a pod manifest", path, fi.Size(), maxFileSize))
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		fail(fmt.Errorf("cannot read %s: %w", path, err))
		return
	}
	sum := sha256.Sum256(data)
	w.files[name] = f
	f.key = key
	if f.hasSum && sum == f.sum {
		return // same content as last read
	}
	f.sum, f.hasSum = sum, true
	parsed, err := manifest.ParseFile(path, data, w.opts.NodeName)
	if err == nil {
		err = immutableChanges(f.configs, parsed.Configs)
	}
	if err != nil {
		f.err = err
		return
	}
	if f.err != nil && f.logged != "" {
		w.log.Info("manifest file fixed", "file", path)
	}
	f.err, f.logged = nil, ""
	if !samePods(f.pods, parsed.Pods) || !sameConfigs(f.configs, parsed.Configs) {
		w.log.Info("manifest file loaded", "file", path, "pods", podNames(parsed.Pods), "configs", configNames(parsed.Configs))
	}
	f.pods, f.configs = parsed.Pods, parsed.Configs
}

// immutableChanges refuses new content that changes an object the file's
// last good content marks immutable, as the API server refuses the update.
func immutableChanges(old, next []*manifest.Config) error {
	prev := map[manifest.ConfigKey]*manifest.Config{}
	for _, c := range old {
		prev[c.Key()] = c
	}
	var errs []error
	for _, c := range next {
		if p, ok := prev[c.Key()]; ok {
			if err := manifest.ValidateConfigChange(p, c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func sameConfigs(a, b []*manifest.Config) bool {
	return slices.EqualFunc(a, b, func(x, y *manifest.Config) bool { return x.Key() == y.Key() && x.Hash == y.Hash })
}

func configNames(cs []*manifest.Config) []string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Key().String()
	}
	return names
}

// secretFileWarning says why a file holding Secrets should not be readable
// by others, or "" when it is fine.
func secretFileWarning(f *fileState) string {
	if f.mode.Perm()&0o044 == 0 {
		return ""
	}
	for _, c := range f.configs {
		if c.Secret != nil {
			return fmt.Sprintf("%s holds Secrets and is readable by group or others (mode %04o); restrict it to its owner: chmod 600 %s", f.path, f.mode.Perm(), f.path)
		}
	}
	return ""
}

// drop forgets a file that is gone: its pods are no longer desired.
func (w *watcher) drop(name string) {
	f, ok := w.files[name]
	delete(w.ignored, name)
	if !ok {
		return
	}
	delete(w.files, name)
	delete(w.loggedDup, f.path)
	if len(f.pods) > 0 || len(f.configs) > 0 {
		w.log.Info("manifest file removed", "file", f.path, "pods", podNames(f.pods), "configs", configNames(f.configs))
	}
	if len(f.links) > 0 {
		w.updateLinkWatches()
	}
}

func samePods(a, b []*corev1.Pod) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].UID != b[i].UID {
			return false
		}
	}
	return true
}

func podNames(pods []*corev1.Pod) []string {
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = p.Name
	}
	return names
}

// ---- snapshots ----

func (w *watcher) snapshot() Snapshot {
	names := make([]string, 0, len(w.files))
	for n := range w.files {
		names = append(names, n)
	}
	sort.Strings(names)
	var snap Snapshot
	// Config objects first: pods' identities depend on them. One key, one
	// object: the file first by name defines it.
	configs := map[manifest.ConfigKey]*manifest.Config{}
	dupErrs := map[string][]error{}
	for _, name := range names {
		f := w.files[name]
		for _, c := range f.configs {
			if first, taken := configs[c.Key()]; taken {
				dupErrs[f.path] = append(dupErrs[f.path], fmt.Errorf("%s: %s is already defined by %s, which comes first by name; rename it (metadata.name) or remove one of them",
					f.path, c.Key(), first.File))
				continue
			}
			configs[c.Key()] = c
			snap.Configs = append(snap.Configs, c)
		}
	}
	lookup := func(k manifest.ConfigKey) *manifest.Config { return configs[k] }
	owner := map[string]string{}
	live := map[types.UID]bool{}
	for _, name := range names {
		f := w.files[name]
		var errs []error
		if f.err != nil {
			errs = append(errs, f.err)
			if text := f.err.Error(); text != f.logged {
				f.logged = text
				w.log.Warn("manifest file problem", "file", f.path, "err", text, "keptPods", podNames(f.pods))
			}
		}
		errs = append(errs, dupErrs[f.path]...)
		if msg := secretFileWarning(f); msg != "" {
			snap.Warnings = append(snap.Warnings, Warning{File: f.path, Message: msg})
			if f.warned != msg {
				w.log.Warn("secret file readable by others", "file", f.path, "warning", msg)
			}
			f.warned = msg
		} else {
			f.warned = ""
		}
		for _, p := range f.pods {
			key := p.Namespace + "/" + p.Name
			if winner, taken := owner[key]; taken {
				errs = append(errs, fmt.Errorf("%s: pod %s is already defined by %s, which comes first by name; rename the pod (metadata.name) or remove one of the files",
					f.path, key, winner))
				continue
			}
			owner[key] = f.path
			p = manifest.WithConfigs(p, lookup)
			live[p.UID] = true
			if _, ok := p.Annotations[wellknown.AnnotationConfigSeen]; !ok {
				seen, ok := w.seen[p.UID]
				if !ok {
					seen = w.opts.Now().UTC().Format(time.RFC3339Nano)
					w.seen[p.UID] = seen
				}
				p.Annotations[wellknown.AnnotationConfigSeen] = seen
			}
			snap.Pods = append(snap.Pods, Desired{Pod: p, File: f.path})
		}
		if len(errs) > 0 {
			err := errs[0]
			if len(errs) > 1 {
				err = errors.Join(errs...)
			}
			snap.Problems = append(snap.Problems, Problem{File: f.path, Err: err, Pods: podNames(f.pods)})
			if f.err == nil {
				if text := err.Error(); w.loggedDup[f.path] != text {
					w.loggedDup[f.path] = text
					w.log.Warn("manifest file problem", "file", f.path, "err", text)
				}
			}
		} else {
			delete(w.loggedDup, f.path)
		}
	}
	for uid := range w.seen {
		if !live[uid] {
			delete(w.seen, uid)
		}
	}
	sort.Slice(snap.Pods, func(i, j int) bool {
		a, b := snap.Pods[i].Pod, snap.Pods[j].Pod
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	sort.Slice(snap.Configs, func(i, j int) bool {
		return manifest.CompareConfigKeys(snap.Configs[i].Key(), snap.Configs[j].Key()) < 0
	})
	for n := range w.ignored {
		snap.Ignored = append(snap.Ignored, filepath.Join(w.opts.Dir, n))
	}
	sort.Strings(snap.Ignored)
	return snap
}

func signature(s Snapshot) string {
	var b bytes.Buffer
	for _, d := range s.Pods {
		fmt.Fprintf(&b, "%s\x00", d.Pod.UID)
	}
	b.WriteString("\x01")
	for _, c := range s.Configs {
		fmt.Fprintf(&b, "%s\x00%s\x00%s\x00%v\x00%v\x00", c.Key(), c.File, c.Hash, c.Meta().Labels, c.Meta().Annotations)
	}
	for _, wn := range s.Warnings {
		fmt.Fprintf(&b, "%s\x00%s\x00", wn.File, wn.Message)
	}
	b.WriteString("\x01")
	for _, p := range s.Problems {
		fmt.Fprintf(&b, "%s\x00%s\x00%s\x00", p.File, p.Err, strings.Join(p.Pods, ","))
	}
	return b.String()
}

// send sends a snapshot if it differs from the last one sent (or always).
// It returns false if ctx ended.
func (w *watcher) send(ctx context.Context, out chan<- Snapshot, always bool) bool {
	snap := w.snapshot()
	sig := signature(snap)
	if !always && sig == w.lastSig {
		return true
	}
	select {
	case out <- snap:
		w.lastSig = sig
		return true
	case <-ctx.Done():
		return false
	}
}
