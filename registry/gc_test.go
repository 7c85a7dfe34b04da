package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ageAll sets the modification time of every file under dir to age ago.
func ageAll(t *testing.T, dir string, age time.Duration) {
	t.Helper()
	when := time.Now().Add(-age)
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		return os.Chtimes(path, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// age sets the modification time of the files at paths to age ago.
func age(t *testing.T, age time.Duration, paths ...string) {
	t.Helper()
	when := time.Now().Add(-age)
	for _, p := range paths {
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *testServer) gc(t *testing.T, opt GCOptions) GCReport {
	t.Helper()
	rep, err := s.reg.GC(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// future is a clock two days ahead: with the default grace period, every
// modification time is older than the cutoff, so only the collector's marks
// protect what pushes do while it runs.
func future() time.Time { return time.Now().Add(48 * time.Hour) }

// imageOf returns an image manifest referencing cfg and layers (already pushed).
func imageOf(cfg []byte, ann map[string]string, layers ...[]byte) []byte {
	m := ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   manifestType,
		Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers:      []ocispec.Descriptor{},
		Annotations: ann,
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(l), Size: int64(len(l))})
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// pushImage pushes cfg and layers to name, then a manifest of them under ref
// (a tag, or "" for by digest), and returns the manifest.
func (s *testServer) pushImage(t *testing.T, name, ref string, cfg []byte, layers ...[]byte) []byte {
	t.Helper()
	for _, b := range append([][]byte{cfg}, layers...) {
		s.pushBlob(t, name, b)
	}
	m := imageOf(cfg, nil, layers...)
	if ref == "" {
		ref = digest.FromBytes(m).String()
	}
	wantStatus(t, s.putManifest(t, name, ref, manifestType, m), http.StatusCreated)
	return m
}

// wantPullable checks that ref in name resolves to manifest m and that every
// blob m references reads back.
func (s *testServer) wantPullable(t *testing.T, name, ref string, m []byte) {
	t.Helper()
	if err := s.pullable(name, ref, m); err != nil {
		t.Fatal(err)
	}
}

// pullable is wantPullable for any goroutine.
func (s *testServer) pullable(name, ref string, m []byte) error {
	r, err := s.try("GET", "/v2/"+name+"/manifests/"+ref, nil)
	if err != nil {
		return err
	}
	if r.status != http.StatusOK || !bytes.Equal(r.body, m) {
		return fmt.Errorf("GET %s:%s: status %d, body %s", name, ref, r.status, r.body)
	}
	var mf manifest
	if err := json.Unmarshal(m, &mf); err != nil {
		return err
	}
	for _, d := range mf.blobRefs() {
		r, err := s.try("GET", "/v2/"+name+"/blobs/"+d.String(), nil)
		if err != nil {
			return err
		}
		if r.status != http.StatusOK || d.Algorithm().FromBytes(r.body) != d {
			return fmt.Errorf("GET blob %s of %s:%s: status %d, body %q", d, name, ref, r.status, r.body)
		}
	}
	for _, c := range mf.Manifests {
		r, err := s.try("GET", "/v2/"+name+"/manifests/"+c.Digest.String(), nil)
		if err != nil {
			return err
		}
		if err := s.pullable(name, c.Digest.String(), r.body); err != nil {
			return err
		}
	}
	return nil
}

// try is do for any goroutine.
func (s *testServer) try(method, path string, body []byte, hdr ...string) (result, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return result{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b}, err
}

func gone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still exists (%v)", path, err)
	}
}

func present(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}

// garbage fills a registry with things to keep and things to collect, all two
// hours old, and returns the report a collection with the default grace
// period must produce.
func garbage(t *testing.T, s *testServer) GCReport {
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	s.pushImage(t, "app", "v1", cfg, []byte("layer one"))
	untagged := s.pushImage(t, "app", "", cfg, []byte("layer two"))
	// "layer two" stays: a tagged image in another repository uses it.
	s.pushImage(t, "other", "v1", []byte(`{"os":"other"}`), []byte("layer two"))
	s.pushBlob(t, "app", []byte("orphan layer"))
	unlinked := s.pushBlob(t, "app", []byte("deleted layer"))
	wantStatus(t, s.do(t, "DELETE", "/v2/app/blobs/"+unlinked.String(), nil), http.StatusAccepted)
	ageAll(t, s.dir, 2*time.Hour)
	s.pushBlob(t, "app", []byte("young layer"))
	return GCReport{
		TagsRemoved:       []string{},
		ManifestsRemoved:  []string{"app@" + digest.FromBytes(untagged).String()},
		LayerLinksRemoved: 2, // layer two and the orphan in app
		BlobsRemoved:      3, // the untagged manifest, the orphan and the deleted layer
		BytesFreed:        int64(len(untagged) + len("orphan layer") + len("deleted layer")),
	}
}

func TestGCRemovesUnreferencedAndKeepsReferenced(t *testing.T) {
	s := newServer(t)
	want := garbage(t, s)
	rep := s.gc(t, GCOptions{})
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("report\n%+v, want\n%+v", rep, want)
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	s.wantPullable(t, "app", "v1", imageOf(cfg, nil, []byte("layer one")))
	s.wantPullable(t, "other", "v1", imageOf([]byte(`{"os":"other"}`), nil, []byte("layer two")))
	wantStatus(t, s.do(t, "GET", "/v2/app/blobs/"+digest.FromString("young layer").String(), nil), http.StatusOK)
	for _, b := range []string{"orphan layer", "layer two"} {
		wantError(t, s.do(t, "GET", "/v2/app/blobs/"+digest.FromString(b).String(), nil), http.StatusNotFound, CodeBlobUnknown)
	}
	untagged := digest.FromBytes(imageOf(cfg, nil, []byte("layer two")))
	wantError(t, s.do(t, "GET", "/v2/app/manifests/"+untagged.String(), nil), http.StatusNotFound, CodeManifestUnknown)
	for _, b := range []string{"orphan layer", "deleted layer"} {
		gone(t, s.reg.blobPath(digest.FromString(b)))
	}
	gone(t, s.reg.blobPath(untagged))
	present(t, s.reg.blobPath(digest.FromString("layer two")))

	// Nothing is left to collect.
	if rep := s.gc(t, GCOptions{}); rep.BlobsRemoved+rep.LayerLinksRemoved+len(rep.ManifestsRemoved) != 0 {
		t.Fatalf("second collection %+v", rep)
	}
}

// snapshot lists every file under dir with its size and modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		out[path] = fmt.Sprint(fi.IsDir(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGCDryRunChangesNothing(t *testing.T) {
	s := newServer(t)
	want := garbage(t, s)
	loc := s.startUpload(t, "app")
	ageAll(t, filepath.Join(s.dir, "uploads"), 25*time.Hour)
	want.UploadsRemoved = 1
	prune := func(repo string, tags []TagInfo) []string {
		if repo == "other" {
			return []string{"v1"}
		}
		return nil
	}
	// Pruning other:v1 frees its config and manifest too; layer two then
	// is unreferenced everywhere.
	otherImage := imageOf([]byte(`{"os":"other"}`), nil, []byte("layer two"))
	want.TagsRemoved = []string{"other:v1"}
	want.ManifestsRemoved = append(want.ManifestsRemoved, "other@"+digest.FromBytes(otherImage).String())
	want.LayerLinksRemoved += 2
	want.BlobsRemoved += 3
	want.BytesFreed += int64(len(otherImage) + len(`{"os":"other"}`) + len("layer two"))

	before := snapshot(t, s.dir)
	dry := s.gc(t, GCOptions{DryRun: true, Prune: prune})
	if after := snapshot(t, s.dir); !reflect.DeepEqual(before, after) {
		t.Fatalf("dry run changed the store:\nbefore %v\nafter  %v", before, after)
	}
	want.DryRun = true
	if !reflect.DeepEqual(dry, want) {
		t.Fatalf("dry run report\n%+v, want\n%+v", dry, want)
	}
	wantStatus(t, s.do(t, "GET", loc, nil), http.StatusNoContent)

	// The real collection does what the dry run said.
	rep := s.gc(t, GCOptions{Prune: prune})
	want.DryRun = false
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("report\n%+v, want\n%+v", rep, want)
	}
	wantError(t, s.do(t, "GET", loc, nil), http.StatusNotFound, CodeBlobUploadUnknown)
}

