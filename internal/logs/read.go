package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// DefaultPollInterval is how often a follower looks for new content.
const DefaultPollInterval = 200 * time.Millisecond

// maxPending bounds how much of one partial line is held before it is written
// out anyway.
const maxPending = 1 << 20

// timestampFormat is RFC3339 with a fixed nanosecond width, as the kubelet prints.
const timestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

// ReadOptions select what Read writes.
type ReadOptions struct {
	// Follow keeps reading new lines until ctx ends or Running reports the
	// container stopped (then what it wrote last is read and Read returns).
	Follow bool
	// TailLines is the number of last lines to show; -1 shows all of the
	// current file. When the current file has fewer lines, rotated files are
	// read too.
	TailLines int64
	// Timestamps prefixes each line with its RFC3339 (nanosecond) timestamp.
	Timestamps bool
	// SinceTime drops lines written before it.
	SinceTime *time.Time
	// LimitBytes stops after that many bytes have been written (0: no limit).
	LimitBytes int64
	// Running reports whether the container still runs. With Follow, reading
	// stops once it returns false and the file holds nothing more. Nil means
	// "until ctx ends".
	Running func() bool
	// PollInterval is how often a follower checks for new content and
	// rotation (0: DefaultPollInterval).
	PollInterval time.Duration
}

var errLimit = errors.New("limit reached")

// Read writes a CRI-format log file as `kubectl logs` shows it: partial lines
// joined, stdout and stderr content to their writers (they may be the same).
// With Follow it survives rotation: when the file at path is replaced, the old
// file is read to its end and the new one is followed from its start.
// Lines that are not in the CRI format are written to stdout as they are.
func Read(ctx context.Context, path string, opts ReadOptions, stdout, stderr io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	e := &emitter{opts: opts, out: [2]io.Writer{stdout, stderr}, remaining: -1}
	if opts.LimitBytes > 0 {
		e.remaining = opts.LimitBytes
	}
	cur := &fileReader{f: f}
	defer func() { cur.f.Close() }()

	// Find where to start: in the current file or in rotated ones.
	var earlier []fileStart
	var start int64
	switch {
	case opts.TailLines == 0:
		if start, err = f.Seek(0, io.SeekEnd); err != nil {
			return err
		}
	case opts.TailLines > 0:
		var found int64
		start, found, err = tailOffset(f, opts.TailLines)
		if err != nil {
			return err
		}
		if found < opts.TailLines {
			earlier, err = earlierFiles(path, opts.TailLines-found)
			if err != nil {
				return err
			}
		}
	}
	for _, fs := range earlier {
		if err := readFrom(ctx, fs.path, fs.offset, e); err != nil {
			if errors.Is(err, errLimit) {
				return nil
			}
			return err
		}
		if err := e.flush(); err != nil { // a rotated file ends its lines
			if errors.Is(err, errLimit) {
				return nil
			}
			return err
		}
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}
	cur.reset(start)

	err = follow(ctx, path, cur, e, opts)
	if errors.Is(err, errLimit) {
		return nil
	}
	return err
}

func follow(ctx context.Context, path string, cur *fileReader, e *emitter, opts ReadOptions) error {
	poll := opts.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	var timer *time.Timer
	stopped := false
	for {
		if err := cur.drain(ctx, e, false); err != nil {
			return err
		}
		if !opts.Follow {
			if err := cur.drain(ctx, e, true); err != nil {
				return err
			}
			return e.flush()
		}
		if ctx.Err() != nil {
			return e.flush()
		}
		// Rotation or truncation?
		if st, err := os.Stat(path); err == nil {
			cst, cerr := cur.f.Stat()
			if cerr == nil && !os.SameFile(st, cst) {
				// Replaced: finish the old file, then follow the new one.
				if err := cur.drain(ctx, e, true); err != nil {
					return err
				}
				if err := e.flush(); err != nil {
					return err
				}
				nf, err := os.Open(path)
				if err == nil {
					cur.f.Close()
					cur.f = nf
					cur.reset(0)
					continue
				}
			} else if cerr == nil && cst.Size() < cur.pos {
				// Truncated in place: start again from the beginning.
				if _, err := cur.f.Seek(0, io.SeekStart); err == nil {
					cur.reset(0)
					continue
				}
			}
		}
		if stopped {
			if err := cur.drain(ctx, e, true); err != nil {
				return err
			}
			return e.flush()
		}
		if opts.Running != nil && !opts.Running() {
			// One more pass reads what it wrote before it stopped.
			stopped = true
			continue
		}
		if timer == nil {
			timer = time.NewTimer(poll)
			defer timer.Stop()
		} else {
			timer.Reset(poll)
		}
		select {
		case <-ctx.Done():
			return e.flush()
		case <-timer.C:
		}
	}
}

