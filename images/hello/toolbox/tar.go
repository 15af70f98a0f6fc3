package toolbox

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Tar is the part of tar(1) that `kubectl cp` runs, with standard input or
// output as the archive ("f -"):
//
//	tar cf - PATH...                    from the pod: directories recursively
//	tar -xmf - [-C DIR]                 to the pod
//	tar --no-same-permissions --no-same-owner -xmf - [-C DIR]
//
// Also t (list) and v (verbose). As GNU tar, a leading "/" is stripped from
// member names, and extraction refuses names that leave the directory.
func Tar(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseTarArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "tar: %v\n", err)
		return 2
	}
	if o.file != "-" {
		fmt.Fprintf(stderr, "tar: only f - (the archive on standard input or output) is supported, not %q\n", o.file)
		return 2
	}
	switch o.mode {
	case 'c':
		err = tarCreate(o, stdout, stderr)
	case 'x':
		err = tarExtract(o, stdin, stderr)
	case 't':
		err = tarList(stdin, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tar: %v\n", err)
		return 2
	}
	return 0
}

type tarOptions struct {
	mode      byte // c, x or t
	file      string
	dir       string // -C
	verbose   bool
	keepMtime bool // m: do not restore modification times
	noPerms   bool // --no-same-permissions
	paths     []string
}

func parseTarArgs(args []string) (tarOptions, error) {
	o := tarOptions{}
	takeFile := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case takeFile:
			o.file, takeFile = a, false
		case a == "-C":
			if i+1 >= len(args) {
				return o, errors.New("option -C requires a directory")
			}
			i++
			o.dir = args[i]
		case a == "--no-same-permissions":
			o.noPerms = true
		case a == "--no-same-owner":
			// Ownership is never restored: files belong to whoever extracts.
		case strings.HasPrefix(a, "--"):
			return o, fmt.Errorf("unsupported option %s", a)
		case (i == 0 || strings.HasPrefix(a, "-")) && o.mode == 0 || strings.HasPrefix(a, "-") && len(a) > 1:
			for _, c := range strings.TrimPrefix(a, "-") {
				switch c {
				case 'c', 'x', 't':
					if o.mode != 0 && o.mode != byte(c) {
						return o, errors.New("you may not specify more than one of -c, -x, -t")
					}
					o.mode = byte(c)
				case 'f':
					takeFile = true
				case 'v':
					o.verbose = true
				case 'm':
					o.keepMtime = true
				case 'o', 'p':
				default:
					return o, fmt.Errorf("unsupported option -%c", c)
				}
			}
		default:
			o.paths = append(o.paths, a)
		}
	}
	if takeFile {
		return o, errors.New("option f requires an archive name")
	}
	if o.mode == 0 {
		return o, errors.New("you must specify one of -c, -x, -t")
	}
	if o.mode == 'c' && len(o.paths) == 0 {
		return o, errors.New("cowardly refusing to create an empty archive")
	}
	return o, nil
}

func tarCreate(o tarOptions, out io.Writer, stderr io.Writer) error {
	tw := tar.NewWriter(out)
	for _, p := range o.paths {
		src := p
		if o.dir != "" && !filepath.IsAbs(p) {
			src = filepath.Join(o.dir, p)
		}
		err := filepath.WalkDir(src, func(file string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := strings.TrimLeft(filepath.ToSlash(file), "/")
			if o.dir != "" && !filepath.IsAbs(p) {
				rel, _ := filepath.Rel(o.dir, file)
				name = filepath.ToSlash(rel)
			}
			if o.verbose {
				fmt.Fprintln(stderr, name)
			}
			return addToTar(tw, file, name)
		})
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

func addToTar(tw *tar.Writer, file, name string) error {
	st, err := os.Lstat(file)
	if err != nil {
		return err
	}
	link := ""
	if st.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(file); err != nil {
			return err
		}
	}
	h, err := tar.FileInfoHeader(st, link)
	if err != nil {
		return err
	}
	h.Name = name
	if st.IsDir() {
		h.Name = strings.TrimSuffix(name, "/") + "/"
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

func tarExtract(o tarOptions, in io.Reader, stderr io.Writer) error {
	dir := o.dir
	if dir == "" {
		dir = "."
	}
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimLeft(h.Name, "/"))
		if name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("%s: member name leaves the target directory", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if o.verbose {
			fmt.Fprintln(stderr, name)
		}
		mode := h.FileInfo().Mode().Perm()
		if o.noPerms {
			mode &^= 0o022
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := os.Chmod(target, mode); err != nil {
				return err
			}
		case tar.TypeSymlink:
			os.Remove(target)
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
			continue
		default:
			fmt.Fprintf(stderr, "tar: %s: skipping unsupported entry type %q\n", h.Name, h.Typeflag)
			continue
		}
		if !o.keepMtime {
			if err := os.Chtimes(target, h.ModTime, h.ModTime); err != nil {
				return err
			}
		}
	}
}

func tarList(in io.Reader, out io.Writer) error {
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(out, h.Name)
	}
}