func TestGCKeepsIndexChildrenAndReferrers(t *testing.T) {
	s := newServer(t)
	amd := s.pushImage(t, "app", "", []byte(`{"architecture":"amd64"}`), []byte("amd64 layer"))
	arm := s.pushImage(t, "app", "", []byte(`{"architecture":"arm64"}`), []byte("arm64 layer"))
	desc := func(m []byte, mt string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(m), Size: int64(len(m))}
	}
	index := mustJSON(t, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{desc(amd, manifestType), desc(arm, manifestType)},
	})
	wantStatus(t, s.putManifest(t, "app", "multi", ocispec.MediaTypeImageIndex, index), http.StatusCreated)

	// A signature of the index, an attestation of a child (referrers of
	// referrers of kept manifests are kept too) and a signature of an
	// untagged image that is itself garbage.
	empty := s.pushBlob(t, "app", []byte("{}"))
	referrer := func(subject ocispec.Descriptor, kind string) []byte {
		b := s.pushBlob(t, "app", []byte(kind+" of "+subject.Digest.String()))
		m := mustJSON(t, ocispec.Manifest{
			Versioned:    specs.Versioned{SchemaVersion: 2},
			MediaType:    manifestType,
			ArtifactType: "application/vnd.example." + kind,
			Config:       ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: empty, Size: 2},
			Layers:       []ocispec.Descriptor{{MediaType: "application/octet-stream", Digest: b, Size: int64(len(kind + " of " + subject.Digest.String()))}},
			Subject:      &subject,
		})
		wantStatus(t, s.putManifest(t, "app", digest.FromBytes(m).String(), manifestType, m), http.StatusCreated)
		return m
	}
	sig := referrer(desc(index, ocispec.MediaTypeImageIndex), "signature")
	att := referrer(desc(amd, manifestType), "attestation")
	attSig := referrer(desc(att, manifestType), "signature")
	old := s.pushImage(t, "app", "", []byte(`{"old":true}`), []byte("old layer"))
	oldSig := referrer(desc(old, manifestType), "signature")
	ageAll(t, s.dir, 2*time.Hour)

	rep := s.gc(t, GCOptions{})
	wantGone := []string{"app@" + digest.FromBytes(old).String(), "app@" + digest.FromBytes(oldSig).String()}
	slices.Sort(wantGone)
	if !reflect.DeepEqual(rep.ManifestsRemoved, wantGone) {
		t.Fatalf("removed %v, want %v", rep.ManifestsRemoved, wantGone)
	}
	s.wantPullable(t, "app", "multi", index)
	for _, m := range [][]byte{amd, arm, sig, att, attSig} {
		s.wantPullable(t, "app", digest.FromBytes(m).String(), m)
	}
	// old, its config, its layer, its signature and the signature's layer.
	if rep.BlobsRemoved != 5 {
		t.Fatalf("blobs removed %d, want 5 (%+v)", rep.BlobsRemoved, rep)
	}
}

