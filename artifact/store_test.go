package artifact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// assertNoTemps fails if the layout holds anything but its own files and blobs.
func assertNoTemps(t testing.TB, s *Store) {
	t.Helper()
	err := filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temp file left behind: %s", p)
		}
		return err
	})
	must(t, err)
}

func TestOpenLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "store")
	s, err := Open(dir)
	must(t, err)
	if s.Dir() != dir {
		t.Errorf("Dir() = %q", s.Dir())
	}
	layout, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	must(t, err)
	if string(layout) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", layout)
	}
	index, err := os.ReadFile(filepath.Join(dir, "index.json"))
	must(t, err)
	if !strings.Contains(string(index), `"manifests":[]`) || !strings.Contains(string(index), `"schemaVersion":2`) {
		t.Errorf("index.json = %s", index)
	}
	if _, err := Open(dir); err != nil { // reopening keeps the layout
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"9"}`), 0o644))
	if _, err := Open(dir); err == nil {
		t.Error("Open accepted an unknown layout version")
	}
}

func TestPutManifest(t *testing.T) {
	s := newStore(t)
	root := t.TempDir()
	writeTree(t, root, sampleTree, styleA)
	layers := []ocispec.Descriptor{pack(t, s, root, "dist/"), pack(t, s, root, "bin/tool")}
	ann := map[string]string{"org.opencontainers.image.revision": "abc123", "drover.step": "build"}

	desc, err := s.PutManifest(layers, ann)
	must(t, err)
	if desc.MediaType != ocispec.MediaTypeImageManifest || desc.ArtifactType != ArtifactType {
		t.Errorf("descriptor %+v", desc)
	}
	rc, err := s.Blob(desc.Digest)
	must(t, err)
	raw, err := io.ReadAll(rc)
	must(t, err)
	rc.Close()
	if digest.FromBytes(raw) != desc.Digest || int64(len(raw)) != desc.Size {
		t.Errorf("descriptor does not match stored bytes")
	}
	var m ocispec.Manifest
	must(t, json.Unmarshal(raw, &m))
	if m.SchemaVersion != 2 || m.MediaType != ocispec.MediaTypeImageManifest || m.ArtifactType != ArtifactType {
		t.Errorf("manifest header %+v", m)
	}
	if m.Config.Digest != ocispec.DescriptorEmptyJSON.Digest || m.Config.MediaType != ocispec.MediaTypeEmptyJSON {
		t.Errorf("config %+v", m.Config)
	}
	if err := s.hasBlob(m.Config.Digest, 2); err != nil {
		t.Errorf("empty config blob not stored: %v", err)
	}
	if len(m.Layers) != 2 || m.Layers[0].Digest != layers[0].Digest || m.Layers[1].Digest != layers[1].Digest ||
		m.Layers[0].Annotations[ocispec.AnnotationTitle] != "dist" {
		t.Errorf("layers %+v", m.Layers)
	}
	if m.Annotations["drover.step"] != "build" {
		t.Errorf("annotations %v", m.Annotations)
	}
	again, err := s.PutManifest(layers, map[string]string{"drover.step": "build", "org.opencontainers.image.revision": "abc123"})
	must(t, err)
	if again.Digest != desc.Digest {
		t.Errorf("same inputs gave %s and %s", desc.Digest, again.Digest)
	}
	missing := ocispec.Descriptor{MediaType: LayerMediaType, Digest: digest.FromString("nope"), Size: 4}
	if _, err := s.PutManifest([]ocispec.Descriptor{missing}, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("manifest with a missing layer: %v", err)
	}
}

func TestBlobCorruption(t *testing.T) {
	s := newStore(t)
	root := t.TempDir()
	writeTree(t, root, sampleTree, styleA)
	d := pack(t, s, root, "dist")
	p := s.blobPath(d.Digest)
	raw, err := os.ReadFile(p)
	must(t, err)
	raw[len(raw)/2] ^= 0x01
	must(t, os.WriteFile(p, raw, 0o644))

	rc, err := s.Blob(d.Digest)
	must(t, err)
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("reading a corrupted blob: %v, want ErrDigestMismatch", err)
	}
	if _, err := rc.Read(make([]byte, 1)); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("error not sticky: %v", err)
	}
	if err := s.Unpack(context.Background(), d, t.TempDir()); err == nil {
		t.Error("Unpack of a corrupted blob succeeded")
	}
	// A well-formed layer under the wrong name: only the digest check can tell.
	other := pack(t, s, root, "bin")
	good, err := os.ReadFile(s.blobPath(other.Digest))
	must(t, err)
	must(t, os.WriteFile(p, good, 0o644))
	if err := s.Unpack(context.Background(), d, t.TempDir()); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("Unpack of a swapped blob: %v, want ErrDigestMismatch", err)
	}
	if _, err := s.Blob(digest.FromString("absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing blob: %v", err)
	}
	if _, err := s.Blob("sha256:../../etc/passwd"); err == nil {
		t.Error("invalid digest accepted")
	}
}

func TestConcurrentPack(t *testing.T) {
	s := newStore(t)
	root := t.TempDir()
	writeTree(t, root, sampleTree, styleA)
	var wg sync.WaitGroup
	digests := make([]digest.Digest, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Go(func() {
			d, err := s.Pack(context.Background(), root, "dist/")
			digests[i], errs[i] = d.Digest, err
		})
	}
	wg.Wait()
	for i := range 8 {
		if errs[i] != nil || digests[i] != digests[0] {
			t.Errorf("goroutine %d: %s, %v", i, digests[i], errs[i])
		}
	}
	blobs, err := os.ReadDir(filepath.Join(s.Dir(), "blobs", "sha256"))
	must(t, err)
	if len(blobs) != 1 || blobs[0].Name() != digests[0].Encoded() {
		t.Errorf("blob dir holds %v", blobs)
	}
	assertNoTemps(t, s)
}

func TestTag(t *testing.T) {
	s := newStore(t)
	root := t.TempDir()
	writeTree(t, root, sampleTree, styleA)
	l1, l2 := pack(t, s, root, "dist"), pack(t, s, root, "bin")
	m1, err := s.PutManifest([]ocispec.Descriptor{l1}, nil)
	must(t, err)
	m2, err := s.PutManifest([]ocispec.Descriptor{l2}, nil)
	must(t, err)

	must(t, s.Tag("main", m1))
	must(t, s.Tag("v1", m1))
	must(t, s.Tag("main", m2))
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() { must(t, s.Tag(fmt.Sprintf("run-%02d", i), m2)) })
	}
	wg.Wait()
	if err := s.Tag("bad", ocispec.Descriptor{Digest: digest.FromString("absent")}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("tagging a missing blob: %v", err)
	}
	wrong := m1
	wrong.Size++
	if err := s.Tag("bad", wrong); err == nil {
		t.Error("tagging with a wrong size succeeded")
	}

	index, err := s.readIndex()
	must(t, err)
	var refs []string
	for _, m := range index.Manifests {
		ref := m.Annotations[ocispec.AnnotationRefName]
		refs = append(refs, ref)
		want := m2.Digest
		if ref == "v1" {
			want = m1.Digest
		}
		if m.Digest != want || m.ArtifactType != ArtifactType {
			t.Errorf("%s -> %+v", ref, m)
		}
	}
	if len(refs) != 18 || refs[0] != "main" || refs[1] != "v1" || !slices.Contains(refs, "run-15") {
		t.Errorf("refs %v", refs)
	}
	if m2.Annotations != nil {
		t.Error("Tag modified the caller's descriptor")
	}
	assertNoTemps(t, s)
}
