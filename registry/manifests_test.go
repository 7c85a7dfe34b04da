package registry

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const manifestType = ocispec.MediaTypeImageManifest

// imageManifest pushes a config and a layer to name and returns a manifest
// referencing them.
func imageManifest(t *testing.T, s *testServer, name, layer string) []byte {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd := s.pushBlob(t, name, cfg)
	ld := s.pushBlob(t, name, []byte(layer))
	return mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manifestType,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: ld, Size: int64(len(layer))}},
	})
}

func (s *testServer) putManifest(t *testing.T, name, ref, mediaType string, body []byte) result {
	t.Helper()
	return s.do(t, "PUT", "/v2/"+name+"/manifests/"+ref, body, "Content-Type", mediaType)
}

func TestManifestByTagAndDigest(t *testing.T) {
	s := newServer(t)
	m := imageManifest(t, s, "app", "layer")
	d := digest.FromBytes(m)
	r := s.putManifest(t, "app", "v1", manifestType, m)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Location", "/v2/app/manifests/"+d.String())
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	wantHeader(t, r, "OCI-Subject", "")

	for _, ref := range []string{"v1", d.String()} {
		r = s.do(t, "GET", "/v2/app/manifests/"+ref, nil)
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "Content-Type", manifestType)
		wantHeader(t, r, "Docker-Content-Digest", d.String())
		if string(r.body) != string(m) {
			t.Fatalf("body %s", r.body)
		}
		r = s.do(t, "HEAD", "/v2/app/manifests/"+ref, nil)
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "Docker-Content-Digest", d.String())
		if r.header.Get("Content-Length") == "0" || len(r.body) != 0 {
			t.Fatalf("HEAD Content-Length %q, body %q", r.header.Get("Content-Length"), r.body)
		}
	}
	// Push by digest: must match.
	wantStatus(t, s.putManifest(t, "app", d.String(), manifestType, m), http.StatusCreated)
	other := digest.FromString("x")
	wantError(t, s.putManifest(t, "app", other.String(), manifestType, m), http.StatusBadRequest, CodeDigestInvalid)
	wantError(t, s.do(t, "GET", "/v2/app/manifests/"+other.String(), nil), http.StatusNotFound, CodeManifestUnknown)
	wantError(t, s.do(t, "GET", "/v2/app/manifests/nope", nil), http.StatusNotFound, CodeManifestUnknown)
	wantStatus(t, s.do(t, "HEAD", "/v2/app/manifests/nope", nil), http.StatusNotFound)
	// Not visible in another repository.
	wantError(t, s.do(t, "GET", "/v2/other/manifests/"+d.String(), nil), http.StatusNotFound, CodeManifestUnknown)
}

func TestManifestValidation(t *testing.T) {
	s := newServer(t)
	cd := s.pushBlob(t, "app", []byte("{}"))
	missing := digest.FromString("missing layer")
	m := mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manifestType,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: 2},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: missing, Size: 1}},
	})
	r := s.putManifest(t, "app", "v1", manifestType, m)
	wantError(t, r, http.StatusBadRequest, CodeManifestBlobUnknown)
	wantError(t, s.do(t, "GET", "/v2/app/manifests/v1", nil), http.StatusNotFound, CodeManifestUnknown)

	good := imageManifest(t, s, "app", "l")
	wantError(t, s.putManifest(t, "app", "v1", ocispec.MediaTypeImageIndex, good), http.StatusBadRequest, CodeManifestInvalid)
	wantError(t, s.putManifest(t, "app", "v1", "text/plain", good), http.StatusBadRequest, CodeManifestInvalid)
	wantError(t, s.putManifest(t, "app", "v1", manifestType, []byte("{not json")), http.StatusBadRequest, CodeManifestInvalid)
	wantError(t, s.putManifest(t, "app", "bad:tag:", manifestType, good), http.StatusBadRequest, CodeDigestInvalid)
	wantError(t, s.putManifest(t, "app", ".hidden", manifestType, good), http.StatusBadRequest, CodeManifestInvalid)

	// An index needs its child manifests in the repository.
	child := digest.FromBytes(good)
	idx := func(d digest.Digest) []byte {
		return mustJSON(t, ocispec.Index{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageIndex,
			Manifests: []ocispec.Descriptor{{MediaType: manifestType, Digest: d, Size: int64(len(good))}},
		})
	}
	wantError(t, s.putManifest(t, "app", "multi", ocispec.MediaTypeImageIndex, idx(child)), http.StatusBadRequest, CodeManifestBlobUnknown)
	wantStatus(t, s.putManifest(t, "app", "v1", manifestType, good), http.StatusCreated)
	r = s.putManifest(t, "app", "multi", ocispec.MediaTypeImageIndex, idx(child))
	wantStatus(t, r, http.StatusCreated)
	r = s.do(t, "GET", "/v2/app/manifests/multi", nil)
	wantHeader(t, r, "Content-Type", ocispec.MediaTypeImageIndex)

	// Docker schema 2 manifests are stored and served with their own type.
	docker := []byte(strings.Replace(string(good), manifestType, MediaTypeDockerManifest, 1))
	wantStatus(t, s.putManifest(t, "app", "docker", MediaTypeDockerManifest, docker), http.StatusCreated)
	r = s.do(t, "HEAD", "/v2/app/manifests/docker", nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Type", MediaTypeDockerManifest)
	wantHeader(t, r, "Docker-Content-Digest", digest.FromBytes(docker).String())
}