func TestGCRemovesStaleUploads(t *testing.T) {
	s := newServer(t)
	stale := s.startUpload(t, "app")
	wantStatus(t, s.do(t, "PATCH", stale, []byte("abandoned")), http.StatusAccepted)
	ageAll(t, filepath.Join(s.dir, "uploads"), 25*time.Hour)
	tmp := filepath.Join(s.dir, "uploads", ".blob-123")
	if err := os.WriteFile(tmp, []byte("left by a crash"), 0o644); err != nil {
		t.Fatal(err)
	}
	age(t, 25*time.Hour, tmp)
	fresh := s.startUpload(t, "app")
	wantStatus(t, s.do(t, "PATCH", fresh, []byte("in progress")), http.StatusAccepted)

	rep := s.gc(t, GCOptions{})
	if rep.UploadsRemoved != 1 {
		t.Fatalf("uploads removed %d, want 1", rep.UploadsRemoved)
	}
	wantError(t, s.do(t, "GET", stale, nil), http.StatusNotFound, CodeBlobUploadUnknown)
	gone(t, tmp)
	r := s.do(t, "GET", fresh, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-10")

	// A shorter TTL takes the fresh one too.
	age(t, 2*time.Hour, filepath.Join(s.dir, "uploads", strings.TrimPrefix(fresh, "/v2/app/blobs/uploads/")+".data"),
		filepath.Join(s.dir, "uploads", strings.TrimPrefix(fresh, "/v2/app/blobs/uploads/")+".json"))
	if rep := s.gc(t, GCOptions{UploadTTL: time.Hour}); rep.UploadsRemoved != 1 {
		t.Fatalf("uploads removed %d, want 1", rep.UploadsRemoved)
	}
	assertNoUploads(t, s)
}

// TestGCDuringPushInFlight follows docker: it uploads a new layer in chunks,
// checks with HEAD that an old layer is present and skips it, and pushes the
// manifest last. A collection in the middle must not break the push. Without
// the HEAD, the old unreferenced layer is collected, which shows that the
// HEAD is what protects it.
func TestGCDuringPushInFlight(t *testing.T) {
	for _, head := range []bool{true, false} {
		t.Run(fmt.Sprintf("head=%v", head), func(t *testing.T) {
			s := newServer(t)
			oldLayer := []byte("old base layer")
			old := s.pushBlob(t, "app", oldLayer)
			ageAll(t, s.dir, 2*time.Hour)

			loc := s.startUpload(t, "app")
			wantStatus(t, s.do(t, "PATCH", loc, []byte("new "), "Content-Range", "0-3"), http.StatusAccepted)
			if head {
				wantStatus(t, s.do(t, "HEAD", "/v2/app/blobs/"+old.String(), nil), http.StatusOK)
			}
			rep := s.gc(t, GCOptions{})
			if rep.UploadsRemoved != 0 {
				t.Fatalf("in-flight upload removed: %+v", rep)
			}
			if !head {
				if rep.LayerLinksRemoved != 1 || rep.BlobsRemoved != 1 || rep.BytesFreed != int64(len(oldLayer)) {
					t.Fatalf("report %+v: want the old layer collected", rep)
				}
				wantStatus(t, s.do(t, "HEAD", "/v2/app/blobs/"+old.String(), nil), http.StatusNotFound)
				return
			}
			if rep.LayerLinksRemoved != 0 || rep.BlobsRemoved != 0 {
				t.Fatalf("report %+v: the old layer was collected after a HEAD", rep)
			}
			wantStatus(t, s.do(t, "PATCH", loc, []byte("layer"), "Content-Range", "4-8"), http.StatusAccepted)
			newLayer := []byte("new layer")
			wantStatus(t, s.do(t, "PUT", loc+"?digest="+digest.FromBytes(newLayer).String(), nil), http.StatusCreated)
			cfg := []byte(`{"os":"linux"}`)
			s.pushBlob(t, "app", cfg)
			m := imageOf(cfg, nil, newLayer, oldLayer)
			wantStatus(t, s.putManifest(t, "app", "v1", manifestType, m), http.StatusCreated)
			s.wantPullable(t, "app", "v1", m)

			// Once referenced, the old layer outlives its grace period.
			ageAll(t, s.dir, 2*time.Hour)
			rep = s.gc(t, GCOptions{})
			if rep.LayerLinksRemoved+rep.BlobsRemoved != 0 {
				t.Fatalf("report %+v", rep)
			}
			s.wantPullable(t, "app", "v1", m)
		})
	}
}

// TestGCMarksWhilePushing pushes while a collection runs, at the points where
// only its marks (not modification times: the clock is in the future) keep it
// from removing what the pushes rely on.
func TestGCMarksWhilePushing(t *testing.T) {
	cfg := []byte(`{"os":"linux"}`)
	t.Run("tag an untagged manifest", func(t *testing.T) {
		s := newServer(t)
		m := s.pushImage(t, "app", "", cfg, []byte("layer"))
		once := sync.OnceFunc(func() {
			wantStatus(t, s.putManifest(t, "app", "v1", manifestType, m), http.StatusCreated)
		})
		rep := s.gc(t, GCOptions{Now: future, hook: func(stage, repo string) {
			if stage == "scanned" && repo == "app" {
				once()
			}
		}})
		if len(rep.ManifestsRemoved)+rep.BlobsRemoved+rep.LayerLinksRemoved != 0 {
			t.Fatalf("report %+v", rep)
		}
		s.wantPullable(t, "app", "v1", m)
	})
	t.Run("tag an index of untagged manifests", func(t *testing.T) {
		s := newServer(t)
		child := s.pushImage(t, "app", "", cfg, []byte("layer"))
		index := mustJSON(t, ocispec.Index{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageIndex,
			Manifests: []ocispec.Descriptor{{MediaType: manifestType, Digest: digest.FromBytes(child), Size: int64(len(child))}},
		})
		once := sync.OnceFunc(func() {
			wantStatus(t, s.putManifest(t, "app", "v1", ocispec.MediaTypeImageIndex, index), http.StatusCreated)
		})
		s.gc(t, GCOptions{Now: future, hook: func(stage, repo string) {
			if stage == "scanned" {
				once()
			}
		}})
		s.wantPullable(t, "app", "v1", index)
	})
	t.Run("HEAD an unreferenced layer", func(t *testing.T) {
		s := newServer(t)
		d := s.pushBlob(t, "app", []byte("layer"))
		s.pushBlob(t, "app", cfg)
		var rep GCReport
		rep = s.gc(t, GCOptions{Now: future, hook: func(stage, repo string) {
			if stage == "scanned" {
				wantStatus(t, s.do(t, "HEAD", "/v2/app/blobs/"+d.String(), nil), http.StatusOK)
			}
		}})
		// The config was not asked for and goes; the layer stays.
		if rep.LayerLinksRemoved != 1 || rep.BlobsRemoved != 1 {
			t.Fatalf("report %+v", rep)
		}
		s.pushBlob(t, "app", cfg)
		m := imageOf(cfg, nil, []byte("layer"))
		wantStatus(t, s.putManifest(t, "app", "v1", manifestType, m), http.StatusCreated)
		s.wantPullable(t, "app", "v1", m)
	})
	t.Run("push an unlinked blob", func(t *testing.T) {
		s := newServer(t)
		d := s.pushBlob(t, "app", []byte("layer"))
		wantStatus(t, s.do(t, "DELETE", "/v2/app/blobs/"+d.String(), nil), http.StatusAccepted)
		rep := s.gc(t, GCOptions{Now: future, hook: func(stage, repo string) {
			if stage == "blobs" {
				s.pushBlob(t, "other", []byte("layer"))
			}
		}})
		if rep.BlobsRemoved != 0 {
			t.Fatalf("report %+v", rep)
		}
		wantStatus(t, s.do(t, "GET", "/v2/other/blobs/"+d.String(), nil), http.StatusOK)
	})
	t.Run("repository changing on every scan", func(t *testing.T) {
		s := newServer(t)
		s.pushImage(t, "app", "", cfg, []byte("garbage"))
		n := 0
		rep := s.gc(t, GCOptions{Now: future, hook: func(stage, repo string) {
			if stage == "scanned" && repo == "app" {
				n++
				s.pushImage(t, "app", fmt.Sprint("v", n), cfg, []byte(fmt.Sprint("layer ", n)))
			}
		}})
		if n != gcAttempts || !reflect.DeepEqual(rep.BusyRepositories, []string{"app"}) || len(rep.ManifestsRemoved) != 0 {
			t.Fatalf("%d scans, report %+v", n, rep)
		}
	})
	t.Run("one collection at a time", func(t *testing.T) {
		s := newServer(t)
		s.pushBlob(t, "app", cfg)
		var inner error
		s.gc(t, GCOptions{hook: func(string, string) {
			_, inner = s.reg.GC(context.Background(), GCOptions{})
		}})
		if !errors.Is(inner, ErrGCRunning) {
			t.Fatalf("nested collection: %v", inner)
		}
	})
}

// TestPlaceAndLinkBlobAgainstCollection checks the push side of the
// handshake directly: placing a blob that exists touches it, placing one
// that was collected places it again, and linking a collected blob fails.
func TestPlaceAndLinkBlobAgainstCollection(t *testing.T) {
	s := newServer(t)
	data := []byte("blob")
	d := s.pushBlob(t, "app", data)
	path := s.reg.blobPath(d)
	age(t, 2*time.Hour, path)
	if _, err := s.reg.writeBlob(bytes.NewReader(data), d); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Fatalf("existing blob not touched: %v %v", fi.ModTime(), err)
	}
	os.Remove(path)
	if _, err := s.reg.writeBlob(bytes.NewReader(data), d); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("blob not placed again: %q %v", b, err)
	}
	os.Remove(path)
	s.reg.meta.Lock()
	err := s.reg.linkBlob("other", d)
	s.reg.meta.Unlock()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("linking a missing blob: %v", err)
	}
	gone(t, s.reg.layerLink("other", d))
}

