// Package release turns a run's artifact into the project's releases in the
// built-in registry and reads them back: the run publishes one OCI artifact to
// the repository named after the project, tagged with the run number and, when
// the run passed every gate, with the immutable release tag r<run> and the
// commit. The releases API, the downloads and the web UI read from here.
package release

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/artifact"
	"github.com/drover-cd/drover/registry"
)

var releaseTagRE = regexp.MustCompile(`^r[0-9]+$`)

// IsReleaseTag reports whether tag is a release tag, r<run>. Release tags are
// immutable: once written they name one digest for good.
func IsReleaseTag(tag string) bool { return releaseTagRE.MatchString(tag) }

// Immutable is registry.Registry's Immutable for Drover: release tags, in any repository.
func Immutable(_, tag string) bool { return IsReleaseTag(tag) }

// Tag returns the release tag of run number n.
func Tag(n int) string { return "r" + strconv.Itoa(n) }

// Repository returns the registry repository of a project: its name in lower
// case. It fails for names the OCI distribution spec does not allow (for
// example ones with two separators in a row or ending in one).
func Repository(project string) (string, error) {
	repo := strings.ToLower(project)
	if !registry.ValidRepository(repo) {
		return "", fmt.Errorf("project name %q cannot name an OCI repository (lower-case letters and digits, separated by single '.', '_' or '-'): push the repository to a project named %q to publish releases", project, SuggestProjectName(project))
	}
	return repo, nil
}

// Publisher publishes runs' artifacts into a registry.
type Publisher struct {
	Registry *registry.Registry
}

// Run says which run an artifact comes from.
type Run struct {
	Project string
	Number  int
	Commit  string
	Passed  bool // every step and gate passed: the artifact becomes a release
}

// Publish copies the artifact manifest desc and the blobs it names from layout into
// the project's repository, tags it with the run number and, when the run passed,
// with its release tag and commit. The bytes are copied unchanged, so the digest in
// the registry is the digest the run computed.
func (p *Publisher) Publish(ctx context.Context, layout *artifact.Store, desc ocispec.Descriptor, run Run) error {
	repo, err := Repository(run.Project)
	if err != nil {
		return err
	}
	body, err := readAll(layout, desc)
	if err != nil {
		return fmt.Errorf("read the run's manifest: %w", err)
	}
	m, err := parseManifest(body)
	if err != nil {
		return err
	}
	for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		err := p.Registry.PushBlob(ctx, repo, b.Digest, func() (io.ReadCloser, error) { return layout.Blob(b.Digest) })
		if err != nil {
			return fmt.Errorf("publish blob %s: %w", b.Digest, err)
		}
	}
	tags := []string{strconv.Itoa(run.Number)}
	if run.Passed {
		tags = append(tags, Tag(run.Number))
		if run.Commit != "" {
			tags = append(tags, run.Commit)
		}
	}
	for _, t := range tags {
		if _, err := p.Registry.PushManifest(ctx, repo, t, desc.MediaType, body); err != nil {
			return fmt.Errorf("tag %s:%s: %w", repo, t, err)
		}
	}
	return nil
}

// Seed copies into layout the layers, published by an earlier run of project, that a
// re-run keeps, so the new run's manifest can name them.
func (p *Publisher) Seed(ctx context.Context, layout *artifact.Store, project string, layers []ocispec.Descriptor) error {
	if len(layers) == 0 {
		return nil // nothing kept: a first run, or a project whose name names no repository
	}
	repo, err := Repository(project)
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, _, err := p.Registry.OpenBlob(repo, l.Digest)
		if err != nil {
			return fmt.Errorf("kept layer %s: %w", l.Digest, err)
		}
		err = layout.Put(rc, l.Digest)
		rc.Close()
		if err != nil {
			return fmt.Errorf("kept layer %s: %w", l.Digest, err)
		}
	}
	return nil
}

// readAll reads a small blob (a manifest) from layout, verified.
func readAll(layout *artifact.Store, desc ocispec.Descriptor) ([]byte, error) {
	rc, err := layout.Blob(desc.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 4<<20))
}