// readFrom reads one (rotated) file from offset start to its end.
func readFrom(ctx context.Context, path string, start int64, e *emitter) error {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) { // removed meanwhile
			return nil
		}
		return err
	}
	defer f.Close()
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}
	fr := &fileReader{f: f}
	fr.reset(start)
	return fr.drain(ctx, e, true)
}

type fileStart struct {
	path   string
	offset int64
}

// earlierFiles returns the rotated files (and where to start in them) needed
// to show need more lines, oldest first.
func earlierFiles(path string, need int64) ([]fileStart, error) {
	rotated, err := RotatedFiles(path)
	if err != nil {
		return nil, err
	}
	var files []fileStart
	for i := len(rotated) - 1; i >= 0 && need > 0; i-- {
		f, err := os.Open(rotated[i])
		if err != nil {
			continue
		}
		off, found, err := tailOffset(f, need)
		f.Close()
		if err != nil {
			return nil, err
		}
		files = append(files, fileStart{rotated[i], off})
		need -= found
	}
	slices.Reverse(files)
	return files, nil
}

// tailOffset scans f and returns the offset where its last n lines start and
// how many lines it found (fewer than n: offset 0). A line ends with a full
// ("F") record; a trailing group of partial records counts as one line.
func tailOffset(f *os.File, n int64) (offset, found int64, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, st.Size()), 64<<10)
	// ring holds the end offsets of the last n+1 full lines.
	ring := make([]int64, 0, min(n+1, 4096))
	next := 0
	var pos, full int64
	trailingPartial := false
	for {
		head, size, err := readRecord(r)
		if size == 0 && err != nil {
			break
		}
		pos += size
		if isPartial(head) {
			trailingPartial = true
			continue
		}
		trailingPartial = false
		full++
		if int64(len(ring)) < n+1 {
			ring = append(ring, pos)
		} else {
			ring[next] = pos
			next = (next + 1) % len(ring)
		}
		if err != nil {
			break
		}
	}
	lines := full
	k := n // full lines to take
	if trailingPartial {
		lines++
		k--
	}
	if lines < n {
		return 0, lines, nil
	}
	if k == 0 {
		if full == 0 {
			return 0, n, nil
		}
		return ring[(next+len(ring)-1)%len(ring)], n, nil
	}
	if full == k {
		return 0, n, nil
	}
	// The end of the full line before the last k: the oldest of k+1 kept.
	if int64(len(ring)) < n+1 {
		// ring not wrapped: entries are in order.
		return ring[full-k-1], n, nil
	}
	idx := (next + len(ring) - int(k) - 1) % len(ring)
	return ring[idx], n, nil
}

// readRecord reads one line, returning its first bytes (enough to parse the
// header) and its full size including the newline.
func readRecord(r *bufio.Reader) (head []byte, size int64, err error) {
	for {
		b, err := r.ReadSlice('\n')
		if head == nil && len(b) > 0 {
			head = append([]byte(nil), b[:min(len(b), 128)]...)
		}
		size += int64(len(b))
		if err == bufio.ErrBufferFull {
			continue
		}
		return head, size, err
	}
}

func isPartial(line []byte) bool {
	_, _, tag, _, err := splitCRI(line)
	return err == nil && len(tag) > 0 && tag[0] == 'P'
}

// splitCRI splits "<timestamp> <stream> <tag> <content>".
func splitCRI(line []byte) (ts, stream, tag, content []byte, err error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	var ok bool
	if ts, line, ok = bytes.Cut(line, []byte{' '}); !ok {
		return nil, nil, nil, nil, errors.New("no stream")
	}
	if stream, line, ok = bytes.Cut(line, []byte{' '}); !ok {
		return nil, nil, nil, nil, errors.New("no tag")
	}
	tag, content, _ = bytes.Cut(line, []byte{' '})
	return ts, stream, tag, content, nil
}

type record struct {
	ts      time.Time
	stream  int // 0 stdout, 1 stderr
	partial bool
	content []byte
}

