package release

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"
	"unicode/utf8"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/registry"
)

// manifestSeeds are manifests as the registry holds them: a run's artifact, a Docker
// image, an index, and some that are not manifests at all.
var manifestSeeds = []string{
	`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.drover.run.v1",` +
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","size":120,` +
		`"annotations":{"org.opencontainers.image.title":"dist"}}],` +
		`"annotations":{"dev.drover.run":"12","dev.drover.branch":"main","org.opencontainers.image.revision":"59b20b8d",` +
		`"org.opencontainers.image.created":"2024-05-01T10:00:00Z","dev.drover.tests.passed":"3","dev.drover.coverage":"81.5"}}`,
	`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:fcbe6c2e8a2bd1b5ca4ff6e7b2bd1a1ae1e37bda2a4ab2e1a1c4e6f5e1a9bd7c"},` +
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":3208942,"digest":"sha256:9b7a1e1b0f1a46a2c9a6b5a4e6c3b8a2d9f1e0c7b6a5d4c3b2a1f0e9d8c7b6a5"},` +
		`{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":1,"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","urls":["https://x"]}]}`,
	`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`,
	`{"config":{"digest":"sha256:"},"layers":null,"annotations":{}}`,
	`{"config":{"digest":"not a digest"}}`,
	`{"subject":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"config":{"digest":"sha512:ab"}}`,
	`[]`, `null`, `{"annotations":{"a":1}}`, "{\"mediaType\":\"\xff\"}",
}

// FuzzParseManifest: parseManifest never panics, and what it accepts, written back as
// JSON, parses to the same manifest (compared as JSON: empty and missing fields are the
// same to it).
func FuzzParseManifest(f *testing.F) {
	for _, s := range manifestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parseManifest(body)
		if err != nil {
			if m != nil {
				t.Fatalf("a manifest and an error: %v", err)
			}
			return
		}
		once, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseManifest(once)
		if err != nil {
			t.Fatalf("written back as %s: %v", once, err)
		}
		if twice, err := json.Marshal(back); err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("written back as %s, it reads as %s", once, twice)
		}
	})
}

// FuzzOCIImageManifest: ociImageManifest never panics; leaves what is not an image
// manifest alone; makes of an image manifest an OCI one with the same config and layers,
// OCI media types and the run's annotations over its own; and is a fixed point: the
// result, annotated again, is the same bytes.
func FuzzOCIImageManifest(f *testing.F) {
	for _, s := range manifestSeeds {
		f.Add([]byte(s), registry.MediaTypeDockerManifest, "dev.drover.run", "12")
		f.Add([]byte(s), ocispec.MediaTypeImageManifest, "org.opencontainers.image.revision", "59b20b8d")
	}
	f.Add([]byte(manifestSeeds[2]), ocispec.MediaTypeImageIndex, "a", "b")
	f.Fuzz(func(t *testing.T, body []byte, mediaType, key, value string) {
		if !utf8.ValidString(key) || !utf8.ValidString(value) {
			return // JSON would write them otherwise; Drover's annotations are text
		}
		ann := map[string]string{key: value}
		out, err := ociImageManifest(body, mediaType, ann)
		if mediaType != registry.MediaTypeDockerManifest && mediaType != ocispec.MediaTypeImageManifest {
			if out != nil || err != nil {
				t.Fatalf("%s: rewritten: %s, %v", mediaType, out, err)
			}
			return
		}
		if err != nil {
			return
		}
		var in, got ocispec.Manifest
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("accepted a manifest that does not parse: %v", err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("wrote a manifest that does not parse: %v\n%s", err, out)
		}
		if got.MediaType != ocispec.MediaTypeImageManifest || got.Config.Digest != in.Config.Digest ||
			got.Config.Digest.Validate() != nil || got.Config.MediaType != oci(in.Config.MediaType) ||
			len(got.Layers) != len(in.Layers) || got.Annotations[key] != value {
			t.Fatalf("from %s\nwrote %s", body, out)
		}
		for i, l := range got.Layers {
			if l.Digest != in.Layers[i].Digest || l.Size != in.Layers[i].Size || l.MediaType != oci(in.Layers[i].MediaType) {
				t.Fatalf("layer %d: from %+v\nwrote %+v", i, in.Layers[i], l)
			}
			if _, docker := ociMediaType[l.MediaType]; docker {
				t.Fatalf("layer %d keeps Docker's media type %s", i, l.MediaType)
			}
		}
		for k, v := range in.Annotations {
			if k != key && got.Annotations[k] != v {
				t.Fatalf("annotation %s: %q became %q", k, v, got.Annotations[k])
			}
		}
		again, err := ociImageManifest(out, ocispec.MediaTypeImageManifest, maps.Clone(ann))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("annotated again:\n%s\n%v\nwas\n%s", again, err, out)
		}
	})
}
