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
	"path"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Unpack extracts a layer produced by Pack into dir, creating dir if needed.
// Entries whose names are absolute or escape dir, and entries that would be
// written through a symlink leading outside dir, are rejected. Directories and
// files get the normalised modes Pack recorded (0755, or 0644 for files
// without an exec bit) and symlinks are recreated as symlinks. Existing files
// and symlinks at an entry's path are replaced. The layer digest is verified
// while reading; a corrupted blob gives an error wrapping ErrDigestMismatch.
// Only regular files, directories and symlinks are accepted.
func (s *Store) Unpack(ctx context.Context, layer ocispec.Descriptor, dir string) error {
	if layer.MediaType != "" && layer.MediaType != LayerMediaType {
		return fmt.Errorf("unpack %s: unsupported media type %q", layer.Digest, layer.MediaType)
	}
	rc, err := s.Blob(layer.Digest)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer rc.Close()
	if err := Extract(ctx, rc, dir); err != nil {
		return fmt.Errorf("unpack %s: %w", layer.Digest, err)
	}
	return nil
}

// Extract extracts a layer produced by Pack, read from r, into dir with the same
// rules as Unpack. It does not verify a digest: wrap r in a verifying reader.
func Extract(ctx context.Context, r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer root.Close()
	if err := extract(ctx, r, root); err != nil {
		return fmt.Errorf("extract into %s: %w", dir, err)
	}
	return nil
}

// extract reads a tar.gz stream from r into root and then drains r, so the
// blob's digest is always checked to the end.
func extract(ctx context.Context, r io.Reader, root *os.Root) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("read gzip: %w", err)
	}
	tr := tar.NewReader(gz)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := extractEntry(root, hdr, tr); err != nil {
			return err
		}
	}
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return fmt.Errorf("read gzip: %w", err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("read layer: %w", err)
	}
	return nil
}

// localName cleans a tar entry name and reports whether it stays inside the
// extraction directory.
func localName(name string) (string, bool) {
	clean := path.Clean(strings.TrimSuffix(name, "/"))
	if clean == "." || strings.HasPrefix(name, "/") {
		return "", false
	}
	rel := filepath.FromSlash(clean)
	return rel, filepath.IsLocal(rel)
}

func extractEntry(root *os.Root, hdr *tar.Header, r io.Reader) error {
	name, ok := localName(hdr.Name)
	if !ok {
		return fmt.Errorf("tar entry %q escapes the target directory", hdr.Name)
	}
	if parent := filepath.Dir(name); parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("create parent of %q: %w", hdr.Name, err)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err := root.Mkdir(name, 0o755)
		if errors.Is(err, fs.ErrExist) {
			var fi fs.FileInfo
			if fi, err = root.Stat(name); err == nil && !fi.IsDir() {
				err = errors.New("a non-directory is in the way")
			}
		}
		if err != nil {
			return fmt.Errorf("create directory %q: %w", hdr.Name, err)
		}
		if err := root.Chmod(name, 0o755); err != nil {
			return fmt.Errorf("chmod %q: %w", hdr.Name, err)
		}
	case tar.TypeSymlink:
		if err := removeNonDir(root, name); err != nil {
			return fmt.Errorf("replace %q: %w", hdr.Name, err)
		}
		if err := root.Symlink(filepath.FromSlash(hdr.Linkname), name); err != nil {
			return fmt.Errorf("create symlink %q: %w", hdr.Name, err)
		}
	case tar.TypeReg:
		if err := removeNonDir(root, name); err != nil {
			return fmt.Errorf("replace %q: %w", hdr.Name, err)
		}
		mode := fs.FileMode(normMode(fs.FileMode(hdr.Mode)))
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return fmt.Errorf("create %q: %w", hdr.Name, err)
		}
		_, err = io.Copy(f, r)
		if err == nil {
			err = f.Chmod(mode) // undo the umask
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %q: %w", hdr.Name, err)
		}
	default:
		return fmt.Errorf("tar entry %q has unsupported type %q", hdr.Name, hdr.Typeflag)
	}
	return nil
}

// removeNonDir removes whatever non-directory exists at name, so a new file
// or symlink never writes through an old one.
func removeNonDir(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("a directory is in the way")
	}
	return root.Remove(name)
}
