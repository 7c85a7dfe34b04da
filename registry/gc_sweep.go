package registry

// The collection's sweep: each removal decided and made under the locks pushes take
// (see the top of gc.go).

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drover-cd/drover/atomicfile"
	"github.com/opencontainers/go-digest"
)

// collectRepo prunes, marks and sweeps one repository, scanning it again
// when pushes change it meanwhile.
func (c *collector) collectRepo(ctx context.Context, name string) error {
	pruned := false
	for attempt := 1; ; attempt++ {
		if !c.opt.DryRun {
			c.r.meta.Lock()
			c.r.gc.mu.Lock()
			delete(c.r.gc.marks.dirty, name)
			c.r.gc.mu.Unlock()
			c.r.meta.Unlock()
		}
		s, err := c.r.scanRepo(name)
		if err != nil {
			return err
		}
		if c.opt.hook != nil {
			c.opt.hook("scanned", name)
		}
		if !pruned && c.opt.Prune != nil {
			pruned = true
			if err := c.prune(name, s); err != nil {
				return err
			}
		}
		done, err := c.sweepRepo(ctx, name, s)
		if err != nil || done {
			return err
		}
		if attempt == gcAttempts {
			c.opt.Log.Warn("registry gc: repository changed on every attempt; left for the next collection", "repository", name)
			c.rep.BusyRepositories = append(c.rep.BusyRepositories, name)
			return nil
		}
	}
}

// prune deletes the tags opt.Prune chooses.
func (c *collector) prune(name string, s *repoScan) error {
	infos := make([]TagInfo, 0, len(s.tags))
	for _, t := range slices.Sorted(maps.Keys(s.tags)) {
		te := s.tags[t]
		ti := TagInfo{Tag: t, Digest: te.digest, Modified: te.mod}
		if rv, ok := s.revs[te.digest]; ok {
			ti.Annotations = maps.Clone(rv.m.Annotations)
		}
		infos = append(infos, ti)
	}
	removed := false
	for _, t := range c.opt.Prune(name, infos) {
		te, ok := s.tags[t]
		if !ok {
			continue
		}
		if !c.opt.DryRun {
			ok, err := c.r.gcRemoveTag(name, t, te)
			if err != nil {
				return err
			}
			if !ok {
				continue // pushed again meanwhile
			}
			removed = true
			c.opt.Log.Info("registry gc: tag pruned", "repository", name, "tag", t, "digest", te.digest)
		}
		delete(s.tags, t)
		c.rep.TagsRemoved = append(c.rep.TagsRemoved, name+":"+t)
	}
	if removed {
		return atomicfile.SyncDir(c.r.tagsDir(name))
	}
	return nil
}

// gcRemoveTag removes a tag when it still is what the scan found.
func (r *Registry) gcRemoveTag(name, tag string, te tagEntry) (bool, error) {
	path := filepath.Join(r.tagsDir(name), tag)
	r.meta.Lock()
	defer r.meta.Unlock()
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if d, err := r.readTag(name, tag); err != nil || d != te.digest || !fi.ModTime().Equal(te.mod) {
		return false, nil
	}
	return removeFile(path)
}

