package registry

import (
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Fixes found by the OCI distribution-spec conformance suite.

// A manifest may reference non-distributable (foreign) layers the registry
// never received: clients fetch those from the layer's urls.
func TestManifestWithNonDistributableLayers(t *testing.T) {
	s := newServer(t)
	cd := s.pushBlob(t, "app", []byte("{}"))
	ld := s.pushBlob(t, "app", []byte("a pushed layer"))
	foreign := func(mt, content string) ocispec.Descriptor {
		d := digest.FromString(content)
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: 12345, URLs: []string{"https://example.com/blobs/" + d.String()}}
	}
	m := mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manifestType,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: 2},
		Layers: []ocispec.Descriptor{
			foreign("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "nd1"),
			foreign("application/vnd.oci.image.layer.nondistributable.v1.tar", "nd2"),
			{MediaType: ocispec.MediaTypeImageLayer, Digest: ld, Size: 14},
		},
	})
	wantStatus(t, s.putManifest(t, "app", "nd", manifestType, m), http.StatusCreated)
	r := s.do(t, "GET", "/v2/app/manifests/nd", nil)
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != string(m) {
		t.Fatalf("body %s", r.body)
	}

	dm := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeDockerManifest,
		"config":        map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": 2},
		"layers":        []ocispec.Descriptor{foreign("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "win")},
	})
	wantStatus(t, s.putManifest(t, "app", "docker-foreign", MediaTypeDockerManifest, dm), http.StatusCreated)

	// An ordinary layer must still be present, and so must the config even
	// with a non-distributable media type.
	m = mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manifestType,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: 2},
		Layers:    []ocispec.Descriptor{foreign(ocispec.MediaTypeImageLayerGzip, "missing")},
	})
	wantError(t, s.putManifest(t, "app", "bad", manifestType, m), http.StatusBadRequest, CodeManifestBlobUnknown)
	m = mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manifestType,
		Config:    foreign("application/vnd.oci.image.layer.nondistributable.v1.tar", "config"),
	})
	wantError(t, s.putManifest(t, "app", "bad", manifestType, m), http.StatusBadRequest, CodeManifestBlobUnknown)
}

// A mount without from links any blob the registry holds, and falls back to an
// upload session for one it does not.
func TestAnonymousMount(t *testing.T) {
	s := newServer(t)
	d := s.pushBlob(t, "src", []byte("shared layer"))
	r := s.do(t, "POST", "/v2/dst/blobs/uploads/?mount="+d.String(), nil)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Location", "/v2/dst/blobs/"+d.String())
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	r = s.do(t, "GET", "/v2/dst/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != "shared layer" {
		t.Fatalf("body %q", r.body)
	}

	missing := digest.FromString("never pushed")
	r = s.do(t, "POST", "/v2/dst/blobs/uploads/?mount="+missing.String(), nil)
	wantStatus(t, r, http.StatusAccepted)
	wantHeader(t, r, "Range", "0-0")
	wantError(t, s.do(t, "GET", "/v2/dst/blobs/"+missing.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	// An invalid from is not a mount without from.
	r = s.do(t, "POST", "/v2/third/blobs/uploads/?mount="+d.String()+"&from=Not..Valid", nil)
	wantStatus(t, r, http.StatusAccepted)
	wantError(t, s.do(t, "GET", "/v2/third/blobs/"+d.String(), nil), http.StatusNotFound, CodeBlobUnknown)
}

// A manifest pushed by digest may carry tags as parameters; the answer lists
// them in OCI-Tag.
func TestManifestPutWithTagParams(t *testing.T) {
	s := newServer(t)
	m := imageManifest(t, s, "app", "layer")
	d := digest.FromBytes(m)
	r := s.putManifest(t, "app", d.String()+"?tag=v1&tag=latest&tag=v1", manifestType, m)
	wantStatus(t, r, http.StatusCreated)
	if got := r.header.Values("OCI-Tag"); len(got) != 1 || got[0] != "v1, latest" {
		t.Fatalf("OCI-Tag %q", got)
	}
	for _, tag := range []string{"v1", "latest"} {
		r = s.do(t, "GET", "/v2/app/manifests/"+tag, nil)
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "Docker-Content-Digest", d.String())
	}
	r = s.do(t, "GET", "/v2/app/tags/list", nil)
	if string(r.body) != `{"name":"app","tags":["latest","v1"]}` {
		t.Fatalf("tags %s", r.body)
	}

	// Without tags, and with an invalid or an immutable one.
	r = s.putManifest(t, "app", d.String(), manifestType, m)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "OCI-Tag", "")
	wantError(t, s.putManifest(t, "app", d.String()+"?tag=ok&tag=-bad", manifestType, m), http.StatusBadRequest, CodeManifestInvalid)
	m2 := imageManifest(t, s, "app", "other layer")
	s.reg.Immutable = func(repo, tag string) bool { return tag == "v1" }
	wantError(t, s.putManifest(t, "app", digest.FromBytes(m2).String()+"?tag=new&tag=v1", manifestType, m2), http.StatusForbidden, CodeDenied)
	wantError(t, s.do(t, "GET", "/v2/app/manifests/new", nil), http.StatusNotFound, CodeManifestUnknown)
	wantStatus(t, s.putManifest(t, "app", d.String()+"?tag=v1", manifestType, m), http.StatusCreated) // same digest: allowed
}
