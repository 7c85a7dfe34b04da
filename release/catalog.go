package release

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/artifact"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/registry"
)

// ErrNotFound is wrapped when a project has no such release, artifact or file.
var ErrNotFound = errors.New("not found")

// ErrCorrupt is wrapped when stored content does not match its digest.
var ErrCorrupt = errors.New("content does not match its digest")

// Release is one run's published artifact as the API and the web UI show it.
type Release struct {
	Project  string        `json:"project"`
	Run      int           `json:"run"`
	Tag      string        `json:"tag"`     // r<run> for a release, the run number otherwise
	Release  bool          `json:"release"` // the run passed every gate
	Digest   digest.Digest `json:"digest"`
	Commit   string        `json:"commit,omitempty"`
	Branch   string        `json:"branch,omitempty"`
	Created  time.Time     `json:"created,omitzero"`
	Tests    *Tests        `json:"tests,omitempty"`
	Coverage *float64      `json:"coverage,omitempty"` // percent
	Size     int64         `json:"size"`               // bytes of all layers, compressed
	Layers   []Layer       `json:"layers"`
	// Image is the container image the run's build: step made, "REPO@DIGEST" in the
	// registry; "" when it built none.
	Image string `json:"image,omitempty"`
}

// Tests are the summed test counts of a run's reports.
type Tests struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

// Layer is one declared artifact path of a release.
type Layer struct {
	Path   string        `json:"path"` // as declared, e.g. "dist"
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// File is one file inside a release's layers.
type File struct {
	Path   string        `json:"path"` // relative to the workspace, e.g. "dist/app"
	Size   int64         `json:"size"`
	Mode   int64         `json:"mode"`
	Link   string        `json:"link,omitempty"`   // a symlink's target
	Digest digest.Digest `json:"digest,omitempty"` // of the file's content; "" for a symlink
	Layer  digest.Digest `json:"layer"`
}

// Catalog reads releases and their files from the registry. It caches the file
// lists of layers, which never change.
type Catalog struct {
	Registry *registry.Registry

	mu    sync.Mutex
	files map[digest.Digest][]File
}

// maxCachedLayers bounds the file-list cache.
const maxCachedLayers = 512

// List returns the project's releases (runs that passed), newest first.
func (c *Catalog) List(ctx context.Context, project string) ([]Release, error) {
	repo, err := Repository(project)
	if err != nil {
		return nil, err
	}
	tags, err := c.Registry.Tags(repo)
	if err != nil {
		return nil, err
	}
	var out []Release
	for _, t := range tags {
		if !IsReleaseTag(t) {
			continue
		}
		rel, err := c.get(ctx, project, repo, t, tags)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *rel)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Run > out[j].Run })
	return out, nil
}

// Get returns the artifact ref names in the project: a run number ("12"), a release
// tag ("r12"), a commit or a digest.
func (c *Catalog) Get(ctx context.Context, project, ref string) (*Release, error) {
	repo, err := Repository(project)
	if err != nil {
		return nil, err
	}
	tags, err := c.Registry.Tags(repo)
	if err != nil {
		return nil, err
	}
	return c.get(ctx, project, repo, ref, tags)
}

// get reads the artifact ref names; tags are the repository's.
func (c *Catalog) get(ctx context.Context, project, repo, ref string, tags []string) (*Release, error) {
	body, _, d, err := c.Registry.Manifest(ctx, repo, ref)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, fmt.Errorf("%s:%s: %w", project, ref, ErrNotFound)
	}
	var apiErr *registry.APIError
	if errors.As(err, &apiErr) && apiErr.Status == 400 {
		return nil, fmt.Errorf("%s:%s: %w", project, ref, ErrNotFound) // not a valid tag or digest
	}
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(body)
	if err != nil {
		return nil, err
	}
	if m.ArtifactType != artifact.ArtifactType {
		return nil, fmt.Errorf("%s:%s is not a Drover run artifact: %w", project, ref, ErrNotFound)
	}
	a := m.Annotations
	rel := &Release{Project: project, Digest: d, Commit: a[ocispec.AnnotationRevision], Branch: a["dev.drover.branch"],
		Image: a["dev.drover.image"]}
	rel.Run, _ = strconv.Atoi(a["dev.drover.run"])
	rel.Tag = strconv.Itoa(rel.Run)
	switch {
	case ref == Tag(rel.Run): // listed by its release tag: d is what the tag names
		rel.Tag, rel.Release = ref, true
	case slices.Contains(tags, Tag(rel.Run)):
		if td, err := c.tagDigest(ctx, repo, Tag(rel.Run)); err == nil && td == d {
			rel.Tag, rel.Release = Tag(rel.Run), true
		}
	}
	rel.Created, _ = time.Parse(time.RFC3339, a[ocispec.AnnotationCreated])
	if p, ok := a[engine.AnnotationTestsPassed]; ok {
		t := &Tests{}
		t.Passed, _ = strconv.Atoi(p)
		t.Failed, _ = strconv.Atoi(a[engine.AnnotationTestsFailed])
		t.Skipped, _ = strconv.Atoi(a[engine.AnnotationTestsSkipped])
		rel.Tests = t
	}
	if v, err := strconv.ParseFloat(a[engine.AnnotationCoverage], 64); err == nil {
		rel.Coverage = &v
	}
	for _, l := range m.Layers {
		if l.MediaType != artifact.LayerMediaType {
			continue // the empty layer of an artifact without files
		}
		rel.Layers = append(rel.Layers, Layer{Path: l.Annotations[ocispec.AnnotationTitle], Digest: l.Digest, Size: l.Size})
		rel.Size += l.Size
	}
	return rel, nil
}