func TestGCPruneBypassesImmutability(t *testing.T) {
	s := newServer(t)
	s.reg.Immutable = func(repo, tag string) bool { return true }
	cfg := []byte(`{"os":"linux"}`)
	s.pushBlob(t, "app", cfg)
	s.pushBlob(t, "app", []byte("layer"))
	ann := map[string]string{"dev.drover.run": "7"}
	m := imageOf(cfg, ann, []byte("layer"))
	for _, tag := range []string{"7", "r7", "keep"} {
		wantStatus(t, s.putManifest(t, "app", tag, manifestType, m), http.StatusCreated)
	}
	wantError(t, s.do(t, "DELETE", "/v2/app/manifests/r7", nil), http.StatusForbidden, CodeDenied)
	ageAll(t, s.dir, 2*time.Hour)
	fi, err := os.Stat(filepath.Join(s.reg.tagsDir("app"), "7"))
	if err != nil {
		t.Fatal(err)
	}

	var seen []TagInfo
	prune := func(repo string, tags []TagInfo) []string {
		seen = tags
		return []string{"7", "r7", "missing"}
	}
	rep := s.gc(t, GCOptions{Prune: prune})
	d := digest.FromBytes(m)
	if len(seen) != 3 || seen[0].Tag != "7" || seen[0].Digest != d || seen[0].Annotations["dev.drover.run"] != "7" ||
		!seen[0].Modified.Equal(fi.ModTime()) || seen[1].Tag != "keep" || seen[2].Tag != "r7" {
		t.Fatalf("Prune saw %+v", seen)
	}
	if !reflect.DeepEqual(rep.TagsRemoved, []string{"app:7", "app:r7"}) || len(rep.ManifestsRemoved) != 0 {
		t.Fatalf("report %+v", rep)
	}
	s.wantPullable(t, "app", "keep", m)
	wantError(t, s.do(t, "GET", "/v2/app/manifests/r7", nil), http.StatusNotFound, CodeManifestUnknown)

	// Without its last tag the manifest and its blobs go (once the pulls
	// above, which touched the links, are old).
	ageAll(t, s.dir, 2*time.Hour)
	rep = s.gc(t, GCOptions{Prune: func(string, []TagInfo) []string { return []string{"keep"} }})
	if len(rep.ManifestsRemoved) != 1 || rep.BlobsRemoved != 3 {
		t.Fatalf("report %+v", rep)
	}
}