func TestTagListPaging(t *testing.T) {
	s := newServer(t)
	m := imageManifest(t, s, "team/app", "l")
	tags := []string{"v3", "latest", "v1", "a", "v2"}
	for _, tag := range tags {
		wantStatus(t, s.putManifest(t, "team/app", tag, manifestType, m), http.StatusCreated)
	}
	r := s.do(t, "GET", "/v2/team/app/tags/list", nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Link", "")
	var tl tagList
	json.Unmarshal(r.body, &tl)
	if tl.Name != "team/app" || strings.Join(tl.Tags, ",") != "a,latest,v1,v2,v3" {
		t.Fatalf("list %+v", tl)
	}
	var pages []string
	next := "/v2/team/app/tags/list?n=2"
	for next != "" {
		r = s.do(t, "GET", next, nil)
		wantStatus(t, r, http.StatusOK)
		var tl tagList
		json.Unmarshal(r.body, &tl)
		pages = append(pages, strings.Join(tl.Tags, ","))
		next = ""
		if link := r.header.Get("Link"); link != "" {
			if !strings.HasPrefix(link, "</v2/team/app/tags/list?") || !strings.HasSuffix(link, `>; rel="next"`) {
				t.Fatalf("Link %q", link)
			}
			next = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		}
	}
	if got := strings.Join(pages, "|"); got != "a,latest|v1,v2|v3" {
		t.Fatalf("pages %q", got)
	}
	r = s.do(t, "GET", "/v2/team/app/tags/list?last=v1", nil)
	json.Unmarshal(r.body, &tl)
	if strings.Join(tl.Tags, ",") != "v2,v3" {
		t.Fatalf("after v1: %v", tl.Tags)
	}
	wantError(t, s.do(t, "GET", "/v2/nothere/tags/list", nil), http.StatusNotFound, CodeNameUnknown)
	wantError(t, s.do(t, "GET", "/v2/team/tags/list", nil), http.StatusNotFound, CodeNameUnknown)
}

func TestReferrers(t *testing.T) {
	s := newServer(t)
	base := imageManifest(t, s, "app", "base")
	bd := digest.FromBytes(base)
	wantStatus(t, s.putManifest(t, "app", "v1", manifestType, base), http.StatusCreated)

	empty := s.pushBlob(t, "app", []byte("{}"))
	subject := &ocispec.Descriptor{MediaType: manifestType, Digest: bd, Size: int64(len(base))}
	sig := mustJSON(t, ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    manifestType,
		ArtifactType: "application/vnd.example.signature",
		Config:       ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: empty, Size: 2},
		Layers:       []ocispec.Descriptor{},
		Subject:      subject,
		Annotations:  map[string]string{"org.example": "sig"},
	})
	sbom := mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manifestType,
		Config:    ocispec.Descriptor{MediaType: "application/vnd.example.sbom", Digest: empty, Size: 2},
		Layers:    []ocispec.Descriptor{},
		Subject:   subject,
	})
	for _, m := range [][]byte{sig, sbom} {
		r := s.putManifest(t, "app", digest.FromBytes(m).String(), manifestType, m)
		wantStatus(t, r, http.StatusCreated)
		wantHeader(t, r, "OCI-Subject", bd.String())
	}

	get := func(query string) (result, ocispec.Index) {
		r := s.do(t, "GET", "/v2/app/referrers/"+bd.String()+query, nil)
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "Content-Type", ocispec.MediaTypeImageIndex)
		var idx ocispec.Index
		if err := json.Unmarshal(r.body, &idx); err != nil {
			t.Fatal(err)
		}
		if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex {
			t.Fatalf("index %s", r.body)
		}
		return r, idx
	}
	r, idx := get("")
	wantHeader(t, r, "OCI-Filters-Applied", "")
	if len(idx.Manifests) != 2 {
		t.Fatalf("referrers %s", r.body)
	}
	byType := map[string]ocispec.Descriptor{}
	for _, d := range idx.Manifests {
		byType[d.ArtifactType] = d
	}
	sd := byType["application/vnd.example.signature"]
	if sd.Digest != digest.FromBytes(sig) || sd.Size != int64(len(sig)) || sd.MediaType != manifestType || sd.Annotations["org.example"] != "sig" {
		t.Fatalf("signature descriptor %+v", sd)
	}
	if byType["application/vnd.example.sbom"].Digest != digest.FromBytes(sbom) {
		t.Fatalf("sbom descriptor missing: %s", r.body)
	}

	r, idx = get("?artifactType=application/vnd.example.sbom")
	wantHeader(t, r, "OCI-Filters-Applied", "artifactType")
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest.FromBytes(sbom) {
		t.Fatalf("filtered %s", r.body)
	}

	r = s.do(t, "GET", "/v2/app/referrers/"+digest.FromString("none").String(), nil)
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), `"manifests":[]`) {
		t.Fatalf("empty referrers %s", r.body)
	}
	wantError(t, s.do(t, "GET", "/v2/app/referrers/notadigest", nil), http.StatusBadRequest, CodeDigestInvalid)
}

