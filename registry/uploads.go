package registry

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/drover-cd/drover/atomicfile"
	"github.com/opencontainers/go-digest"
)

var uploadIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// uploadState is the content of uploads/<id>.json. The session's offset is
// the size of uploads/<id>.data.
type uploadState struct {
	Repo string `json:"repo"`
}

func uploadLocation(name, id string) string { return "/v2/" + name + "/blobs/uploads/" + id }
func blobLocation(name string, d digest.Digest) string {
	return "/v2/" + name + "/blobs/" + d.String()
}

// rangeHeader renders the spec's Range header for an upload holding size bytes.
func rangeHeader(size int64) string {
	if size <= 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(size-1, 10)
}

// lockUpload serialises requests on one upload session.
func (r *Registry) lockUpload(id string) func() {
	r.upMu.Lock()
	m, ok := r.uploads[id]
	if !ok {
		m = &sync.Mutex{}
		r.uploads[id] = m
	}
	r.upMu.Unlock()
	m.Lock()
	return m.Unlock
}

// dropUpload discards a session's files and lock.
func (r *Registry) dropUpload(id string) {
	os.Remove(r.uploadState(id))
	os.Remove(r.uploadData(id))
	r.forgetLock(id)
}

// forgetLock drops the lock of a session that no longer exists. A request
// still waiting on the old lock finds the session gone, as does any later one.
func (r *Registry) forgetLock(id string) {
	r.upMu.Lock()
	delete(r.uploads, id)
	r.upMu.Unlock()
}

