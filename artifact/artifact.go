// Package artifact packs the files a pipeline step publishes into deterministic,
// content-addressed OCI layers and keeps them in an OCI image layout on disk.
//
// A Store is a plain OCI image layout directory (oci-layout, index.json,
// blobs/sha256/<hex>), so its blobs and manifests can later be served by an
// OCI registry byte for byte. Pack turns one declared artifact path into a
// gzip-compressed tar layer whose digest depends only on the names, contents,
// exec bits and symlink targets of the files, never on mtimes, owners or umask.
package artifact

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/drover-cd/drover/atomicfile"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// ArtifactType is the artifactType of every manifest written by PutManifest.
	ArtifactType = "application/vnd.drover.artifact.v1"
	// LayerMediaType is the media type of the layers produced by Pack: one
	// gzip-compressed tar per declared artifact path.
	LayerMediaType = ocispec.MediaTypeImageLayerGzip
)

// ErrDigestMismatch is returned (wrapped) when content does not hash to the
// digest it is stored or addressed under.
var ErrDigestMismatch = errors.New("blob content does not match its digest")

// Store is an OCI image layout directory (oci-layout file, index.json,
// blobs/sha256/<hex>).
//
// It is safe for concurrent use by several goroutines and processes: every
// blob is written to a temp file in the same directory, fsynced, verified
// against its digest, then moved into place with a no-clobber link (falling
// back to rename where hard links are unsupported); an existing blob is never
// rewritten. index.json updates are serialised by a mutex and, on Unix, an
// flock on the layout directory.
type Store struct {
	dir string
	mu  sync.Mutex // serialises index.json read-modify-write within the process
}

// Open opens the OCI image layout in dir, creating it if missing: the
// directory, blobs/sha256, oci-layout {"imageLayoutVersion":"1.0.0"} and an
// index.json with no manifests.
func Open(dir string) (*Store, error) {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Join(dir, ocispec.ImageBlobsDir, digest.SHA256.String()), 0o755); err != nil {
		return nil, fmt.Errorf("artifact store %s: %w", dir, err)
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return nil, fmt.Errorf("artifact store %s: %w", dir, err)
	}
	if err := createFile(dir, ocispec.ImageLayoutFile, layout); err != nil {
		return nil, fmt.Errorf("artifact store %s: %w", dir, err)
	}
	index, err := json.Marshal(emptyIndex())
	if err != nil {
		return nil, fmt.Errorf("artifact store %s: %w", dir, err)
	}
	if err := createFile(dir, ocispec.ImageIndexFile, index); err != nil {
		return nil, fmt.Errorf("artifact store %s: %w", dir, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ocispec.ImageLayoutFile))
	if err != nil {
		return nil, fmt.Errorf("artifact store %s: %w", dir, err)
	}
	var got ocispec.ImageLayout
	if err := json.Unmarshal(data, &got); err != nil {
		return nil, fmt.Errorf("artifact store %s: parse %s: %w", dir, ocispec.ImageLayoutFile, err)
	}
	if got.Version != ocispec.ImageLayoutVersion {
		return nil, fmt.Errorf("artifact store %s: unsupported imageLayoutVersion %q", dir, got.Version)
	}
	return &Store{dir: dir}, nil
}

// Dir returns the layout directory of the store.
func (s *Store) Dir() string { return s.dir }

func emptyIndex() ocispec.Index {
	return ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{},
	}
}

// blobPath returns the path of the blob with digest d, which must be valid.
func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.dir, ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// hasBlob checks that the blob with digest d is present and size bytes long.
func (s *Store) hasBlob(d digest.Digest, size int64) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("blob %q: %w", d, err)
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if fi.Size() != size {
		return fmt.Errorf("blob %s is %d bytes, its descriptor says %d", d, fi.Size(), size)
	}
	return nil
}

// Blob opens the blob with digest d for reading. The digest is verified while
// reading: once the content is exhausted, Read returns an error wrapping
// ErrDigestMismatch instead of io.EOF if the bytes on disk do not match, so
// corruption is never served silently. A missing blob gives an error wrapping
// fs.ErrNotExist.
func (s *Store) Blob(d digest.Digest) (io.ReadCloser, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w", d, err)
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return &verifyingReader{f: f, d: d, v: d.Verifier()}, nil
}

// verifyingReader hashes everything read from f and turns the final io.EOF
// into a digest mismatch error if the hash is wrong. The final result is sticky.
type verifyingReader struct {
	f   *os.File
	d   digest.Digest
	v   digest.Verifier
	err error
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.f.Read(p)
	r.v.Write(p[:n]) // hash.Hash writes never fail
	switch {
	case err == io.EOF && !r.v.Verified():
		r.err = fmt.Errorf("blob %s (%s): %w", r.d, r.f.Name(), ErrDigestMismatch)
		return n, r.err
	case err != nil:
		r.err = err
	}
	return n, err
}