func parseRecord(line []byte) (record, error) {
	ts, stream, tag, content, err := splitCRI(line)
	if err != nil {
		return record{}, err
	}
	var rec record
	if rec.ts, err = time.Parse(time.RFC3339Nano, string(ts)); err != nil {
		return record{}, fmt.Errorf("bad timestamp: %w", err)
	}
	switch string(stream) {
	case "stdout":
	case "stderr":
		rec.stream = 1
	default:
		return record{}, fmt.Errorf("bad stream %q", stream)
	}
	rec.partial = len(tag) > 0 && tag[0] == 'P'
	rec.content = content
	return rec, nil
}

// fileReader reads complete lines of one file, keeping an incomplete last
// line until the rest is written.
type fileReader struct {
	f    *os.File
	r    *bufio.Reader
	frag []byte
	pos  int64 // offset of the next byte the bufio.Reader returns
}

func (fr *fileReader) reset(pos int64) {
	if fr.r == nil {
		fr.r = bufio.NewReaderSize(fr.f, 64<<10)
	} else {
		fr.r.Reset(fr.f)
	}
	fr.frag = fr.frag[:0]
	fr.pos = pos
}

// drain handles every complete line available; with final, an incomplete
// last line is handled too.
func (fr *fileReader) drain(ctx context.Context, e *emitter, final bool) error {
	for n := 0; ; n++ {
		if n%1024 == 1023 && ctx.Err() != nil {
			return ctx.Err()
		}
		b, err := fr.r.ReadSlice('\n')
		fr.pos += int64(len(b))
		if err == nil {
			var line []byte
			if len(fr.frag) > 0 {
				fr.frag = append(fr.frag, b...)
				line = fr.frag
			} else {
				line = b
			}
			if err := e.line(line); err != nil {
				return err
			}
			fr.frag = fr.frag[:0]
			continue
		}
		fr.frag = append(fr.frag, b...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != io.EOF {
			return err
		}
		if final && len(fr.frag) > 0 {
			if err := e.line(fr.frag); err != nil {
				return err
			}
			fr.frag = fr.frag[:0]
		}
		return nil
	}
}

type pending struct {
	active bool
	ts     time.Time
	buf    []byte
}

// emitter joins partial records per stream and writes lines with the
// options' filters and limit.
type emitter struct {
	opts      ReadOptions
	out       [2]io.Writer
	pend      [2]pending
	remaining int64 // -1: no limit
}

func (e *emitter) line(line []byte) error {
	rec, err := parseRecord(line)
	if err != nil {
		// Not CRI: write it as it is.
		raw := bytes.TrimSuffix(line, []byte{'\n'})
		return e.write(0, append(append([]byte(nil), raw...), '\n'))
	}
	p := &e.pend[rec.stream]
	if !p.active {
		p.active = true
		p.ts = rec.ts
		p.buf = p.buf[:0]
	}
	p.buf = append(p.buf, rec.content...)
	if rec.partial && len(p.buf) < maxPending {
		return nil
	}
	if !rec.partial {
		p.buf = append(p.buf, '\n')
	}
	return e.emit(rec.stream)
}

func (e *emitter) emit(stream int) error {
	p := &e.pend[stream]
	if !p.active {
		return nil
	}
	p.active = false
	if e.opts.SinceTime != nil && p.ts.Before(*e.opts.SinceTime) {
		return nil
	}
	if e.opts.Timestamps {
		out := make([]byte, 0, len(p.buf)+36)
		out = p.ts.AppendFormat(out, timestampFormat)
		out = append(out, ' ')
		out = append(out, p.buf...)
		return e.write(stream, out)
	}
	return e.write(stream, p.buf)
}

// flush writes partial lines held back.
func (e *emitter) flush() error {
	for s := range e.pend {
		if err := e.emit(s); err != nil {
			return err
		}
	}
	return nil
}

func (e *emitter) write(stream int, b []byte) error {
	if e.remaining == 0 {
		return errLimit
	}
	limited := false
	if e.remaining > 0 && int64(len(b)) >= e.remaining {
		b = b[:e.remaining]
		limited = true
	}
	if _, err := e.out[stream].Write(b); err != nil {
		return err
	}
	if e.remaining > 0 {
		e.remaining -= int64(len(b))
	}
	if limited {
		e.remaining = 0
		return errLimit
	}
	return nil
}