// blobCreated answers 201 for a blob now visible in name.
func blobCreated(w http.ResponseWriter, name string, d digest.Digest) {
	w.Header().Set("Location", blobLocation(name, d))
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// startUpload handles POST /v2/<name>/blobs/uploads/: mount, monolithic push
// or a new session.
func (r *Registry) startUpload(w http.ResponseWriter, req *http.Request, name string, _ []string) {
	if !allow(w, req, http.MethodPost) {
		return
	}
	q := req.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, ok := parseDigest(w, m)
		if !ok {
			return
		}
		if from := q.Get("from"); nameRE.MatchString(from) && r.hasBlob(from, d) {
			r.linkAndAnswer(w, name, d)
			return
		}
		// Not mountable: fall back to a new upload session.
	} else if ds := q.Get("digest"); ds != "" {
		d, ok := parseDigest(w, ds)
		if !ok {
			return
		}
		if _, err := r.writeBlob(req.Body, d); err != nil {
			if errors.Is(err, errDigestMismatch) {
				writeError(w, http.StatusBadRequest, CodeDigestInvalid, "content does not match digest", map[string]string{"digest": d.String()})
				return
			}
			writeError(w, http.StatusBadRequest, CodeBlobUploadInvalid, "upload failed", nil)
			return
		}
		r.linkAndAnswer(w, name, d)
		return
	}
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	st, _ := json.Marshal(uploadState{Repo: name})
	if err := os.WriteFile(r.uploadData(id), nil, 0o644); err != nil {
		internalError(w, err)
		return
	}
	if err := atomicfile.Write(r.uploadState(id), st, 0o644); err != nil {
		os.Remove(r.uploadData(id))
		internalError(w, err)
		return
	}
	w.Header().Set("Location", uploadLocation(name, id))
	w.Header().Set("Docker-Upload-UUID", id)
	w.Header().Set("Range", "0-0")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// serveUpload handles GET, PATCH, PUT and DELETE on an upload session.
func (r *Registry) serveUpload(w http.ResponseWriter, req *http.Request, name string, args []string) {
	if !allow(w, req, http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete) {
		return
	}
	id := args[len(args)-1]
	unknown := func() {
		writeError(w, http.StatusNotFound, CodeBlobUploadUnknown, "upload unknown", map[string]string{"uuid": id})
	}
	if !uploadIDRE.MatchString(id) {
		unknown()
		return
	}
	unlock := r.lockUpload(id)
	defer unlock()
	var st uploadState
	b, err := os.ReadFile(r.uploadState(id))
	if err != nil || json.Unmarshal(b, &st) != nil || st.Repo != name {
		if err != nil {
			r.forgetLock(id) // session ids are never reused
		}
		unknown()
		return
	}
	fi, err := os.Stat(r.uploadData(id))
	if err != nil {
		unknown()
		return
	}
	size := fi.Size()
	h := w.Header()
	h.Set("Docker-Upload-UUID", id)
	switch req.Method {
	case http.MethodGet:
		h.Set("Location", uploadLocation(name, id))
		h.Set("Range", rangeHeader(size))
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		r.dropUpload(id)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPatch:
		size, ok := r.appendChunk(w, req, name, id, size)
		if !ok {
			return
		}
		h.Set("Location", uploadLocation(name, id))
		h.Set("Range", rangeHeader(size))
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPut:
		r.finishUpload(w, req, name, id, size)
	}
}

// finishUpload appends an optional last chunk, verifies the digest of the
// whole upload and moves it into the blob store. On a mismatch the session is
// discarded.
func (r *Registry) finishUpload(w http.ResponseWriter, req *http.Request, name, id string, size int64) {
	ds := req.URL.Query().Get("digest")
	if ds == "" {
		writeError(w, http.StatusBadRequest, CodeDigestInvalid, "digest parameter required", nil)
		return
	}
	d, ok := parseDigest(w, ds)
	if !ok {
		return
	}
	if req.ContentLength != 0 {
		if _, ok := r.appendChunk(w, req, name, id, size); !ok {
			return
		}
	}
	got, _, err := hashFile(r.uploadData(id))
	if err != nil {
		internalError(w, err)
		return
	}
	if got != d {
		r.dropUpload(id)
		writeError(w, http.StatusBadRequest, CodeDigestInvalid, "content does not match digest", map[string]string{"digest": d.String(), "actual": got.String()})
		return
	}
	if err := r.placeBlob(r.uploadData(id), d); err != nil {
		internalError(w, err)
		return
	}
	r.meta.Lock()
	err = r.linkBlob(name, d)
	r.meta.Unlock()
	r.dropUpload(id)
	if err != nil {
		internalError(w, err)
		return
	}
	blobCreated(w, name, d)
}

// appendChunk writes the request body at offset size, honouring an optional
// Content-Range "start-end". A failed or short chunk is cut off again, so the
// session stays at its old offset. It answers the error itself.
func (r *Registry) appendChunk(w http.ResponseWriter, req *http.Request, name, id string, size int64) (int64, bool) {
	want := int64(-1)
	if cr := req.Header.Get("Content-Range"); cr != "" {
		start, end, err := parseContentRange(cr)
		if err != nil || start != size || end < start {
			w.Header().Set("Location", uploadLocation(name, id))
			w.Header().Set("Range", rangeHeader(size))
			writeError(w, http.StatusRequestedRangeNotSatisfiable, CodeBlobUploadInvalid, "chunk out of order", map[string]string{"range": cr})
			return size, false
		}
		want = end - start + 1
	}
	f, err := os.OpenFile(r.uploadData(id), os.O_WRONLY, 0)
	if err != nil {
		internalError(w, err)
		return size, false
	}
	defer f.Close()
	var src io.Reader = req.Body
	if want >= 0 {
		src = io.LimitReader(req.Body, want+1)
	}
	n, err := io.Copy(io.NewOffsetWriter(f, size), src)
	if err == nil && want >= 0 && n != want {
		err = fmt.Errorf("chunk has %d bytes, Content-Range says %d", n, want)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Truncate(size)
		writeError(w, http.StatusBadRequest, CodeBlobUploadInvalid, "chunk upload failed", map[string]string{"reason": err.Error()})
		return size, false
	}
	return size + n, true
}

// parseContentRange parses "start-end" (an optional "bytes " or "bytes="
// prefix is tolerated).
func parseContentRange(s string) (int64, int64, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "bytes"), "=")
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	return start, end, nil
}

// linkAndAnswer makes blob d visible in repository name and answers 201 Created.
func (r *Registry) linkAndAnswer(w http.ResponseWriter, name string, d digest.Digest) {
	r.meta.Lock()
	err := r.linkBlob(name, d)
	r.meta.Unlock()
	if err != nil {
		internalError(w, err)
		return
	}
	blobCreated(w, name, d)
}