func (r *verifyingReader) Close() error { return r.f.Close() }

// blobWriter streams a new blob into a temp file next to its final location,
// hashing and counting as it goes.
type blobWriter struct {
	s    *Store
	f    *os.File
	buf  *bufio.Writer
	hash hash.Hash
	size int64
}

func (s *Store) newBlobWriter() (*blobWriter, error) {
	f, err := os.CreateTemp(filepath.Join(s.dir, ocispec.ImageBlobsDir, digest.SHA256.String()), ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create blob temp file: %w", err)
	}
	if err := f.Chmod(0o644); err != nil { // blobs are world-readable, like the layout files
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("create blob temp file: %w", err)
	}
	w := &blobWriter{s: s, f: f, hash: sha256.New()}
	w.buf = bufio.NewWriterSize(io.MultiWriter(f, w.hash), 256<<10)
	return w, nil
}

func (w *blobWriter) Write(p []byte) (int, error) {
	n, err := w.buf.Write(p)
	w.size += int64(n)
	return n, err
}

// abort discards the temp file; it is safe to call after commit.
func (w *blobWriter) abort() {
	if w.f != nil {
		w.f.Close()
		os.Remove(w.f.Name())
		w.f = nil
	}
}

// commit flushes and fsyncs the temp file, checks it against want (if not
// empty) and moves it into place unless a blob with that digest already exists.
func (w *blobWriter) commit(want digest.Digest) (digest.Digest, int64, error) {
	defer w.abort()
	if err := w.buf.Flush(); err != nil {
		return "", 0, fmt.Errorf("write blob: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return "", 0, fmt.Errorf("sync blob: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return "", 0, fmt.Errorf("close blob: %w", err)
	}
	d := digest.NewDigest(digest.SHA256, w.hash)
	if want != "" && want != d {
		return "", 0, fmt.Errorf("blob %s: got %s: %w", want, d, ErrDigestMismatch)
	}
	if err := placeNoClobber(w.f.Name(), w.s.blobPath(d)); err != nil {
		return "", 0, fmt.Errorf("store blob %s: %w", d, err)
	}
	return d, w.size, nil
}

// Put stores the blob read from r, which must hash to want; an existing blob
// is kept. A mismatch wraps ErrDigestMismatch and stores nothing.
func (s *Store) Put(r io.Reader, want digest.Digest) error {
	if err := want.Validate(); err != nil {
		return fmt.Errorf("blob %q: %w", want, err)
	}
	if _, err := os.Stat(s.blobPath(want)); err == nil {
		return nil
	}
	w, err := s.newBlobWriter()
	if err != nil {
		return err
	}
	defer w.abort()
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("write blob %s: %w", want, err)
	}
	_, _, err = w.commit(want)
	return err
}

// putBytes stores a small in-memory blob and returns its digest.
func (s *Store) putBytes(data []byte) (digest.Digest, error) {
	w, err := s.newBlobWriter()
	if err != nil {
		return "", err
	}
	defer w.abort()
	if _, err := w.Write(data); err != nil {
		return "", fmt.Errorf("write blob: %w", err)
	}
	d, _, err := w.commit(sha256Digest(data))
	return d, err
}

// placeNoClobber moves the fsynced temp file tmp to dst unless dst already
// exists, in which case the existing file is kept. It hard-links so the check
// and the move are one atomic step, and falls back to rename on file systems
// without hard links. The containing directory is fsynced afterwards.
func placeNoClobber(tmp, dst string) error {
	err := os.Link(tmp, dst)
	switch {
	case err == nil, errors.Is(err, fs.ErrExist):
	default:
		if _, statErr := os.Lstat(dst); statErr == nil {
			break // appeared meanwhile: keep it
		}
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
	}
	os.Remove(tmp) // no-op if renamed
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// createFile atomically creates dir/name with data unless it already exists.
func createFile(dir, name string, data []byte) error {
	if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
		return nil
	}
	tmp, err := atomicfile.WriteTemp(dir, name, data, 0o644)
	if err != nil {
		return err
	}
	return placeNoClobber(tmp, filepath.Join(dir, name))
}

// sha256Digest hashes data. Using crypto/sha256 directly in this package also
// registers SHA-256 with crypto, which go-digest's Validate and Verifier need:
// without it they panic or refuse every digest in a binary that imports nothing
// else that registers it.
func sha256Digest(data []byte) digest.Digest {
	sum := sha256.Sum256(data)
	return digest.NewDigestFromBytes(digest.SHA256, sum[:])
}
