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
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

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
