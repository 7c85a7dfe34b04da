package registry

// Online garbage collection.
//
// The collector runs while clients push. Two mechanisms keep it from removing
// anything a push is about to rely on:
//
//   - Modification times are "last wanted" marks that outlive a collection.
//     Placing a blob touches it, linking an already linked blob touches the
//     link, a blob HEAD or GET touches the repository's link (docker checks
//     blobs with HEAD, skips the ones present and references them in a
//     manifest later), and a manifest PUT touches every link it references.
//     Nothing touched within the grace period is removed.
//   - While a collection runs, the same events also note what they want in
//     gcMarks (a write barrier): a repository whose manifests or tags changed
//     since it was scanned, layer links touched or created, blobs placed or
//     linked anywhere. This does not depend on clocks.
//
// Every removal is decided under meta (and gc.mu for blobs): the collector
// re-checks the marks and the modification time and removes the file in the
// same critical section, holding the locks for that one item only. Pushes make
// their decisive steps under the same locks: linkBlob and the manifest PUT
// check that what they reference still exists, placeBlob places or touches a
// blob. So either a push's step comes first and the collector sees its mark,
// or the removal comes first and the push sees the file gone and places it
// again or fails; it never succeeds onto a removed file.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/atomicfile"
	"github.com/opencontainers/go-digest"
)

// Defaults of GCOptions.
const (
	DefaultGrace     = time.Hour
	DefaultUploadTTL = 24 * time.Hour
)

// gcAttempts bounds how often a repository is scanned again because pushes
// changed it during one collection; after that it is left alone until the
// next collection.
const gcAttempts = 5

// ErrGCRunning is returned by GC while another collection runs.
var ErrGCRunning = errors.New("registry: garbage collection already running")

// GCOptions configures a garbage collection.
type GCOptions struct {
	// DryRun computes the report and changes nothing.
	DryRun bool
	// Grace protects links, manifests and blobs modified (touched) more
	// recently; zero means DefaultGrace.
	Grace time.Duration
	// UploadTTL is how long an untouched upload session lives; zero means
	// DefaultUploadTTL.
	UploadTTL time.Duration
	// Prune, when set, is called once per repository with its tags (in
	// lexical order) and returns the tags to delete before collecting. It
	// bypasses tag immutability.
	Prune func(repo string, tags []TagInfo) []string
	// Now is the clock the grace period and TTL are measured with; nil
	// means time.Now.
	Now func() time.Time
	// Log receives what the collection removes; nil means no logging.
	Log *slog.Logger

	// hook, in tests, is called with "scanned" after each scan of a
	// repository and with "blobs" before the sweep of the blob store.
	hook func(stage, repo string)
}

// TagInfo describes a tag for GCOptions.Prune.
type TagInfo struct {
	Tag    string        `json:"tag"`
	Digest digest.Digest `json:"digest"`
	// Annotations are the annotations of the manifest the tag names (nil when
	// it cannot be read).
	Annotations map[string]string `json:"annotations,omitempty"`
	// Modified is the modification time of the tag: when it was last pushed.
	Modified time.Time `json:"modified"`
}

// GCReport says what a collection removed, or would remove in a dry run.
type GCReport struct {
	DryRun            bool     `json:"dryRun"`
	TagsRemoved       []string `json:"tagsRemoved"`      // repo:tag
	ManifestsRemoved  []string `json:"manifestsRemoved"` // repo@digest
	LayerLinksRemoved int      `json:"layerLinksRemoved"`
	BlobsRemoved      int      `json:"blobsRemoved"`
	BytesFreed        int64    `json:"bytesFreed"`
	UploadsRemoved    int      `json:"uploadsRemoved"`
	// BusyRepositories changed under every attempt to collect them (pushes
	// of manifests or tags); their collection stopped at the change and is
	// left to the next run.
	BusyRepositories []string `json:"busyRepositories,omitempty"`
}

// gcState is the registry's garbage collection state.
type gcState struct {
	run sync.Mutex // one collection at a time

	// mu guards marks and orders blob placement against blob removal.
	// Whoever holds both takes meta first.
	mu    sync.Mutex
	marks *gcMarks // non-nil while a collection runs
}

// gcMarks is what pushes wanted while a collection runs.
type gcMarks struct {
	dirty map[string]bool                   // repositories whose manifests or tags changed since their scan
	links map[string]map[digest.Digest]bool // layer links created or touched, per repository
	blobs map[digest.Digest]bool            // blobs placed or linked anywhere
}

// gcNote records that repository name wants blob d (layer: through its layer
// link) for a running collection. The caller holds meta.
func (r *Registry) gcNote(name string, d digest.Digest, layer bool) {
	r.gc.mu.Lock()
	defer r.gc.mu.Unlock()
	m := r.gc.marks
	if m == nil {
		return
	}
	m.blobs[d] = true
	if layer {
		if m.links[name] == nil {
			m.links[name] = map[digest.Digest]bool{}
		}
		m.links[name][d] = true
	}
}

