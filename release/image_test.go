package release

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/registry"
	"github.com/drover-cd/drover/retention"
)

// pushDockerImage stores in repo, as a Docker engine pushes it, an image of one
// layer under tags, and returns its manifest's digest.
func pushDockerImage(t *testing.T, reg *registry.Registry, repo string, tags ...string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("not really a gzip, the registry does not look inside")
	for _, b := range [][]byte{config, layer} {
		err := reg.PushBlob(ctx, repo, digest.FromBytes(b), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     registry.MediaTypeDockerManifest,
		"config":        map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": digest.FromBytes(config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer), "digest": digest.FromBytes(layer)}},
	})
	var d digest.Digest
	for _, tag := range tags {
		var err error
		if d, err = reg.PushManifest(ctx, repo, tag, registry.MediaTypeDockerManifest, m); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// A built image is stored again as an OCI manifest carrying the run's annotations,
// over the same blobs, and its tags move to it; run retention then collects it like
// any artifact of the run.
func TestAnnotatedImagesBelongToTheirRun(t *testing.T) {
	ctx := context.Background()
	reg, err := registry.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := &Publisher{Registry: reg}
	pushed := pushDockerImage(t, reg, "shop/image", "7", "latest")
	ann := map[string]string{"dev.drover.project": "shop", "dev.drover.run": "7",
		"org.opencontainers.image.created": "2026-01-02T03:04:05Z"}

	ref, err := p.AnnotateImage(ctx, "shop/image@"+pushed.String(), []string{"7", "latest"}, ann)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"7", "latest"} {
		body, mt, d, err := reg.Manifest(ctx, "shop/image", tag)
		if err != nil {
			t.Fatal(err)
		}
		if ref != "shop/image@"+d.String() || mt != ocispec.MediaTypeImageManifest {
			t.Errorf("%s: %s %s, want the annotated %s", tag, mt, d, ref)
		}
		var m ocispec.Manifest
		json.Unmarshal(body, &m)
		if m.Annotations["dev.drover.run"] != "7" || m.Config.MediaType != ocispec.MediaTypeImageConfig ||
			len(m.Layers) != 1 || m.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip {
			t.Errorf("%s: %s", tag, body)
		}
	}
	// The engine's own manifest is still there by digest until garbage collection
	// finds it untagged.
	if _, _, _, err := reg.Manifest(ctx, "shop/image", pushed.String()); err != nil {
		t.Errorf("the pushed manifest: %v", err)
	}

	// Retention keeping the run keeps its tags, and collection takes the engine's
	// manifest, now untagged; keeping no run removes both tags and every blob.
	keep := retention.Policy{KeepRuns: 1}
	rep, err := reg.GC(ctx, registry.GCOptions{Prune: keep.Prune(time.Now()), Grace: time.Nanosecond})
	if err != nil || len(rep.TagsRemoved) != 0 || !slices.Equal(rep.ManifestsRemoved, []string{"shop/image@" + pushed.String()}) {
		t.Errorf("keeping one run: %+v (%v), want only the engine's manifest collected", rep, err)
	}
	none := retention.Policy{}
	rep, err = reg.GC(ctx, registry.GCOptions{Prune: none.Prune(time.Now()), Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"shop/image:7", "shop/image:latest"}; !slices.Equal(rep.TagsRemoved, want) || len(rep.ManifestsRemoved) != 1 || rep.ManifestsRemoved[0] != ref || rep.BlobsRemoved != 3 {
		t.Errorf("keeping none: %+v, want tags %v, %s and its config, layer and manifest blobs", rep, want, ref)
	}
}

// Manifests other than image manifests are left as they are.
func TestAnnotateLeavesIndexesAlone(t *testing.T) {
	out, err := ociImageManifest([]byte(`{"schemaVersion":2,"manifests":[]}`), ocispec.MediaTypeImageIndex, map[string]string{"a": "b"})
	if err != nil || out != nil {
		t.Errorf("index: %s, %v; want it left alone", out, err)
	}
	if _, err := ociImageManifest([]byte(`{"schemaVersion":2}`), registry.MediaTypeDockerManifest, nil); err == nil {
		t.Error("a manifest without config was converted")
	}
}
