package registry

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/drover-cd/drover/atomicfile"
	"github.com/opencontainers/go-digest"
)

// errDigestMismatch reports content that does not hash to the digest it was
// pushed under.
var errDigestMismatch = errors.New("content does not match digest")

func (r *Registry) blobPath(d digest.Digest) string {
	return filepath.Join(r.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func (r *Registry) repoDir(name string) string {
	return filepath.Join(r.dir, "repositories", filepath.FromSlash(name))
}

func (r *Registry) layerLink(name string, d digest.Digest) string {
	return filepath.Join(r.repoDir(name), "_layers", d.Algorithm().String(), d.Encoded())
}

func (r *Registry) revisionLink(name string, d digest.Digest) string {
	return filepath.Join(r.repoDir(name), "_manifests", "revisions", d.Algorithm().String(), d.Encoded())
}

func (r *Registry) tagsDir(name string) string {
	return filepath.Join(r.repoDir(name), "_manifests", "tags")
}

func (r *Registry) uploadData(id string) string { return filepath.Join(r.dir, "uploads", id+".data") }
func (r *Registry) uploadState(id string) string {
	return filepath.Join(r.dir, "uploads", id+".json")
}

// exists reports whether path is present.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// repoExists reports whether the repository has received a blob or manifest.
// A folder holding only nested repositories ("a" for "a/b") does not count.
func (r *Registry) repoExists(name string) bool {
	return exists(filepath.Join(r.repoDir(name), "_layers")) || exists(filepath.Join(r.repoDir(name), "_manifests"))
}

// hasBlob reports whether blob d is visible in repository name.
func (r *Registry) hasBlob(name string, d digest.Digest) bool {
	return exists(r.layerLink(name, d)) && exists(r.blobPath(d))
}

// hasManifest reports whether manifest d is stored in repository name.
func (r *Registry) hasManifest(name string, d digest.Digest) bool {
	return exists(r.revisionLink(name, d)) && exists(r.blobPath(d))
}

// writeLink atomically writes a small metadata file, creating its folders.
func writeLink(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// linkBlob makes blob d visible in repository name, or touches the link when
// it already is (see gc.go). The caller holds meta. It fails when the blob is
// gone (collected after it was placed), so that no push succeeds onto it.
func (r *Registry) linkBlob(name string, d digest.Digest) error {
	if !exists(r.blobPath(d)) {
		return fmt.Errorf("link blob %s: %w", d, fs.ErrNotExist)
	}
	r.gcNote(name, d, true)
	link := r.layerLink(name, d)
	if present, err := touch(link); present || err != nil {
		return err
	}
	return writeLink(link, []byte(d.String()))
}

// placeBlob moves the fsynced file tmp to the blob path of d or, when that
// blob already exists (blobs are immutable), touches it; then it fsyncs the
// folder. Both happen under gc.mu, so the garbage collector either sees the
// touch or has removed the blob before, and tmp is placed in its stead.
func (r *Registry) placeBlob(tmp string, d digest.Digest) error {
	dst := r.blobPath(d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	r.gc.mu.Lock()
	err := placeOrTouch(tmp, dst)
	if m := r.gc.marks; m != nil && err == nil {
		m.blobs[d] = true
	}
	r.gc.mu.Unlock()
	if err != nil {
		return err
	}
	os.Remove(tmp)
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// placeOrTouch touches dst if it exists and otherwise links (or, without hard
// links, moves) tmp there and touches it: a link to an idle upload's data
// keeps that file's old modification time.
func placeOrTouch(tmp, dst string) error {
	if present, err := touch(dst); present || err != nil {
		return err
	}
	if err := os.Link(tmp, dst); err != nil && !errors.Is(err, fs.ErrExist) {
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
	}
	_, err := touch(dst)
	return err
}

// writeBlob streams src into a temp file while hashing it and, when it hashes
// to want, moves it into the blob store. Nothing becomes visible otherwise.
func (r *Registry) writeBlob(src io.Reader, want digest.Digest) (int64, error) {
	f, err := os.CreateTemp(filepath.Join(r.dir, "uploads"), ".blob-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name()) // no-op once placed
	h := want.Algorithm().Hash()
	n, err := io.Copy(io.MultiWriter(f, h), src)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if got := digest.NewDigest(want.Algorithm(), h); got != want {
		return 0, fmt.Errorf("got %s, want %s: %w", got, want, errDigestMismatch)
	}
	return n, r.placeBlob(f.Name(), want)
}

// listTags returns the repository's tags in lexical order.
func (r *Registry) listTags(name string) ([]string, error) {
	ents, err := os.ReadDir(r.tagsDir(name))
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, err
	}
	tags := make([]string, 0, len(ents))
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue // temp files of atomicfile start with "."; tags never do
		}
		tags = append(tags, e.Name())
	}
	sort.Strings(tags)
	return tags, nil
}

// readTag returns the digest tag points at.
func (r *Registry) readTag(name, tag string) (digest.Digest, error) {
	b, err := os.ReadFile(filepath.Join(r.tagsDir(name), tag))
	if err != nil {
		return "", err
	}
	return digest.Parse(strings.TrimSpace(string(b)))
}

// listRevisions returns the digests of every manifest stored in the repository.
func (r *Registry) listRevisions(name string) ([]digest.Digest, error) {
	var out []digest.Digest
	err := readDigestDirs(filepath.Join(r.repoDir(name), "_manifests", "revisions"), func(d digest.Digest, _ fs.DirEntry) error {
		out = append(out, d)
		return nil
	})
	return out, err
}

// readDigestDirs calls fn for every file named by a digest under dir, which
// holds a folder per algorithm (<alg>/<hex>), algorithm by algorithm. Missing
// folders hold nothing; temp files and other names are skipped.
func readDigestDirs(dir string, fn func(d digest.Digest, e fs.DirEntry) error) error {
	for _, alg := range algorithms {
		ents, err := os.ReadDir(filepath.Join(dir, alg.String()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			d := digest.NewDigestFromEncoded(alg, e.Name())
			if strings.HasPrefix(e.Name(), ".") || d.Validate() != nil {
				continue
			}
			if err := fn(d, e); err != nil {
				return err
			}
		}
	}
	return nil
}
