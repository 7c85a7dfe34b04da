package release

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/registry"
)

// Docker image media types and their OCI counterparts. A Docker engine pushes
// what it builds as a Docker schema 2 manifest; the blobs are the same bytes
// either way, only the names of their types differ.
var ociMediaType = map[string]string{
	"application/vnd.docker.container.image.v1+json":            ocispec.MediaTypeImageConfig,
	"application/vnd.docker.image.rootfs.diff.tar.gzip":         ocispec.MediaTypeImageLayerGzip,
	"application/vnd.docker.image.rootfs.diff.tar":              ocispec.MediaTypeImageLayer,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	"application/vnd.docker.image.rootfs.foreign.diff.tar":      "application/vnd.oci.image.layer.nondistributable.v1.tar",
}

// AnnotateImage gives the image a build step pushed, ref ("REPO@DIGEST" in the
// registry), the run's annotations, as the run's artifact has them: it stores the
// image again as an OCI image manifest over the same config and layers, with ann
// added to the manifest's annotations, moves tags to it, and returns its reference.
// The image's content, and so what a container of it runs, is unchanged. An image
// that is neither a Docker schema 2 nor an OCI image manifest (an index of several
// platforms, which the engine's classic builder never pushes) is returned as it is,
// without annotations, so retention leaves it alone.
func (p *Publisher) AnnotateImage(ctx context.Context, ref string, tags []string, ann map[string]string) (string, error) {
	repo, dgst, ok := strings.Cut(ref, "@")
	if !ok {
		return "", fmt.Errorf("image %q: want REPO@DIGEST", ref)
	}
	body, mediaType, _, err := p.Registry.Manifest(ctx, repo, dgst)
	if err != nil {
		return "", fmt.Errorf("read the image's manifest: %w", err)
	}
	oci, err := ociImageManifest(body, mediaType, ann)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	if oci == nil {
		return ref, nil
	}
	// Stored under its first tag at once, so garbage collection never sees it untagged.
	refs := tags
	if len(refs) == 0 {
		refs = []string{""} // by digest only
	}
	var d digest.Digest
	for _, t := range refs {
		if d, err = p.Registry.PushManifest(ctx, repo, t, ocispec.MediaTypeImageManifest, oci); err != nil {
			return "", fmt.Errorf("tag %s:%s: %w", repo, t, err)
		}
	}
	return repo + "@" + d.String(), nil
}

// ociImageManifest rewrites an image manifest of the given media type as an OCI
// image manifest with ann over its annotations; nil for a manifest that is not an
// image manifest.
func ociImageManifest(body []byte, mediaType string, ann map[string]string) ([]byte, error) {
	if mediaType != registry.MediaTypeDockerManifest && mediaType != ocispec.MediaTypeImageManifest {
		return nil, nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("parse its manifest: %w", err)
	}
	if m.Config.Digest.Validate() != nil {
		return nil, fmt.Errorf("its manifest names no config")
	}
	m.MediaType = ocispec.MediaTypeImageManifest
	m.Config.MediaType = oci(m.Config.MediaType)
	for i := range m.Layers {
		m.Layers[i].MediaType = oci(m.Layers[i].MediaType)
	}
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	maps.Copy(m.Annotations, ann)
	return json.Marshal(m)
}

// oci is the OCI media type of a Docker one; others stay as they are.
func oci(mediaType string) string {
	if t, ok := ociMediaType[mediaType]; ok {
		return t
	}
	return mediaType
}