// touch sets the modification time of path to now, marking it wanted, and
// reports whether path exists.
func touch(path string) (bool, error) {
	err := os.Chtimes(path, time.Time{}, time.Now())
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// wantLayer marks the link of blob d in repository name wanted, as a blob HEAD
// or GET does: a client that finds a blob present skips pushing it and
// references it in a manifest later.
func (r *Registry) wantLayer(name string, d digest.Digest) {
	r.meta.Lock()
	defer r.meta.Unlock()
	if ok, _ := touch(r.layerLink(name, d)); ok {
		r.gcNote(name, d, true)
	}
}

// wantManifest marks everything manifest m, being pushed to repository name,
// references as wanted and tells a running collection that the repository
// changed. The caller holds meta.
func (r *Registry) wantManifest(name string, m *manifest) {
	for _, b := range m.blobRefs() {
		if b.Validate() != nil {
			continue
		}
		touch(r.layerLink(name, b))
		r.gcNote(name, b, true)
	}
	for _, desc := range m.Manifests {
		if desc.Digest.Validate() != nil {
			continue
		}
		touch(r.revisionLink(name, desc.Digest))
		r.gcNote(name, desc.Digest, false)
	}
	r.gc.mu.Lock()
	if r.gc.marks != nil {
		r.gc.marks.dirty[name] = true
	}
	r.gc.mu.Unlock()
}

// blobRefs returns the digests of the blobs (config and layers) m references.
func (m *manifest) blobRefs() []digest.Digest {
	var out []digest.Digest
	if m.Config != nil {
		out = append(out, m.Config.Digest)
	}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// GC collects garbage while the registry serves requests: it prunes tags
// (opt.Prune), removes the revision links of manifests that are neither
// tagged, recent, children of a kept index nor referrers of a kept manifest,
// removes the layer links no kept manifest references, removes the blobs no
// link names and removes stale upload sessions. See GCOptions for the
// knobs. It returns ErrGCRunning while another collection runs.
func (r *Registry) GC(ctx context.Context, opt GCOptions) (GCReport, error) {
	rep := GCReport{DryRun: opt.DryRun, TagsRemoved: []string{}, ManifestsRemoved: []string{}}
	switch {
	case opt.Grace < 0:
		return rep, fmt.Errorf("registry gc: negative grace period %v", opt.Grace)
	case opt.Grace == 0:
		opt.Grace = DefaultGrace
	}
	switch {
	case opt.UploadTTL < 0:
		return rep, fmt.Errorf("registry gc: negative upload TTL %v", opt.UploadTTL)
	case opt.UploadTTL == 0:
		opt.UploadTTL = DefaultUploadTTL
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if !r.gc.run.TryLock() {
		return rep, ErrGCRunning
	}
	defer r.gc.run.Unlock()

	now := opt.Now()
	c := &collector{r: r, opt: opt, cutoff: now.Add(-opt.Grace), rep: &rep, live: map[digest.Digest]bool{}}
	if !opt.DryRun {
		// Under meta, so that every push's critical section either comes
		// before (and the scans see it) or is noted.
		r.meta.Lock()
		r.gc.mu.Lock()
		r.gc.marks = &gcMarks{dirty: map[string]bool{}, links: map[string]map[digest.Digest]bool{}, blobs: map[digest.Digest]bool{}}
		r.gc.mu.Unlock()
		r.meta.Unlock()
		defer func() {
			r.gc.mu.Lock()
			r.gc.marks = nil
			r.gc.mu.Unlock()
		}()
	}
	err := c.run(ctx, now.Add(-opt.UploadTTL))
	sort.Strings(rep.TagsRemoved)
	sort.Strings(rep.ManifestsRemoved)
	if err != nil {
		return rep, fmt.Errorf("registry gc: %w", err)
	}
	opt.Log.Info("registry gc", "dryRun", rep.DryRun, "tags", len(rep.TagsRemoved), "manifests", len(rep.ManifestsRemoved),
		"layerLinks", rep.LayerLinksRemoved, "blobs", rep.BlobsRemoved, "bytes", rep.BytesFreed, "uploads", rep.UploadsRemoved,
		"busy", rep.BusyRepositories)
	return rep, nil
}

// collector is one garbage collection.
type collector struct {
	r      *Registry
	opt    GCOptions
	cutoff time.Time // things last modified before are unwanted
	rep    *GCReport
	live   map[digest.Digest]bool // digests a link names (or a kept manifest references) after the repositories' collection
}

func (c *collector) run(ctx context.Context, uploadCutoff time.Time) error {
	repos, err := c.r.listRepositories()
	if err != nil {
		return err
	}
	for _, name := range repos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.collectRepo(ctx, name); err != nil {
			return fmt.Errorf("repository %s: %w", name, err)
		}
	}
	if c.opt.hook != nil {
		c.opt.hook("blobs", "")
	}
	if err := c.sweepBlobs(ctx); err != nil {
		return err
	}
	return c.sweepUploads(ctx, uploadCutoff)
}

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