func TestDeleteManifestAndTag(t *testing.T) {
	s := newServer(t)
	m := imageManifest(t, s, "app", "l")
	d := digest.FromBytes(m)
	for _, tag := range []string{"v1", "v2", "keep"} {
		wantStatus(t, s.putManifest(t, "app", tag, manifestType, m), http.StatusCreated)
	}
	wantStatus(t, s.do(t, "DELETE", "/v2/app/manifests/keep", nil), http.StatusAccepted)
	wantError(t, s.do(t, "GET", "/v2/app/manifests/keep", nil), http.StatusNotFound, CodeManifestUnknown)
	wantError(t, s.do(t, "DELETE", "/v2/app/manifests/keep", nil), http.StatusNotFound, CodeManifestUnknown)
	wantStatus(t, s.do(t, "GET", "/v2/app/manifests/v1", nil), http.StatusOK)

	wantStatus(t, s.do(t, "DELETE", "/v2/app/manifests/"+d.String(), nil), http.StatusAccepted)
	for _, ref := range []string{"v1", "v2", d.String()} {
		wantError(t, s.do(t, "GET", "/v2/app/manifests/"+ref, nil), http.StatusNotFound, CodeManifestUnknown)
	}
	wantError(t, s.do(t, "DELETE", "/v2/app/manifests/"+d.String(), nil), http.StatusNotFound, CodeManifestUnknown)
	r := s.do(t, "GET", "/v2/app/tags/list", nil)
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), `"tags":[]`) {
		t.Fatalf("tags after delete %s", r.body)
	}
}

func TestInvalidRequests(t *testing.T) {
	s := newServer(t)
	d := digest.FromString("x").String()
	for _, p := range []string{
		"/v2/UPPER/blobs/uploads/",
		"/v2/a..b/blobs/uploads/",
		"/v2/-lead/blobs/uploads/",
	} {
		wantError(t, s.do(t, "POST", p, nil), http.StatusBadRequest, CodeNameInvalid)
	}
	// An http.ServeMux would redirect this one, so call the handler directly.
	rec := httptest.NewRecorder()
	s.reg.ServeHTTP(rec, httptest.NewRequest("POST", "/v2/a//b/blobs/uploads/", nil))
	wantError(t, result{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}, http.StatusBadRequest, CodeNameInvalid)
	wantError(t, s.do(t, "GET", "/v2/Bad_Name/manifests/v1", nil), http.StatusBadRequest, CodeNameInvalid)
	wantError(t, s.do(t, "GET", "/v2/"+strings.Repeat("a", 300)+"/blobs/"+d, nil), http.StatusBadRequest, CodeNameInvalid)
	wantError(t, s.do(t, "GET", "/v2/app/whatever", nil), http.StatusNotFound, CodeUnsupported)
	wantError(t, s.do(t, "GET", "/v2/app/blobs/sha256:short", nil), http.StatusBadRequest, CodeDigestInvalid)
	// Well-formed digests of algorithms other than sha256 and sha512.
	wantError(t, s.do(t, "GET", "/v2/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", nil), http.StatusBadRequest, CodeUnsupported)
	wantError(t, s.do(t, "GET", "/v2/app/blobs/"+digest.SHA384.FromString("x").String(), nil), http.StatusBadRequest, CodeUnsupported)
	wantError(t, s.do(t, "GET", "/v2/app/blobs/sha512:short", nil), http.StatusBadRequest, CodeDigestInvalid)
	r := s.do(t, "POST", "/v2/app/blobs/"+d, nil)
	wantError(t, r, http.StatusMethodNotAllowed, CodeUnsupported)
	if r.header.Get("Allow") == "" {
		t.Fatal("405 without Allow")
	}
	wantError(t, s.do(t, "PATCH", "/v2/app/manifests/v1", nil), http.StatusMethodNotAllowed, CodeUnsupported)
}
