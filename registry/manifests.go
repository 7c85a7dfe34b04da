package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker media types accepted alongside the OCI ones.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// maxTagParams bounds the tag parameters of a manifest PUT by digest (the
// spec asks for at least 10).
const maxTagParams = 100

// maxManifestSize bounds a pushed manifest; the spec suggests at least 4 MiB.
const maxManifestSize = 4 << 20

// manifest holds the fields of image manifests, indexes and their Docker
// counterparts that the registry checks.
type manifest struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
}

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

func isImage(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// nonDistributable reports a layer media type whose blob may be absent from
// the registry: OCI non-distributable layers and Docker foreign layers.
func nonDistributable(mt string) bool {
	return strings.HasPrefix(mt, "application/vnd.oci.image.layer.nondistributable.") ||
		mt == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" ||
		mt == "application/vnd.docker.image.rootfs.foreign.diff.tar"
}

// serveManifest handles GET, HEAD, PUT and DELETE on
// /v2/<name>/manifests/<reference>.
func (r *Registry) serveManifest(w http.ResponseWriter, req *http.Request, name string, args []string) {
	if !allow(w, req, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete) {
		return
	}
	ref := args[0]
	var d digest.Digest
	isTag := !strings.Contains(ref, ":")
	if isTag {
		if !tagRE.MatchString(ref) {
			writeError(w, http.StatusBadRequest, CodeManifestInvalid, "invalid tag", map[string]string{"tag": ref})
			return
		}
	} else {
		var ok bool
		if d, ok = parseDigest(w, ref); !ok {
			return
		}
	}
	switch req.Method {
	case http.MethodPut:
		r.putManifest(w, req, name, ref, d)
		return
	case http.MethodDelete:
		r.deleteManifest(w, req, name, ref, d)
		return
	}
	unknown := func() {
		writeError(w, http.StatusNotFound, CodeManifestUnknown, "manifest unknown", map[string]string{"reference": ref})
	}
	if isTag {
		var err error
		if d, err = r.readTag(name, ref); err != nil {
			unknown()
			return
		}
	}
	mt, err := os.ReadFile(r.revisionLink(name, d))
	if err != nil {
		unknown()
		return
	}
	f, err := os.Open(r.blobPath(d))
	if err != nil {
		unknown()
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		r.storageError(w, req, err)
		return
	}
	size := fi.Size()
	var body []byte // GET checks the manifest before sending it; HEAD reads nothing
	if req.Method == http.MethodGet {
		if body, err = io.ReadAll(f); err != nil {
			r.storageError(w, req, err)
			return
		}
		if got := d.Algorithm().FromBytes(body); got != d {
			r.quarantine(f, d, got.String())
			writeError(w, http.StatusNotFound, CodeManifestUnknown, "stored manifest is corrupt (its content does not match its digest) and was removed; push it again",
				map[string]string{"reference": ref, "digest": d.String()})
			return
		}
		size = int64(len(body))
	}
	h := w.Header()
	h.Set("Content-Type", string(mt))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// putManifest validates and stores a manifest, tagging it when ref is a tag.
// want is the digest it was pushed by, or "" when pushed by tag.
func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, name, ref string, want digest.Digest) {
	invalid := func(msg string) {
		writeError(w, http.StatusBadRequest, CodeManifestInvalid, msg, nil)
	}
	ct, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || !(isImage(ct) || isIndex(ct)) {
		invalid("unsupported or missing Content-Type")
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxManifestSize+1))
	if err != nil {
		invalid("reading manifest: " + err.Error())
		return
	}
	if len(body) > maxManifestSize {
		writeError(w, http.StatusRequestEntityTooLarge, CodeSizeInvalid, "manifest too large", nil)
		return
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		invalid("manifest is not valid JSON")
		return
	}
	if m.SchemaVersion != 2 {
		invalid("schemaVersion must be 2")
		return
	}
	if m.MediaType != "" && m.MediaType != ct {
		invalid("mediaType does not match Content-Type")
		return
	}
	// Pushed by digest, the manifest is stored under that digest's algorithm;
	// by tag, under sha256.
	alg := algorithms[0]
	if want != "" {
		alg = want.Algorithm()
	}
	d := alg.FromBytes(body)
	if want != "" && want != d {
		writeError(w, http.StatusBadRequest, CodeDigestInvalid, "manifest does not match digest", map[string]string{"digest": want.String(), "actual": d.String()})
		return
	}
	tags := []string{ref}
	if want != "" {
		// Pushed by digest, tagged by the optional tag parameters.
		tags = nil
		for _, t := range req.URL.Query()["tag"] {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		if len(tags) > maxTagParams {
			writeError(w, http.StatusRequestURITooLong, CodeManifestInvalid, "too many tag parameters", map[string]int{"max": maxTagParams})
			return
		}
		for _, t := range tags {
			if !tagRE.MatchString(t) {
				writeError(w, http.StatusBadRequest, CodeManifestInvalid, "invalid tag", map[string]string{"tag": t})
				return
			}
		}
	}

	r.meta.Lock()
	defer r.meta.Unlock()
	if isImage(ct) {
		if m.Config == nil {
			invalid("image manifest has no config")
			return
		}
		for i, desc := range append([]ocispec.Descriptor{*m.Config}, m.Layers...) {
			if desc.Digest.Validate() == nil && i > 0 && nonDistributable(desc.MediaType) {
				continue // clients fetch it from its urls; registries need not hold it
			}
			if desc.Digest.Validate() != nil || !r.hasBlob(name, desc.Digest) {
				writeError(w, http.StatusBadRequest, CodeManifestBlobUnknown, "blob unknown to repository", map[string]string{"digest": desc.Digest.String()})
				return
			}
		}
	} else {
		for _, desc := range m.Manifests {
			if desc.Digest.Validate() != nil || !r.hasManifest(name, desc.Digest) {
				writeError(w, http.StatusBadRequest, CodeManifestBlobUnknown, "manifest unknown to repository", map[string]string{"digest": desc.Digest.String()})
				return
			}
		}
	}
	for _, t := range tags {
		if !r.immutable(name, t) {
			continue
		}
		if old, err := r.readTag(name, t); err == nil && old != d {
			writeError(w, http.StatusForbidden, CodeDenied, "tag "+t+" is immutable: it already names "+old.String(), map[string]string{"tag": t})
			return
		}
	}
	r.wantManifest(name, &m) // touch what it references, for the garbage collector (gc.go)
	if _, err := r.writeBlob(bytes.NewReader(body), d); err != nil {
		r.storageError(w, req, err)
		return
	}
	if err := writeLink(r.revisionLink(name, d), []byte(ct)); err != nil {
		r.storageError(w, req, err)
		return
	}
	for _, t := range tags {
		if err := writeLink(filepath.Join(r.tagsDir(name), t), []byte(d.String())); err != nil {
			r.storageError(w, req, err)
			return
		}
	}
	h := w.Header()
	if want != "" && len(tags) > 0 {
		h.Set("OCI-Tag", strings.Join(tags, ", "))
	}
	h.Set("Location", "/v2/"+name+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if m.Subject != nil && m.Subject.Digest != "" {
		h.Set("OCI-Subject", m.Subject.Digest.String())
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// deleteManifest removes a tag (ref is a tag) or a manifest and every tag
// pointing at it (ref is a digest d).
func (r *Registry) deleteManifest(w http.ResponseWriter, req *http.Request, name, ref string, d digest.Digest) {
	r.meta.Lock()
	defer r.meta.Unlock()
	unknown := func() {
		writeError(w, http.StatusNotFound, CodeManifestUnknown, "manifest unknown", map[string]string{"reference": ref})
	}
	if d == "" {
		if r.immutable(name, ref) {
			writeError(w, http.StatusForbidden, CodeDenied, "tag "+ref+" is immutable", map[string]string{"tag": ref})
			return
		}
		err := os.Remove(filepath.Join(r.tagsDir(name), ref))
		if errors.Is(err, os.ErrNotExist) {
			unknown()
			return
		}
		if err != nil {
			r.storageError(w, req, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if !exists(r.revisionLink(name, d)) {
		unknown()
		return
	}
	tags, err := r.listTags(name)
	if err != nil {
		r.storageError(w, req, err)
		return
	}
	for _, t := range tags {
		if td, err := r.readTag(name, t); err == nil && td == d && r.immutable(name, t) {
			writeError(w, http.StatusForbidden, CodeDenied, "manifest is named by immutable tag "+t, map[string]string{"tag": t})
			return
		}
	}
	for _, t := range tags {
		if td, err := r.readTag(name, t); err == nil && td == d {
			if err := os.Remove(filepath.Join(r.tagsDir(name), t)); err != nil {
				r.storageError(w, req, err)
				return
			}
		}
	}
	if err := os.Remove(r.revisionLink(name, d)); err != nil {
		r.storageError(w, req, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
