package registry

import (
	"net/http"
	"os"
	"time"
)

// serveBlob handles HEAD, GET and DELETE on /v2/<name>/blobs/<digest>.
func (r *Registry) serveBlob(w http.ResponseWriter, req *http.Request, name string, args []string) {
	if !allow(w, req, http.MethodGet, http.MethodHead, http.MethodDelete) {
		return
	}
	d, ok := parseDigest(w, args[0])
	if !ok {
		return
	}
	if req.Method == http.MethodDelete {
		r.meta.Lock()
		defer r.meta.Unlock()
		if !exists(r.layerLink(name, d)) {
			writeError(w, http.StatusNotFound, CodeBlobUnknown, "blob unknown to repository", map[string]string{"digest": d.String()})
			return
		}
		if err := os.Remove(r.layerLink(name, d)); err != nil {
			internalError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if !exists(r.layerLink(name, d)) {
		writeError(w, http.StatusNotFound, CodeBlobUnknown, "blob unknown to repository", map[string]string{"digest": d.String()})
		return
	}
	f, err := os.Open(r.blobPath(d))
	if err != nil {
		writeError(w, http.StatusNotFound, CodeBlobUnknown, "blob unknown to registry", map[string]string{"digest": d.String()})
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	// Blobs are immutable; ServeContent handles HEAD, Range (206) and
	// Content-Length. A zero modtime keeps Last-Modified out.
	http.ServeContent(w, req, "", time.Time{}, f)
}
