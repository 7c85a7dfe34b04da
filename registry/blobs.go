package registry

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

const (
	// verifyWhole bounds the blobs a full GET reads into memory and checks
	// before sending a byte. Larger ones are checked while they stream.
	verifyWhole = 4 << 20
	// copyBufSize is the buffer blobs are pushed and pulled through.
	copyBufSize = 1 << 20
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

func (r *Registry) logger() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// serveBlob handles HEAD, GET and DELETE on /v2/<name>/blobs/<digest>.
//
// A full GET never sends content that does not match the digest: a blob of up
// to verifyWhole bytes is read and checked first, and answers 404 BLOB_UNKNOWN
// when it is corrupt; a larger one is hashed while it streams and, on a
// mismatch, the connection is cut before its last bytes, so the client sees a
// short body rather than a complete bad one. Either way the corrupt file is
// moved to corrupt/ and the blob is unknown until pushed again. HEAD reads
// nothing. Range requests of large blobs are served unverified: checking one
// range means reading the whole blob, and clients that fetch ranges (resumed
// or parallel downloads) check the assembled blob against its digest anyway.
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
			r.storageError(w, req, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	r.wantLayer(name, d) // a client that finds the blob may reference it later (gc.go)
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
	fi, err := f.Stat()
	if err != nil {
		r.storageError(w, req, err)
		return
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	// Blobs are immutable; ServeContent handles HEAD, Range (206), conditional
	// requests and Content-Length. A zero modtime keeps Last-Modified out.
	switch {
	case req.Method == http.MethodHead, req.Header.Get("Range") != "" && fi.Size() > verifyWhole:
		http.ServeContent(w, req, "", time.Time{}, f)
	case fi.Size() <= verifyWhole:
		b := make([]byte, fi.Size())
		if _, err := io.ReadFull(f, b); err != nil {
			r.storageError(w, req, err)
			return
		}
		if got := d.Algorithm().FromBytes(b); got != d {
			r.quarantine(f, d, got.String())
			writeError(w, http.StatusNotFound, CodeBlobUnknown, "stored blob is corrupt (its content does not match its digest) and was removed; push it again",
				map[string]string{"digest": d.String()})
			return
		}
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(b))
	default:
		if etagMatch(req.Header.Get("If-None-Match"), h.Get("ETag")) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		r.streamVerified(w, f, fi, d)
	}
}

// etagMatch reports whether an If-None-Match header lists etag (or is "*").
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// streamVerified sends f, the blob d of size bytes, with status 200. The
// kernel copies the file to the connection (sendfile) while a verification
// job reads it again and hashes it; the last verifyTail bytes are sent only
// once the job found that the whole file matches d. Otherwise the file is
// quarantined and the response aborted short of its Content-Length. So every
// full GET is checked, yet sending and hashing overlap, and concurrent GETs of
// a blob share one job instead of hashing it once each.
func (r *Registry) streamVerified(w http.ResponseWriter, f *os.File, fi os.FileInfo, d digest.Digest) {
	job := r.verification(fi, d)
	size := fi.Size()
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	tail := min(size, verifyTail)
	if _, err := io.CopyN(w, f, size-tail); err != nil {
		return // the client went away, or the file shrank: the response is short either way
	}
	<-job.done
	if job.err != nil {
		panic(http.ErrAbortHandler) // the job logged it
	}
	io.CopyN(w, f, tail)
}

// verifyTail is how much of a large blob is held back until it is verified.
const verifyTail = 64 << 10

// verifyJob hashes one blob file for every GET streaming it meanwhile.
type verifyJob struct {
	fi   os.FileInfo   // the file hashed
	done chan struct{} // closed when err is set
	err  error         // nil: the file matches its digest
}

var (
	verifyMu   sync.Mutex
	verifyJobs = map[string]*verifyJob{} // by blob path
)

// verification returns the running job verifying the blob file fi of d, or
// starts one.
func (r *Registry) verification(fi os.FileInfo, d digest.Digest) *verifyJob {
	path := r.blobPath(d)
	verifyMu.Lock()
	defer verifyMu.Unlock()
	if j := verifyJobs[path]; j != nil && os.SameFile(j.fi, fi) {
		return j
	}
	j := &verifyJob{fi: fi, done: make(chan struct{})}
	verifyJobs[path] = j
	go func() {
		j.err = r.verify(path, fi, d)
		verifyMu.Lock()
		if verifyJobs[path] == j {
			delete(verifyJobs, path)
		}
		verifyMu.Unlock()
		close(j.done)
	}()
	return j
}

// verify hashes the blob file at path, which must still be the file fi, and
// quarantines it when it does not match d. Problems are logged here.
func (r *Registry) verify(path string, fi os.FileInfo, d digest.Digest) error {
	log := r.logger().With("digest", d.String())
	f, err := os.Open(path)
	if err != nil {
		log.Error("registry: blob vanished while being sent", "err", err)
		return err
	}
	defer f.Close()
	if cur, err := f.Stat(); err != nil || !os.SameFile(cur, fi) {
		log.Error("registry: blob replaced while being sent")
		return errors.New("blob replaced while being sent")
	}
	h := d.Algorithm().Hash()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, *bp); err != nil { // struct: no WriterTo, so bp is used
		log.Error("registry: reading blob failed", "err", err)
		return err
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		r.quarantine(f, d, got.String())
		return &corruptError{got: got}
	}
	return nil
}

// corruptError reports a stored blob whose content hashes to got.
type corruptError struct{ got digest.Digest }

func (e *corruptError) Error() string { return "content hashes to " + e.got.String() }

var quarantineMu sync.Mutex

// quarantine moves the blob file of d, whose content was read from f and
// hashes to got, to corrupt/<algorithm>-<hex> so that it is not served again
// and a new push can store a good copy. A file at the blob path that is not
// the one read (a good copy pushed meanwhile) stays.
func (r *Registry) quarantine(f *os.File, d digest.Digest, got string) {
	log := r.logger().With("digest", d.String(), "actual", got)
	quarantineMu.Lock()
	defer quarantineMu.Unlock()
	path := r.blobPath(d)
	read, err1 := f.Stat()
	cur, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(read, cur) {
		log.Error("registry: stored blob is corrupt; already moved aside")
		return
	}
	dst := filepath.Join(r.dir, "corrupt", d.Algorithm().String()+"-"+d.Encoded())
	err := os.MkdirAll(filepath.Dir(dst), 0o700)
	if err == nil {
		err = os.Rename(path, dst)
	}
	if err != nil {
		log.Error("registry: stored blob is corrupt; moving it aside failed", "err", err)
		return
	}
	log.Error("registry: stored blob is corrupt; moved aside, push it again", "moved_to", dst)
}
