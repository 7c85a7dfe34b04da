package artifact

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// gzipLevel is part of the layer format: changing it changes every digest.
// BestSpeed packs 3-4x faster than DefaultCompression for layers about 5-25%
// larger, the better trade for artifacts packed on every pipeline run.
const gzipLevel = gzip.BestSpeed

// epoch is the mtime of every tar entry.
var epoch = time.Unix(0, 0)

// entry is one file system object to be written to a layer.
type entry struct {
	name string // tar name: slash-separated, relative to root, "/" suffix for directories
	rel  string // OS path relative to root
	mode fs.FileMode
}

// Pack packs one declared artifact path (a file or a directory, relative to
// root; a trailing slash is allowed) as a gzip-compressed tar layer, stores it
// and returns its descriptor, annotated with "org.opencontainers.image.title"
// set to the cleaned declared path (e.g. "dist").
//
// The layer is deterministic: entries are sorted by name (directories end in
// "/" and are included), names are relative to root ("dist/app"), uid/gid are
// 0 with empty uname/gname, every mtime is Unix 0, directories and files with
// any exec bit get mode 0755 and other files 0644, symlinks are stored as
// symlinks (mode 0777) with their target unchanged, and the gzip header has no
// name and a zero mtime. Sockets, devices and named pipes are rejected with an
// error naming the file.
//
// Absolute paths and paths escaping root (through ".." or a symlink component
// leading outside root) are rejected. A declared path that is itself a symlink
// is stored as that symlink, unless it has a trailing slash, which (as in
// POSIX) means the directory the link leads to. A missing path gives an error
// wrapping fs.ErrNotExist. Files are streamed, never held in memory, and ctx
// is checked between files.
func (s *Store) Pack(ctx context.Context, root, declared string) (ocispec.Descriptor, error) {
	title, err := cleanDeclared(declared)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("artifact root %s: %w", root, err)
	}
	defer r.Close()

	entries, err := collect(ctx, r, title, declared)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	w, err := s.newBlobWriter()
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("artifact path %q: %w", declared, err)
	}
	defer w.abort()
	if err := writeLayer(ctx, w, r, entries); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("artifact path %q: %w", declared, err)
	}
	d, size, err := w.commit("")
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("artifact path %q: %w", declared, err)
	}
	return ocispec.Descriptor{
		MediaType:   LayerMediaType,
		Digest:      d,
		Size:        size,
		Annotations: map[string]string{ocispec.AnnotationTitle: title},
	}, nil
}

// cleanDeclared validates a declared artifact path and returns it cleaned and
// slash-separated ("dist/" -> "dist").
func cleanDeclared(declared string) (string, error) {
	p := filepath.FromSlash(declared)
	switch {
	case declared == "":
		return "", errors.New("artifact path is empty")
	case filepath.IsAbs(p) || strings.HasPrefix(declared, "/"):
		return "", fmt.Errorf("artifact path %q is absolute; it must be relative to the workspace", declared)
	case !filepath.IsLocal(p):
		return "", fmt.Errorf("artifact path %q escapes the workspace", declared)
	}
	return filepath.ToSlash(filepath.Clean(p)), nil
}

// collect lists every object under the declared path, sorted by tar name.
func collect(ctx context.Context, r *os.Root, title, declared string) ([]entry, error) {
	top := filepath.FromSlash(title)
	stat := r.Lstat
	if strings.HasSuffix(declared, "/") {
		stat = r.Stat // "dir/" names the directory a final symlink leads to, as in POSIX
	}
	fi, err := stat(top)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("artifact path %q does not exist: %w", declared, err)
	}
	if err != nil {
		return nil, fmt.Errorf("artifact path %q: %w", declared, err)
	}
	if strings.HasSuffix(declared, "/") && !fi.IsDir() {
		return nil, fmt.Errorf("artifact path %q is not a directory", declared)
	}
	var entries []entry
	var walk func(rel string, mode fs.FileMode) error
	walk = func(rel string, mode fs.FileMode) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("artifact path %q: %w", declared, err)
		}
		name := filepath.ToSlash(rel)
		switch {
		case mode.IsDir():
			if rel != "." {
				entries = append(entries, entry{name: name + "/", rel: rel, mode: mode})
			}
		case mode.IsRegular(), mode.Type() == fs.ModeSymlink:
			entries = append(entries, entry{name: name, rel: rel, mode: mode})
			return nil
		default:
			return fmt.Errorf("artifact path %q: %q is a %s; only regular files, directories and symlinks can be packed",
				declared, name, typeName(mode))
		}
		f, err := r.Open(rel)
		if err != nil {
			return fmt.Errorf("artifact path %q: %w", declared, err)
		}
		des, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return fmt.Errorf("artifact path %q: read directory %q: %w", declared, name, err)
		}
		for _, de := range des {
			if err := walk(filepath.Join(rel, de.Name()), de.Type()); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(top, fi.Mode()); err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return entries, nil
}

func typeName(m fs.FileMode) string {
	switch m.Type() {
	case fs.ModeSocket:
		return "socket"
	case fs.ModeNamedPipe:
		return "named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "device"
	default:
		return "special file (" + m.Type().String() + ")"
	}
}

// normMode is the normalised permission of a directory or regular file.
func normMode(m fs.FileMode) int64 {
	if m.IsDir() || m.Perm()&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

// writeLayer writes the tar.gz stream of entries to w.
func writeLayer(ctx context.Context, w io.Writer, r *os.Root, entries []entry) error {
	gz, err := gzip.NewWriterLevel(w, gzipLevel) // zero header: no name, no mtime
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeEntry(tw, r, e); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeEntry(tw *tar.Writer, r *os.Root, e entry) error {
	hdr := &tar.Header{Name: e.name, ModTime: epoch}
	switch {
	case e.mode.IsDir():
		hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		return tw.WriteHeader(hdr)
	case e.mode.Type() == fs.ModeSymlink:
		target, err := r.Readlink(e.rel)
		if err != nil {
			return fmt.Errorf("read symlink %q: %w", e.name, err)
		}
		hdr.Typeflag, hdr.Mode, hdr.Linkname = tar.TypeSymlink, 0o777, filepath.ToSlash(target)
		return tw.WriteHeader(hdr)
	}
	// Without blocking, then checked: a named pipe put in the file's place since the
	// walk would make a plain open wait for ever.
	f, err := r.OpenFile(e.rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open %q: %w", e.name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %q: %w", e.name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%q changed while packing: no longer a regular file", e.name)
	}
	hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, normMode(fi.Mode()), fi.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header %q: %w", e.name, err)
	}
	if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%q shrank while packing: %w", e.name, io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("pack %q: %w", e.name, err)
	}
	return nil
}