func (c *Catalog) tagDigest(ctx context.Context, repo, tag string) (digest.Digest, error) {
	_, _, d, err := c.Registry.Manifest(ctx, repo, tag)
	return d, err
}

// Files lists the regular files and symlinks of every layer of rel, in path order.
func (c *Catalog) Files(ctx context.Context, rel *Release) ([]File, error) {
	var out []File
	for _, l := range rel.Layers {
		fs, err := c.layerFiles(ctx, rel.Project, l.Digest)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (c *Catalog) layerFiles(ctx context.Context, project string, layer digest.Digest) ([]File, error) {
	c.mu.Lock()
	fs, ok := c.files[layer]
	c.mu.Unlock()
	if ok {
		return fs, nil
	}
	err := c.walk(ctx, project, layer, func(hdr *tar.Header, r io.Reader) (bool, error) {
		switch hdr.Typeflag {
		case tar.TypeReg:
			d, err := digest.SHA256.FromReader(r)
			if err != nil {
				return false, fmt.Errorf("layer %s: %s: %w", layer, hdr.Name, err)
			}
			fs = append(fs, File{Path: hdr.Name, Size: hdr.Size, Mode: hdr.Mode, Digest: d, Layer: layer})
		case tar.TypeSymlink:
			fs = append(fs, File{Path: hdr.Name, Mode: hdr.Mode, Link: hdr.Linkname, Layer: layer})
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.files == nil || len(c.files) >= maxCachedLayers {
		c.files = map[digest.Digest][]File{}
	}
	c.files[layer] = fs
	c.mu.Unlock()
	return fs, nil
}

// Find returns the file at name (e.g. "dist/app") of rel.
func (c *Catalog) Find(ctx context.Context, rel *Release, name string) (File, error) {
	name = path.Clean(strings.TrimPrefix(name, "/"))
	files, err := c.Files(ctx, rel)
	if err != nil {
		return File{}, err
	}
	i := sort.Search(len(files), func(i int) bool { return files[i].Path >= name })
	if i == len(files) || files[i].Path != name {
		return File{}, fmt.Errorf("%s in %s:%s: %w", name, rel.Project, rel.Tag, ErrNotFound)
	}
	return files[i], nil
}

// Copy writes the content of regular file f of project to w, checking it against
// f.Digest: on a mismatch the error wraps ErrCorrupt (w has had the bad bytes).
func (c *Catalog) Copy(ctx context.Context, project string, f File, w io.Writer) error {
	found := false
	err := c.walk(ctx, project, f.Layer, func(hdr *tar.Header, r io.Reader) (bool, error) {
		if hdr.Name != f.Path || hdr.Typeflag != tar.TypeReg {
			return true, nil
		}
		found = true
		v := f.Digest.Verifier()
		if _, err := io.Copy(io.MultiWriter(w, v), r); err != nil {
			return false, err
		}
		if !v.Verified() {
			return false, fmt.Errorf("%s in layer %s: %w", f.Path, f.Layer, ErrCorrupt)
		}
		return false, nil
	})
	if err == nil && !found {
		err = fmt.Errorf("%s in layer %s: %w", f.Path, f.Layer, ErrNotFound)
	}
	return err
}

// walk calls fn for each entry of a layer until fn returns false. A layer whose
// bytes do not match its digest gives an error.
func (c *Catalog) walk(ctx context.Context, project string, layer digest.Digest, fn func(*tar.Header, io.Reader) (bool, error)) error {
	repo, err := Repository(project)
	if err != nil {
		return err
	}
	rc, _, err := c.Registry.OpenBlob(repo, layer)
	if errors.Is(err, registry.ErrNotFound) {
		return fmt.Errorf("layer %s: %w", layer, ErrNotFound)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	gz, err := gzip.NewReader(rc)
	if err != nil {
		return fmt.Errorf("layer %s: %w", layer, err)
	}
	tr := tar.NewReader(gz)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			_, err = io.Copy(io.Discard, rc) // reach the end, so the digest is checked
			return err
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", layer, err)
		}
		more, err := fn(hdr, tr)
		if err != nil || !more {
			return err
		}
	}
}

// parseManifest decodes an image manifest.
func parseManifest(body []byte) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	return &m, nil
}