// sweepRepo removes the unwanted revision and layer links of a scanned
// repository and adds what survives to c.live. It reports false when the
// repository changed since the scan, which must then be repeated.
func (c *collector) sweepRepo(ctx context.Context, name string, s *repoScan) (bool, error) {
	kept := c.markKept(s)
	gone := map[digest.Digest]bool{} // removed revisions
	goneLayers := map[digest.Digest]bool{}
	defer func() {
		for d := range s.revs {
			if !gone[d] {
				c.live[d] = true
			}
		}
		for d := range s.layers {
			if !goneLayers[d] {
				c.live[d] = true
			}
		}
	}()

	revsRemoved := map[digest.Algorithm]bool{} // the folders to sync
	layersRemoved := map[digest.Algorithm]bool{}
	for _, d := range slices.Sorted(maps.Keys(s.revs)) {
		if kept[d] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if !c.opt.DryRun {
			ok, busy, err := c.r.gcRemoveLink(name, d, c.r.revisionLink(name, d), false, c.cutoff)
			if err != nil || busy {
				return false, err
			}
			if !ok {
				// Wanted after all: keep it and what it references.
				kept[d] = true
				for _, b := range s.revs[d].m.blobRefs() {
					c.live[b] = true
				}
				continue
			}
			revsRemoved[d.Algorithm()] = true
			c.opt.Log.Info("registry gc: manifest removed", "repository", name, "digest", d)
		}
		gone[d] = true
		c.rep.ManifestsRemoved = append(c.rep.ManifestsRemoved, name+"@"+d.String())
	}

	wanted := map[digest.Digest]bool{}
	for d := range kept {
		for _, b := range s.revs[d].m.blobRefs() {
			wanted[b] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(s.layers)) {
		if wanted[d] || !s.layers[d].Before(c.cutoff) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if !c.opt.DryRun {
			ok, busy, err := c.r.gcRemoveLink(name, d, c.r.layerLink(name, d), true, c.cutoff)
			if err != nil || busy {
				return false, err
			}
			if !ok {
				continue
			}
			layersRemoved[d.Algorithm()] = true
			c.opt.Log.Debug("registry gc: layer link removed", "repository", name, "digest", d)
		}
		goneLayers[d] = true
		c.rep.LayerLinksRemoved++
	}

	// Make the removals durable before any blob they named is removed.
	for _, alg := range slices.Sorted(maps.Keys(revsRemoved)) {
		if err := atomicfile.SyncDir(filepath.Join(c.r.repoDir(name), "_manifests", "revisions", alg.String())); err != nil {
			return false, err
		}
	}
	for _, alg := range slices.Sorted(maps.Keys(layersRemoved)) {
		if err := atomicfile.SyncDir(filepath.Join(c.r.repoDir(name), "_layers", alg.String())); err != nil {
			return false, err
		}
	}
	return true, nil
}

// markKept marks the manifests to keep and adds what they reference to c.live,
// so that a blob stays while a kept manifest needs it even if its link went.
func (c *collector) markKept(s *repoScan) map[digest.Digest]bool {
	kept := s.mark(c.cutoff)
	for d := range kept {
		m := &s.revs[d].m
		for _, b := range m.blobRefs() {
			c.live[b] = true
		}
		for _, child := range m.Manifests {
			c.live[child.Digest] = true
		}
	}
	return kept
}

// gcRemoveLink removes the revision or layer link at path of digest d in
// repository name, unless, at that moment, the repository changed since its
// scan (busy), a push marked the layer link, or the link was modified at or
// after cutoff.
func (r *Registry) gcRemoveLink(name string, d digest.Digest, path string, layer bool, cutoff time.Time) (removed, busy bool, err error) {
	r.meta.Lock()
	defer r.meta.Unlock()
	r.gc.mu.Lock()
	defer r.gc.mu.Unlock()
	m := r.gc.marks
	if m.dirty[name] {
		return false, true, nil
	}
	if layer && m.links[name][d] {
		return false, false, nil
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, false, nil // deleted through the API meanwhile
	}
	if err != nil {
		return false, false, err
	}
	if !fi.ModTime().Before(cutoff) {
		return false, false, nil
	}
	removed, err = removeFile(path)
	return removed, false, err
}

// removeFile removes path and reports whether it did.
func removeFile(path string) (bool, error) {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// sweepBlobs removes the blobs no link names that were not modified since
// the cutoff, of every algorithm.
func (c *collector) sweepBlobs(ctx context.Context) error {
	dir := filepath.Join(c.r.dir, "blobs")
	removed := map[digest.Algorithm]bool{} // the folders to sync
	err := readDigestDirs(dir, func(d digest.Digest, e fs.DirEntry) error {
		if c.live[d] {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fi.ModTime().Before(c.cutoff) {
			return nil
		}
		size := fi.Size()
		if !c.opt.DryRun {
			var ok bool
			if ok, size, err = c.r.gcRemoveBlob(d, c.cutoff); err != nil {
				return err
			} else if !ok {
				return nil
			}
			removed[d.Algorithm()] = true
			c.opt.Log.Debug("registry gc: blob removed", "digest", d, "size", size)
		}
		c.rep.BlobsRemoved++
		c.rep.BytesFreed += size
		return nil
	})
	for _, alg := range slices.Sorted(maps.Keys(removed)) {
		if serr := atomicfile.SyncDir(filepath.Join(dir, alg.String())); err == nil {
			err = serr
		}
	}
	return err
}

// gcRemoveBlob removes blob d unless, at that moment, a push placed or
// linked it during the collection or it was modified at or after cutoff.
func (r *Registry) gcRemoveBlob(d digest.Digest, cutoff time.Time) (bool, int64, error) {
	r.meta.Lock()
	defer r.meta.Unlock()
	r.gc.mu.Lock()
	defer r.gc.mu.Unlock()
	if r.gc.marks.blobs[d] {
		return false, 0, nil
	}
	path := r.blobPath(d)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, err
	}
	if !fi.ModTime().Before(cutoff) {
		return false, 0, nil
	}
	ok, err := removeFile(path)
	return ok, fi.Size(), err
}

// sweepUploads removes upload sessions, and temp files left by crashed
// pushes, not modified since cutoff.
func (c *collector) sweepUploads(ctx context.Context, cutoff time.Time) error {
	dir := filepath.Join(c.r.dir, "uploads")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	sessions := map[string]bool{}
	for _, e := range ents {
		n := e.Name()
		if id, ok := strings.CutSuffix(n, ".data"); ok && uploadIDRE.MatchString(id) {
			sessions[id] = true
		} else if id, ok := strings.CutSuffix(n, ".json"); ok && uploadIDRE.MatchString(id) {
			sessions[id] = true
		} else if strings.HasPrefix(n, ".") && !c.opt.DryRun {
			// A temp file of writeBlob or atomicfile; live ones are written to.
			if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(cutoff) {
				os.Remove(filepath.Join(dir, n))
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(sessions)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !c.r.uploadStale(id, cutoff) {
			continue
		}
		if !c.opt.DryRun {
			// Under the session's lock, so no chunk is being written.
			unlock := c.r.lockUpload(id)
			stale := c.r.uploadStale(id, cutoff)
			if stale {
				c.r.dropUpload(id)
			}
			unlock()
			if !stale {
				continue
			}
			c.opt.Log.Info("registry gc: stale upload removed", "upload", id)
		}
		c.rep.UploadsRemoved++
	}
	return nil
}

// uploadStale reports whether upload session id exists and neither of its
// files was modified since cutoff.
func (r *Registry) uploadStale(id string, cutoff time.Time) bool {
	found := false
	for _, path := range []string{r.uploadData(id), r.uploadState(id)} {
		fi, err := os.Lstat(path)
		if err != nil {
			continue
		}
		if !fi.ModTime().Before(cutoff) {
			return false
		}
		found = true
	}
	return found
}
