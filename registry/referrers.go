package registry

import (
	"encoding/json"
	"net/http"
	"os"
	"strconv"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// serveReferrers handles GET /v2/<name>/referrers/<digest>?artifactType=<t>:
// an image index of the repository's manifests whose subject is <digest>.
// It scans the repository's manifests on every call.
func (r *Registry) serveReferrers(w http.ResponseWriter, req *http.Request, name string, args []string) {
	if !allow(w, req, http.MethodGet, http.MethodHead) {
		return
	}
	subject, ok := parseDigest(w, args[0])
	if !ok {
		return
	}
	filter := req.URL.Query().Get("artifactType")
	revs, err := r.listRevisions(name)
	if err != nil {
		r.storageError(w, req, err)
		return
	}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{},
	}
	for _, d := range revs {
		desc, ok := r.referrer(name, d, subject)
		if !ok || (filter != "" && desc.ArtifactType != filter) {
			continue
		}
		index.Manifests = append(index.Manifests, desc)
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	body, err := json.Marshal(index)
	if err != nil {
		r.storageError(w, req, err)
		return
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if req.Method == http.MethodGet {
		w.Write(body)
	}
}

// referrer returns the descriptor of manifest d when its subject is subject.
func (r *Registry) referrer(name string, d, subject digest.Digest) (ocispec.Descriptor, bool) {
	mt, err := os.ReadFile(r.revisionLink(name, d))
	if err != nil {
		return ocispec.Descriptor{}, false
	}
	body, err := os.ReadFile(r.blobPath(d))
	if err != nil || len(body) > maxManifestSize || d.Algorithm().FromBytes(body) != d {
		return ocispec.Descriptor{}, false // a corrupt manifest describes nothing
	}
	var m manifest
	if json.Unmarshal(body, &m) != nil || m.Subject == nil || m.Subject.Digest != subject {
		return ocispec.Descriptor{}, false
	}
	at := m.ArtifactType
	if at == "" && m.Config != nil && isImage(string(mt)) {
		at = m.Config.MediaType
	}
	return ocispec.Descriptor{
		MediaType:    string(mt),
		Digest:       d,
		Size:         int64(len(body)),
		ArtifactType: at,
		Annotations:  m.Annotations,
	}, true
}
