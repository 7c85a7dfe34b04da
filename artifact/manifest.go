package artifact

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/drover-cd/drover/atomicfile"
	"maps"
	"os"
	"path/filepath"

	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PutManifest writes an OCI image manifest (schemaVersion 2, mediaType image
// manifest, artifactType ArtifactType, config = ocispec.DescriptorEmptyJSON
// whose "{}" blob is stored too, the given layers in the given order and the
// given annotations) as canonical JSON, stores it and returns its descriptor
// (mediaType, digest, size and artifactType set). Equal inputs give equal
// bytes and so equal digests. Every layer blob must already be in the store
// with the size its descriptor gives.
// With no layers, the manifest lists the empty descriptor as its only layer,
// as the image spec recommends for artifacts.
func (s *Store) PutManifest(layers []ocispec.Descriptor, annotations map[string]string) (ocispec.Descriptor, error) {
	for i, l := range layers {
		if err := s.hasBlob(l.Digest, l.Size); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("manifest layer %d: %w", i, err)
		}
	}
	empty := ocispec.DescriptorEmptyJSON
	if _, err := s.putBytes(empty.Data); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("store empty config: %w", err)
	}
	if len(layers) == 0 {
		layers = []ocispec.Descriptor{empty}
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       empty,
		Layers:       layers,
		Annotations:  annotations,
	}
	data, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("encode manifest: %w", err)
	}
	d, err := s.putBytes(data)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("store manifest: %w", err)
	}
	return ocispec.Descriptor{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Digest:       d,
		Size:         int64(len(data)),
	}, nil
}

// Tag records desc in index.json with the annotation
// "org.opencontainers.image.ref.name" = ref, replacing any previous entry with
// that ref (in place, so the order of other entries is kept). The blob desc
// points to must be in the store with the size desc gives. index.json is rewritten atomically (temp
// file, fsync, rename) under a lock, so concurrent Tag calls do not lose
// updates.
func (s *Store) Tag(ref string, desc ocispec.Descriptor) error {
	if ref == "" {
		return errors.New("tag: empty ref")
	}
	if err := s.hasBlob(desc.Digest, desc.Size); err != nil {
		return fmt.Errorf("tag %q: %w", ref, err)
	}
	desc.Annotations = maps.Clone(desc.Annotations)
	if desc.Annotations == nil {
		desc.Annotations = map[string]string{}
	}
	desc.Annotations[ocispec.AnnotationRefName] = ref

	unlock, err := s.lockIndex()
	if err != nil {
		return fmt.Errorf("tag %q: lock index: %w", ref, err)
	}
	defer unlock()

	index, err := s.readIndex()
	if err != nil {
		return fmt.Errorf("tag %q: %w", ref, err)
	}
	kept := index.Manifests[:0]
	replaced := false
	for _, m := range index.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] != ref {
			kept = append(kept, m)
		} else if !replaced {
			kept, replaced = append(kept, desc), true
		}
	}
	if !replaced {
		kept = append(kept, desc)
	}
	index.Manifests = kept
	if err := s.writeIndex(index); err != nil {
		return fmt.Errorf("tag %q: %w", ref, err)
	}
	return nil
}

// lockIndex takes the in-process mutex and the cross-process directory lock.
func (s *Store) lockIndex() (func(), error) {
	s.mu.Lock()
	unlock, err := lockDir(s.dir)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return func() { unlock(); s.mu.Unlock() }, nil
}

// readIndex reads and parses index.json.
func (s *Store) readIndex() (ocispec.Index, error) {
	var index ocispec.Index
	data, err := os.ReadFile(filepath.Join(s.dir, ocispec.ImageIndexFile))
	if err != nil {
		return index, fmt.Errorf("read index: %w", err)
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return index, fmt.Errorf("parse %s: %w", ocispec.ImageIndexFile, err)
	}
	if index.Manifests == nil {
		index.Manifests = []ocispec.Descriptor{}
	}
	return index, nil
}

// writeIndex atomically replaces index.json.
func (s *Store) writeIndex(index ocispec.Index) error {
	data, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("encode index: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(s.dir, ocispec.ImageIndexFile), data, 0o644); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}
