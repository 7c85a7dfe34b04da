package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/drover-cd/drover/artifact"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/source"
)

// target is a release resolved for deploying: what it is, how it runs and where its
// files are.
type target struct {
	rel     *release.Release
	service *pipeline.Service
	name    string // the service's name
	dir     string // the unpacked release
	// declared is the replica count drover.yml gives (service.replicas; 0 for 1), kept
	// while an environment's or a person's count replaces service.Replicas.
	declared int
}

// resolve finds the release ref names in project ("" for the newest release), reads
// the service: section of the drover.yml it was built from and unpacks it.
func (m *Manager) resolve(ctx context.Context, project, ref string) (*target, error) {
	rel, err := m.lookup(ctx, project, ref)
	if err != nil {
		return nil, err
	}
	return m.prepare(ctx, project, rel)
}

// lookup finds the release ref names in project, "" for the newest release.
func (m *Manager) lookup(ctx context.Context, project, ref string) (*release.Release, error) {
	if ref == "" {
		rels, err := m.cfg.Releases.List(ctx, project)
		if err != nil {
			return nil, err
		}
		if len(rels) == 0 {
			return nil, fmt.Errorf("%s has no releases yet: a run that passes every gate publishes one: %w", project, ErrBadRequest)
		}
		ref = rels[0].Tag
	}
	rel, err := m.cfg.Releases.Get(ctx, project, ref)
	if errors.Is(err, release.ErrNotFound) {
		return nil, fmt.Errorf("%s:%s is not a published artifact (a release tag r12, a run number, a commit or a digest): %w", project, ref, ErrBadRequest)
	}
	if err != nil {
		return nil, err
	}
	return rel, nil
}

// prepare reads the service: section of the drover.yml rel was built from and unpacks
// rel.
func (m *Manager) prepare(ctx context.Context, project string, rel *release.Release) (*target, error) {
	data, err := source.ReadFileLimit(ctx, m.cfg.Repos(project), rel.Commit, "drover.yml", pipeline.MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("read drover.yml of %s at %s: %w", project, rel.Commit, err)
	}
	p, err := pipeline.Parse("drover.yml", data)
	if err != nil {
		return nil, fmt.Errorf("drover.yml of %s at %s: %w", project, rel.Commit, err)
	}
	if p.Service == nil {
		return nil, fmt.Errorf("%s:%s cannot be deployed: its drover.yml has no service: section saying how it runs: %w", project, rel.Tag, ErrBadRequest)
	}
	if p.Service.Command == "" && p.Service.Image == "" && rel.Image == "" {
		return nil, fmt.Errorf("%s:%s cannot be deployed: service.command is empty and it built no image: %w", project, rel.Tag, ErrBadRequest)
	}
	t := &target{rel: rel, service: p.Service, name: p.Service.Name, declared: p.Service.Replicas}
	if t.name == "" {
		t.name = project
	}
	if t.dir, err = m.unpack(ctx, rel); err != nil {
		return nil, err
	}
	return t, nil
}

// unpack extracts the release's layers once into Dir/releases/<digest>, verified, and
// returns that folder. A half-extracted folder is never used: extraction happens in a
// temporary folder renamed into place.
func (m *Manager) unpack(ctx context.Context, rel *release.Release) (string, error) {
	releases := m.cfg.ReleaseDir
	if releases == "" {
		releases = filepath.Join(m.cfg.Dir, "releases")
	}
	dir := filepath.Join(releases, rel.Digest.Encoded())
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	// releases/ is a passage (0711): instances reach their release by its digest, and
	// list nothing.
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unpack-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	repo, err := release.Repository(rel.Project)
	if err != nil {
		return "", err
	}
	for _, l := range rel.Layers {
		rc, _, err := m.cfg.Registry.OpenBlob(repo, l.Digest)
		if err != nil {
			return "", fmt.Errorf("release %s layer %s: %w", rel.Tag, l.Path, err)
		}
		err = artifact.Extract(ctx, rc, tmp)
		rc.Close()
		if err != nil {
			return "", fmt.Errorf("release %s layer %s: %w", rel.Tag, l.Path, err)
		}
	}
	// Readable by every instance user, writable by none: staging and production share
	// one unpacked digest (MkdirTemp made it 0700).
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			return dir, nil // another deploy unpacked it meanwhile
		}
		return "", err
	}
	return dir, nil
}