// TestGCConcurrentWithPushes runs pushes (docker style, with chunked uploads,
// blobs skipped after a HEAD and garbage on the side), pulls and aggressive
// collections at once. Some collections take everything modified before they
// started, so pushes may fail when one removes what they uploaded before it;
// every push that succeeds must stay pullable.
func TestGCConcurrentWithPushes(t *testing.T) {
	s := newServer(t)
	repos := []string{"c/one", "c/two"}
	base := []byte("shared base layer")
	for _, repo := range repos {
		s.pushImage(t, repo, "base", []byte(`{"base":true}`), base)
	}
	const workers, iterations = 3, 10

	type pushed struct {
		repo, tag string
		m         []byte
	}
	var (
		mu       sync.Mutex
		done     []pushed
		failures int
	)
	stop := make(chan struct{})
	errc := make(chan error, workers+2)

	push := func(w, i int) (pushed, error) {
		repo := repos[(w+i)%len(repos)]
		tag := fmt.Sprintf("w%d-i%d", w, i)
		cfg := []byte(fmt.Sprintf(`{"worker":%d,"iteration":%d}`, w, i))
		layer := []byte(fmt.Sprintf("layer of worker %d iteration %d", w, i))
		fail := func(what string, r result, err error) (pushed, error) {
			if err != nil {
				return pushed{}, err
			}
			return pushed{}, fmt.Errorf("%s: status %d %s", what, r.status, r.body)
		}
		r, err := s.try("HEAD", "/v2/"+repo+"/blobs/"+digest.FromBytes(base).String(), nil)
		if err != nil || r.status != http.StatusOK {
			if r, err := s.try("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(base).String(), base); err != nil || r.status != http.StatusCreated {
				return fail("push base", r, err)
			}
		}
		for _, b := range [][]byte{cfg, []byte(fmt.Sprintf("garbage %d %d", w, i))} {
			if r, err := s.try("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b); err != nil || r.status != http.StatusCreated {
				return fail("push blob", r, err)
			}
		}
		r, err = s.try("POST", "/v2/"+repo+"/blobs/uploads/", nil)
		if err != nil || r.status != http.StatusAccepted {
			return fail("start upload", r, err)
		}
		loc := r.header.Get("Location")
		half := len(layer) / 2
		if r, err := s.try("PATCH", loc, layer[:half]); err != nil || r.status != http.StatusAccepted {
			return fail("patch", r, err)
		}
		if r, err := s.try("PUT", loc+"?digest="+digest.FromBytes(layer).String(), layer[half:]); err != nil || r.status != http.StatusCreated {
			return fail("finish upload", r, err)
		}
		// An untagged manifest: garbage as soon as it is old.
		junk := imageOf(cfg, map[string]string{"junk": tag})
		if r, err := s.try("PUT", "/v2/"+repo+"/manifests/"+digest.FromBytes(junk).String(), junk, "Content-Type", manifestType); err != nil || r.status != http.StatusCreated {
			return fail("push untagged manifest", r, err)
		}
		m := imageOf(cfg, nil, base, layer)
		if r, err := s.try("PUT", "/v2/"+repo+"/manifests/"+tag, m, "Content-Type", manifestType); err != nil || r.status != http.StatusCreated {
			return fail("push manifest", r, err)
		}
		return pushed{repo, tag, m}, nil
	}

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range iterations {
				for attempt := 1; ; attempt++ {
					p, err := push(w, i)
					if err == nil {
						if err := s.pullable(p.repo, p.tag, p.m); err != nil {
							errc <- fmt.Errorf("just pushed: %w", err)
							return
						}
						mu.Lock()
						done = append(done, p)
						mu.Unlock()
						break
					}
					mu.Lock()
					failures++
					mu.Unlock()
					if attempt == 100 {
						errc <- fmt.Errorf("worker %d iteration %d: %w", w, i, err)
						return
					}
				}
			}
		})
	}
	var bg sync.WaitGroup
	var total GCReport
	collections := 0
	bg.Go(func() { // the collector
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Mostly a short grace period, which pushes outlast; every
			// fourth collection takes everything older than its start.
			opt := GCOptions{Grace: 300 * time.Millisecond, UploadTTL: 1000 * time.Hour}
			if collections%4 == 3 {
				opt.Now = future
			}
			rep, err := s.reg.GC(context.Background(), opt)
			if err != nil {
				errc <- err
				return
			}
			collections++
			total.BlobsRemoved += rep.BlobsRemoved
			total.ManifestsRemoved = append(total.ManifestsRemoved, rep.ManifestsRemoved...)
			time.Sleep(2 * time.Millisecond)
		}
	})
	bg.Go(func() { // a puller of everything pushed so far
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			ps := slices.Clone(done)
			mu.Unlock()
			for _, p := range ps {
				if err := s.pullable(p.repo, p.tag, p.m); err != nil {
					errc <- fmt.Errorf("pushed earlier: %w", err)
					return
				}
			}
		}
	})
	wg.Wait()
	close(stop)
	bg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	final := s.gc(t, GCOptions{Now: future})
	total.BlobsRemoved += final.BlobsRemoved
	for _, p := range done {
		s.wantPullable(t, p.repo, p.tag, p.m)
	}
	if len(done) != workers*iterations {
		t.Fatalf("%d pushes done, want %d", len(done), workers*iterations)
	}
	if total.BlobsRemoved == 0 || len(total.ManifestsRemoved) == 0 {
		t.Fatalf("the collections removed nothing (%d collections): the test exercises nothing", collections)
	}
	t.Logf("%d collections, %d push attempts failed, %d blobs and %d manifests removed", collections, failures, total.BlobsRemoved, len(total.ManifestsRemoved))
}
