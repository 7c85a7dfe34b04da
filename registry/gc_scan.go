package registry

// The collection's scan: what repositories hold and what their manifests keep.

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// listRepositories returns the names of all repositories: folders under
// repositories/ that hold _layers or _manifests.
func (r *Registry) listRepositories() ([]string, error) {
	root := filepath.Join(r.dir, "repositories")
	repos := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != root {
				return nil // removed meanwhile
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		if n := e.Name(); n == "_layers" || n == "_manifests" {
			rel, err := filepath.Rel(root, filepath.Dir(path))
			if err != nil {
				return err
			}
			repos[filepath.ToSlash(rel)] = true
			return fs.SkipDir
		}
		if strings.HasPrefix(e.Name(), "_") {
			return fs.SkipDir
		}
		return nil
	})
	return slices.Sorted(maps.Keys(repos)), err
}

// repoScan is what a scan found in a repository.
type repoScan struct {
	tags   map[string]tagEntry
	revs   map[digest.Digest]*revEntry
	layers map[digest.Digest]time.Time // modification times of the layer links
}

type tagEntry struct {
	digest digest.Digest
	mod    time.Time
}

type revEntry struct {
	mod time.Time // of the revision link
	m   manifest  // zero when the manifest cannot be read
}

// scanRepo reads a repository's tags, manifests and layer links.
func (r *Registry) scanRepo(name string) (*repoScan, error) {
	s := &repoScan{tags: map[string]tagEntry{}, revs: map[digest.Digest]*revEntry{}, layers: map[digest.Digest]time.Time{}}
	tags, err := r.listTags(name)
	if err != nil {
		return nil, err
	}
	for _, t := range tags {
		path := filepath.Join(r.tagsDir(name), t)
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		d, err := digest.Parse(strings.TrimSpace(string(b)))
		if err != nil {
			continue // not a tag the registry can serve either
		}
		s.tags[t] = tagEntry{digest: d, mod: fi.ModTime()}
	}
	revs, err := r.listRevisions(name)
	if err != nil {
		return nil, err
	}
	for _, d := range revs {
		fi, err := os.Lstat(r.revisionLink(name, d))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		rv := &revEntry{mod: fi.ModTime()}
		if err := r.readManifest(d, &rv.m); err != nil {
			return nil, err
		}
		s.revs[d] = rv
	}
	err = readDigestDirs(filepath.Join(r.repoDir(name), "_layers"), func(d digest.Digest, e fs.DirEntry) error {
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		s.layers[d] = fi.ModTime()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// readManifest parses the stored manifest d into m. A missing or unparsable
// manifest leaves m zero: it references nothing.
func (r *Registry) readManifest(d digest.Digest, m *manifest) error {
	f, err := os.Open(r.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return err
	}
	if json.Unmarshal(b, m) != nil {
		*m = manifest{}
	}
	return nil
}

// mark returns the manifests to keep: the tagged ones, the ones modified at
// or after cutoff, the children of kept indexes and the referrers of kept
// manifests.
func (s *repoScan) mark(cutoff time.Time) map[digest.Digest]bool {
	kept := map[digest.Digest]bool{}
	var work []digest.Digest
	keep := func(d digest.Digest) {
		if _, ok := s.revs[d]; ok && !kept[d] {
			kept[d] = true
			work = append(work, d)
		}
	}
	referrers := map[digest.Digest][]digest.Digest{}
	for d, rv := range s.revs {
		if rv.m.Subject != nil {
			referrers[rv.m.Subject.Digest] = append(referrers[rv.m.Subject.Digest], d)
		}
		if !rv.mod.Before(cutoff) {
			keep(d)
		}
	}
	for _, t := range s.tags {
		keep(t.digest)
	}
	for len(work) > 0 {
		d := work[len(work)-1]
		work = work[:len(work)-1]
		for _, child := range s.revs[d].m.Manifests {
			keep(child.Digest)
		}
		for _, ref := range referrers[d] {
			keep(ref)
		}
	}
	return kept
}
