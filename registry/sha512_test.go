package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sha512 digests: blobs pushed under them, manifests pushed by them, and
// everything that names them (mounts, referrers, tags, garbage collection,
// verification on read, the in-process API).

// pushBlob512 uploads data monolithically to repository name under its sha512
// digest.
func (s *testServer) pushBlob512(t *testing.T, name string, data []byte) digest.Digest {
	t.Helper()
	d := digest.SHA512.FromBytes(data)
	r := s.do(t, "POST", "/v2/"+name+"/blobs/uploads/?digest="+d.String(), data)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	return d
}

// imageWith returns an image manifest of config cfg and layers, given as
// pushed content and the digest it was pushed under.
func imageWith(t *testing.T, cfg []byte, cd digest.Digest, layers map[digest.Digest][]byte) []byte {
	t.Helper()
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manifestType,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))},
		Layers:    []ocispec.Descriptor{},
	}
	for _, d := range slices.Sorted(maps.Keys(layers)) {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(len(layers[d]))})
	}
	return mustJSON(t, m)
}

func TestSHA512MonolithicPushPull(t *testing.T) {
	s := newServer(t)
	data := []byte("hello, sha512")
	d := digest.SHA512.FromBytes(data)
	r := s.do(t, "POST", "/v2/team/app/blobs/uploads/?digest="+d.String(), data)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Location", "/v2/team/app/blobs/"+d.String())
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	present(t, filepath.Join(s.dir, "blobs", "sha512", d.Encoded()))
	present(t, filepath.Join(s.dir, "repositories", "team", "app", "_layers", "sha512", d.Encoded()))

	r = s.do(t, "HEAD", "/v2/team/app/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Length", strconv.Itoa(len(data)))
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	r = s.do(t, "GET", "/v2/team/app/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	wantHeader(t, r, "ETag", `"`+d.String()+`"`)
	if !bytes.Equal(r.body, data) {
		t.Fatalf("body %q", r.body)
	}
	r = s.do(t, "GET", "/v2/team/app/blobs/"+d.String(), nil, "Range", "bytes=7-12")
	wantStatus(t, r, http.StatusPartialContent)
	if string(r.body) != "sha512" {
		t.Fatalf("range body %q", r.body)
	}

	// The sha256 digest of the same content names another blob, absent until
	// pushed; then both are there.
	d256 := digest.FromBytes(data)
	wantError(t, s.do(t, "GET", "/v2/team/app/blobs/"+d256.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	s.pushBlob(t, "team/app", data)
	for _, dd := range []digest.Digest{d, d256} {
		r = s.do(t, "GET", "/v2/team/app/blobs/"+dd.String(), nil)
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "Docker-Content-Digest", dd.String())
	}

	// A wrong digest stores nothing.
	other := digest.SHA512.FromString("nope")
	wantError(t, s.do(t, "POST", "/v2/team/app/blobs/uploads/?digest="+other.String(), data), http.StatusBadRequest, CodeDigestInvalid)
	wantError(t, s.do(t, "GET", "/v2/team/app/blobs/"+other.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	gone(t, filepath.Join(s.dir, "blobs", "sha512", other.Encoded()))
	assertNoUploads(t, s)

	// Mounts, with and without from, and delete.
	r = s.do(t, "POST", "/v2/dst/blobs/uploads/?mount="+d.String()+"&from=team/app", nil)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Location", "/v2/dst/blobs/"+d.String())
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	wantStatus(t, s.do(t, "POST", "/v2/anon/blobs/uploads/?mount="+d.String(), nil), http.StatusCreated)
	for _, repo := range []string{"dst", "anon"} {
		r = s.do(t, "GET", "/v2/"+repo+"/blobs/"+d.String(), nil)
		wantStatus(t, r, http.StatusOK)
		if !bytes.Equal(r.body, data) {
			t.Fatalf("mounted body %q", r.body)
		}
	}
	// A blob not held falls back to a session.
	wantStatus(t, s.do(t, "POST", "/v2/dst/blobs/uploads/?mount="+other.String()+"&from=team/app", nil), http.StatusAccepted)
	wantStatus(t, s.do(t, "DELETE", "/v2/dst/blobs/"+d.String(), nil), http.StatusAccepted)
	wantError(t, s.do(t, "GET", "/v2/dst/blobs/"+d.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	wantStatus(t, s.do(t, "GET", "/v2/anon/blobs/"+d.String(), nil), http.StatusOK)

	// Other algorithms stay unsupported.
	d384 := digest.SHA384.FromBytes(data)
	wantError(t, s.do(t, "POST", "/v2/team/app/blobs/uploads/?digest="+d384.String(), data), http.StatusBadRequest, CodeUnsupported)
	wantError(t, s.do(t, "POST", "/v2/team/app/blobs/uploads/?mount="+d384.String(), nil), http.StatusBadRequest, CodeUnsupported)
	wantError(t, s.do(t, "GET", "/v2/team/app/blobs/"+d384.String(), nil), http.StatusBadRequest, CodeUnsupported)
	wantStatus(t, s.do(t, "HEAD", "/v2/team/app/blobs/"+d384.String(), nil), http.StatusBadRequest)
}

func TestSHA512ChunkedUpload(t *testing.T) {
	s := newServer(t)
	data := randomBytes(2*copyBufSize+777, 7)
	d := digest.SHA512.FromBytes(data)
	loc := s.startUpload(t, "app")
	cuts := []int{0, 1000, copyBufSize + 5}
	for i := 0; i+1 < len(cuts); i++ {
		cr := strconv.Itoa(cuts[i]) + "-" + strconv.Itoa(cuts[i+1]-1)
		wantStatus(t, s.do(t, "PATCH", loc, data[cuts[i]:cuts[i+1]], "Content-Range", cr), http.StatusAccepted)
	}
	// An unsupported algorithm leaves the session as it was.
	wantError(t, s.do(t, "PUT", loc+"?digest="+digest.SHA384.FromBytes(data).String(), nil), http.StatusBadRequest, CodeUnsupported)
	r := s.do(t, "GET", loc, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-"+strconv.Itoa(copyBufSize+4))

	// The last chunk comes with the closing PUT.
	last := cuts[len(cuts)-1]
	r = s.do(t, "PUT", loc+"?digest="+d.String(), data[last:], "Content-Range", strconv.Itoa(last)+"-"+strconv.Itoa(len(data)-1))
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Location", "/v2/app/blobs/"+d.String())
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	r = s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	if !bytes.Equal(r.body, data) {
		t.Fatal("blob differs")
	}
	wantError(t, s.do(t, "GET", loc, nil), http.StatusNotFound, CodeBlobUploadUnknown)
	assertNoUploads(t, s)

	// An empty blob, all chunks in PATCHes, and a session opened by a mount
	// of a blob not held.
	empty := digest.SHA512.FromBytes(nil)
	loc = s.startUpload(t, "app")
	wantStatus(t, s.do(t, "PUT", loc+"?digest="+empty.String(), nil), http.StatusCreated)
	r = s.do(t, "GET", "/v2/app/blobs/"+empty.String(), nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Length", "0")
	small := []byte("first-second")
	sd := digest.SHA512.FromBytes(small)
	r = s.do(t, "POST", "/v2/app/blobs/uploads/?mount="+sd.String()+"&from=elsewhere", nil)
	wantStatus(t, r, http.StatusAccepted)
	loc = r.header.Get("Location")
	wantStatus(t, s.do(t, "PATCH", loc, small[:6]), http.StatusAccepted)
	wantStatus(t, s.do(t, "PATCH", loc, small[6:]), http.StatusAccepted)
	wantStatus(t, s.do(t, "PUT", loc+"?digest="+sd.String(), nil), http.StatusCreated)
	if r := s.do(t, "GET", "/v2/app/blobs/"+sd.String(), nil); string(r.body) != string(small) {
		t.Fatalf("body %q", r.body)
	}

	// A digest the content does not hash to discards the session.
	loc = s.startUpload(t, "app")
	wantStatus(t, s.do(t, "PATCH", loc, data), http.StatusAccepted)
	wrong := digest.SHA512.FromBytes(data[1:])
	r = s.do(t, "PUT", loc+"?digest="+wrong.String(), nil)
	wantError(t, r, http.StatusBadRequest, CodeDigestInvalid)
	if !strings.Contains(string(r.body), d.String()) {
		t.Fatalf("mismatch does not name the actual digest: %s", r.body)
	}
	wantError(t, s.do(t, "GET", loc, nil), http.StatusNotFound, CodeBlobUploadUnknown)
	wantError(t, s.do(t, "GET", "/v2/app/blobs/"+wrong.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	assertNoUploads(t, s)

	// A session the server did not see the chunks of (it restarted).
	data2 := randomBytes(copyBufSize+300, 8)
	d2 := digest.SHA512.FromBytes(data2)
	loc = s.startUpload(t, "app")
	wantStatus(t, s.do(t, "PATCH", loc, data2[:copyBufSize]), http.StatusAccepted)
	reg, err := New(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	s2 := httptest.NewServer(reg)
	defer s2.Close()
	next := &testServer{Server: s2, reg: reg, dir: s.dir}
	wantStatus(t, next.do(t, "PUT", loc+"?digest="+d2.String(), data2[copyBufSize:]), http.StatusCreated)
	if r := next.do(t, "GET", "/v2/app/blobs/"+d2.String(), nil); !bytes.Equal(r.body, data2) {
		t.Fatal("blob differs after restart")
	}
}

func TestSHA512Manifest(t *testing.T) {
	s := newServer(t)
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("a sha512 layer")
	cd := s.pushBlob512(t, "app", cfg)
	ld := s.pushBlob512(t, "app", layer)
	m := imageWith(t, cfg, cd, map[digest.Digest][]byte{ld: layer})
	d := digest.SHA512.FromBytes(m)

	r := s.putManifest(t, "app", d.String()+"?tag=v512", manifestType, m)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Location", "/v2/app/manifests/"+d.String())
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	wantHeader(t, r, "OCI-Tag", "v512")
	present(t, filepath.Join(s.dir, "blobs", "sha512", d.Encoded()))
	present(t, filepath.Join(s.dir, "repositories", "app", "_manifests", "revisions", "sha512", d.Encoded()))
	for _, ref := range []string{d.String(), "v512"} {
		r = s.do(t, "GET", "/v2/app/manifests/"+ref, nil)
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "Content-Type", manifestType)
		wantHeader(t, r, "Docker-Content-Digest", d.String())
		if !bytes.Equal(r.body, m) {
			t.Fatalf("body %s", r.body)
		}
		r = s.do(t, "HEAD", "/v2/app/manifests/"+ref, nil)
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "Docker-Content-Digest", d.String())
	}
	s.wantPullable(t, "app", "v512", m)
	// Stored under the digest it was pushed by only.
	d256 := digest.FromBytes(m)
	wantError(t, s.do(t, "GET", "/v2/app/manifests/"+d256.String(), nil), http.StatusNotFound, CodeManifestUnknown)
	// It must hash to that digest.
	wantError(t, s.putManifest(t, "app", digest.SHA512.FromString("x").String(), manifestType, m), http.StatusBadRequest, CodeDigestInvalid)
	wantError(t, s.putManifest(t, "app", digest.SHA384.FromBytes(m).String(), manifestType, m), http.StatusBadRequest, CodeUnsupported)
	// Pushed by tag, the same bytes are stored under their sha256 digest.
	r = s.putManifest(t, "app", "v256", manifestType, m)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Docker-Content-Digest", d256.String())
	r = s.do(t, "GET", "/v2/app/manifests/v256", nil)
	wantHeader(t, r, "Docker-Content-Digest", d256.String())

	// A sha512 blob the repository does not have.
	missing := imageWith(t, cfg, cd, map[digest.Digest][]byte{digest.SHA512.FromString("missing"): []byte("missing")})
	wantError(t, s.putManifest(t, "app", "bad", manifestType, missing), http.StatusBadRequest, CodeManifestBlobUnknown)
	wantError(t, s.putManifest(t, "other", digest.SHA512.FromBytes(m).String(), manifestType, m), http.StatusBadRequest, CodeManifestBlobUnknown)

	// An index by sha512 digest of the sha512 manifest, and one by tag.
	index := mustJSON(t, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: manifestType, Digest: d, Size: int64(len(m))}},
	})
	id := digest.SHA512.FromBytes(index)
	wantStatus(t, s.putManifest(t, "app", id.String(), ocispec.MediaTypeImageIndex, index), http.StatusCreated)
	wantStatus(t, s.putManifest(t, "app", "multi", ocispec.MediaTypeImageIndex, index), http.StatusCreated)
	s.wantPullable(t, "app", id.String(), index)
	s.wantPullable(t, "app", "multi", index)

	// Referrers of the sha512 manifest, pushed by sha512 and by sha256 digest.
	empty := s.pushBlob512(t, "app", []byte("{}"))
	subject := &ocispec.Descriptor{MediaType: manifestType, Digest: d, Size: int64(len(m))}
	referrer := func(at string) []byte {
		return mustJSON(t, ocispec.Manifest{
			Versioned:    specs.Versioned{SchemaVersion: 2},
			MediaType:    manifestType,
			ArtifactType: at,
			Config:       ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: empty, Size: 2},
			Layers:       []ocispec.Descriptor{},
			Subject:      subject,
		})
	}
	sig, sbom := referrer("application/vnd.example.signature"), referrer("application/vnd.example.sbom")
	sigD, sbomD := digest.SHA512.FromBytes(sig), digest.FromBytes(sbom)
	for _, p := range []struct {
		d digest.Digest
		m []byte
	}{{sigD, sig}, {sbomD, sbom}} {
		r = s.putManifest(t, "app", p.d.String(), manifestType, p.m)
		wantStatus(t, r, http.StatusCreated)
		wantHeader(t, r, "OCI-Subject", d.String())
	}
	r = s.do(t, "GET", "/v2/app/referrers/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	var idx ocispec.Index
	if err := json.Unmarshal(r.body, &idx); err != nil {
		t.Fatal(err)
	}
	got := map[digest.Digest]ocispec.Descriptor{}
	for _, desc := range idx.Manifests {
		got[desc.Digest] = desc
	}
	if len(got) != 2 || got[sigD].Size != int64(len(sig)) || got[sigD].ArtifactType != "application/vnd.example.signature" ||
		got[sbomD].ArtifactType != "application/vnd.example.sbom" {
		t.Fatalf("referrers %s", r.body)
	}
	r = s.do(t, "GET", "/v2/app/referrers/"+d.String()+"?artifactType=application/vnd.example.signature", nil)
	if err := json.Unmarshal(r.body, &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sigD {
		t.Fatalf("filtered referrers %s", r.body)
	}
	r = s.do(t, "GET", "/v2/app/referrers/"+d256.String(), nil)
	if !strings.Contains(string(r.body), `"manifests":[]`) {
		t.Fatalf("referrers of the sha256 digest %s", r.body)
	}

	// Deleting by sha512 digest removes its tags, not those of the sha256 copy.
	wantStatus(t, s.do(t, "DELETE", "/v2/app/manifests/"+d.String(), nil), http.StatusAccepted)
	for _, ref := range []string{"v512", d.String()} {
		wantError(t, s.do(t, "GET", "/v2/app/manifests/"+ref, nil), http.StatusNotFound, CodeManifestUnknown)
	}
	wantStatus(t, s.do(t, "GET", "/v2/app/manifests/v256", nil), http.StatusOK)
	r = s.do(t, "GET", "/v2/app/tags/list", nil)
	if string(r.body) != `{"name":"app","tags":["multi","v256"]}` {
		t.Fatalf("tags %s", r.body)
	}
}

// The collector scans manifests, layer links and blobs of both algorithms: a
// manifest pushed by sha512 digest keeps the blobs it references, sha256 ones
// included, and sha512 garbage goes.
func TestGCKeepsBlobsOfSHA512Manifest(t *testing.T) {
	s := newServer(t)
	cfg := []byte(`{"os":"kept"}`)
	c256 := s.pushBlob(t, "app", cfg)
	l256, l512 := []byte("kept sha256 layer"), []byte("kept sha512 layer")
	layers := map[digest.Digest][]byte{s.pushBlob(t, "app", l256): l256, s.pushBlob512(t, "app", l512): l512}
	kept := imageWith(t, cfg, c256, layers)
	kd := digest.SHA512.FromBytes(kept)
	wantStatus(t, s.putManifest(t, "app", kd.String()+"?tag=v1", manifestType, kept), http.StatusCreated)

	// An untagged index pushed by tag whose child was pushed by sha512 digest:
	// the tag keeps the index, the index its child.
	ccfg, cl := []byte(`{"os":"child"}`), []byte("child layer")
	child := imageWith(t, ccfg, s.pushBlob512(t, "app", ccfg), map[digest.Digest][]byte{s.pushBlob512(t, "app", cl): cl})
	cd := digest.SHA512.FromBytes(child)
	wantStatus(t, s.putManifest(t, "app", cd.String(), manifestType, child), http.StatusCreated)
	index := mustJSON(t, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: manifestType, Digest: cd, Size: int64(len(child))}},
	})
	wantStatus(t, s.putManifest(t, "app", "multi", ocispec.MediaTypeImageIndex, index), http.StatusCreated)

	// Garbage: an untagged sha512 manifest with its own blobs, and an orphan.
	gcfg, gl := []byte(`{"os":"garbage"}`), []byte("garbage layer")
	gcd, gld := s.pushBlob512(t, "app", gcfg), s.pushBlob512(t, "app", gl)
	garbageM := imageWith(t, gcfg, gcd, map[digest.Digest][]byte{gld: gl})
	gd := digest.SHA512.FromBytes(garbageM)
	wantStatus(t, s.putManifest(t, "app", gd.String(), manifestType, garbageM), http.StatusCreated)
	orphan := s.pushBlob512(t, "app", []byte("orphan"))
	ageAll(t, s.dir, 2*time.Hour)

	want := GCReport{
		TagsRemoved:       []string{},
		ManifestsRemoved:  []string{"app@" + gd.String()},
		LayerLinksRemoved: 3, // garbage config, garbage layer, orphan
		BlobsRemoved:      4, // and the garbage manifest
		BytesFreed:        int64(len(garbageM) + len(gcfg) + len(gl) + len("orphan")),
	}
	want.DryRun = true
	if rep := s.gc(t, GCOptions{DryRun: true}); !reflect.DeepEqual(rep, want) {
		t.Fatalf("dry run report\n%+v, want\n%+v", rep, want)
	}
	want.DryRun = false
	if rep := s.gc(t, GCOptions{}); !reflect.DeepEqual(rep, want) {
		t.Fatalf("report\n%+v, want\n%+v", rep, want)
	}
	s.wantPullable(t, "app", "v1", kept)
	s.wantPullable(t, "app", kd.String(), kept)
	s.wantPullable(t, "app", "multi", index)
	for d := range layers {
		present(t, s.reg.blobPath(d))
		present(t, s.reg.layerLink("app", d))
	}
	present(t, s.reg.blobPath(c256))
	for _, d := range []digest.Digest{gd, gcd, gld, orphan} {
		gone(t, s.reg.blobPath(d))
	}
	gone(t, s.reg.revisionLink("app", gd))
	wantError(t, s.do(t, "GET", "/v2/app/manifests/"+gd.String(), nil), http.StatusNotFound, CodeManifestUnknown)
	if rep := s.gc(t, GCOptions{}); rep.BlobsRemoved+rep.LayerLinksRemoved+len(rep.ManifestsRemoved) != 0 {
		t.Fatalf("second collection %+v", rep)
	}

	// Untagging the manifest frees its blobs, of both algorithms.
	wantStatus(t, s.do(t, "DELETE", "/v2/app/manifests/v1", nil), http.StatusAccepted)
	ageAll(t, s.dir, 2*time.Hour)
	rep := s.gc(t, GCOptions{})
	if rep.BlobsRemoved != 4 || !reflect.DeepEqual(rep.ManifestsRemoved, []string{"app@" + kd.String()}) {
		t.Fatalf("after untagging %+v", rep)
	}
	for d := range layers {
		gone(t, s.reg.blobPath(d))
	}
	s.wantPullable(t, "app", "multi", index)
}

func TestCorruptSHA512BlobIsDetected(t *testing.T) {
	s := newServer(t)
	log := captureLog(s)
	// Checked before it is sent.
	data := randomBytes(100_000, 11)
	d := s.pushBlob512(t, "app", data)
	flipByte(t, s, d, 4000)
	wantError(t, s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	wantQuarantined(t, s, d, log)
	s.pushBlob512(t, "app", data)
	if r := s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil); !bytes.Equal(r.body, data) {
		t.Fatal("re-pushed blob differs")
	}

	// Checked while it streams.
	size := verifyWhole + copyBufSize + 5
	large := randomBytes(size, 12)
	ld := s.pushBlob512(t, "app", large)
	resp, b, err := getRaw(t, s, "/v2/app/blobs/"+ld.String())
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(b, large) {
		t.Fatalf("good blob: status %d, %d bytes, %v", resp.StatusCode, len(b), err)
	}
	flipByte(t, s, ld, int64(size/2))
	resp, b, err = getRaw(t, s, "/v2/app/blobs/"+ld.String())
	if resp.StatusCode != http.StatusOK || !errors.Is(err, io.ErrUnexpectedEOF) || len(b) >= size {
		t.Fatalf("corrupt blob: status %d, got %d of %d bytes, err %v; want a short body", resp.StatusCode, len(b), size, err)
	}
	wantQuarantined(t, s, ld, log)

	// A manifest.
	cfg := []byte("{}")
	m := imageWith(t, cfg, s.pushBlob512(t, "app", cfg), nil)
	md := digest.SHA512.FromBytes(m)
	wantStatus(t, s.putManifest(t, "app", md.String()+"?tag=v1", manifestType, m), http.StatusCreated)
	flipByte(t, s, md, 10)
	wantError(t, s.do(t, "GET", "/v2/app/manifests/v1", nil), http.StatusNotFound, CodeManifestUnknown)
	wantQuarantined(t, s, md, log)

	// The in-process reader.
	data3 := []byte("read in process")
	d3 := s.pushBlob512(t, "app", data3)
	flipByte(t, s, d3, 2)
	rc, _, err := s.reg.OpenBlob("app", d3)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, errDigestMismatch) {
		t.Fatalf("corrupt blob read in process: %v", err)
	}
}

func TestSHA512LocalAPI(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	cfg := []byte(`{"os":"local"}`)
	cd := digest.SHA512.FromBytes(cfg)
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(cfg)), nil }
	if err := s.reg.PushBlob(ctx, "app", cd, open); err != nil {
		t.Fatal(err)
	}
	if err := s.reg.PushBlob(ctx, "app", digest.SHA512.FromString("other"), open); err == nil {
		t.Fatal("a blob pushed under a digest it does not hash to was accepted")
	}
	rc, size, err := s.reg.OpenBlob("app", cd)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || size != int64(len(cfg)) || !bytes.Equal(b, cfg) {
		t.Fatalf("OpenBlob: %q (%d bytes), %v", b, size, err)
	}
	if _, _, err := s.reg.OpenBlob("app", digest.SHA384.FromBytes(cfg)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenBlob of a sha384 digest: %v", err)
	}

	m := imageWith(t, cfg, cd, nil)
	d512 := digest.SHA512.FromBytes(m)
	got, err := s.reg.PushManifest(ctx, "app", d512.String(), manifestType, m)
	if err != nil || got != d512 {
		t.Fatalf("PushManifest by sha512 digest: %s, %v", got, err)
	}
	body, mt, got, err := s.reg.Manifest(ctx, "app", d512.String())
	if err != nil || got != d512 || mt != manifestType || !bytes.Equal(body, m) {
		t.Fatalf("Manifest: %s %s %v", got, mt, err)
	}
	if got, err := s.reg.PushManifest(ctx, "app", "v1", manifestType, m); err != nil || got != digest.FromBytes(m) {
		t.Fatalf("PushManifest by tag: %s, %v", got, err)
	}
	if got, err := s.reg.PushManifest(ctx, "app", "", manifestType, m); err != nil || got != digest.FromBytes(m) {
		t.Fatalf("PushManifest by digest: %s, %v", got, err)
	}
}
