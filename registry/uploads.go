package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
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

// upload is what the server remembers of an upload session besides its
// files: a lock, so chunks of one upload never interleave, and the state of
// the hash of the bytes received so far, so that closing the session need not
// read them again. The client names the digest, and so its algorithm, only
// when it closes the session: the bytes are hashed with SHA-256, the common
// case, as they arrive, and read again to be hashed with SHA-512 when the
// closing PUT names a sha512 digest.
type upload struct {
	mu  sync.Mutex
	h   hash.Hash // the SHA-256 of the session's first off bytes; nil: unknown
	off int64
}

// hashAt returns the hash of the session's first size bytes, when known, or
// nil (the server restarted since, or a chunk failed).
func (u *upload) hashAt(size int64) hash.Hash {
	switch {
	case u.h != nil && u.off == size:
		return u.h
	case size == 0:
		u.h, u.off = sha256.New(), 0
		return u.h
	}
	return nil
}

// lockSession locks upload session id and returns its state.
func (r *Registry) lockSession(id string) *upload {
	r.upMu.Lock()
	u, ok := r.uploads[id]
	if !ok {
		u = &upload{}
		r.uploads[id] = u
	}
	r.upMu.Unlock()
	u.mu.Lock()
	return u
}

// lockUpload serialises requests on one upload session.
func (r *Registry) lockUpload(id string) func() {
	return r.lockSession(id).mu.Unlock
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
		// Without from, mount any blob the registry holds: access control is
		// per registry, not per repository, so this reveals nothing.
		from := q.Get("from")
		if (from == "" && exists(r.blobPath(d))) || (nameRE.MatchString(from) && r.hasBlob(from, d)) {
			r.linkAndAnswer(w, req, name, d)
			return
		}
		// Not mountable: fall back to a new upload session.
	} else if ds := q.Get("digest"); ds != "" {
		d, ok := parseDigest(w, ds)
		if !ok {
			return
		}
		if err := r.storeBlob(req.Body, d); err != nil {
			if errors.Is(err, errDigestMismatch) {
				writeError(w, http.StatusBadRequest, CodeDigestInvalid, "content does not match digest", map[string]string{"digest": d.String()})
				return
			}
			if full(err) {
				r.storageError(w, req, err)
				return
			}
			r.logger().Warn("registry: upload failed", "path", req.URL.Path, "err", err)
			writeError(w, http.StatusBadRequest, CodeBlobUploadInvalid, "upload failed", nil)
			return
		}
		r.linkAndAnswer(w, req, name, d)
		return
	}
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	st, _ := json.Marshal(uploadState{Repo: name})
	if err := os.WriteFile(r.uploadData(id), nil, 0o600); err != nil {
		r.storageError(w, req, err)
		return
	}
	if err := atomicfile.Write(r.uploadState(id), st, 0o600); err != nil {
		os.Remove(r.uploadData(id))
		r.storageError(w, req, err)
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
	u := r.lockSession(id)
	defer u.mu.Unlock()
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
		size, ok := r.appendChunk(w, req, name, id, size, u)
		if !ok {
			return
		}
		h.Set("Location", uploadLocation(name, id))
		h.Set("Range", rangeHeader(size))
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPut:
		r.finishUpload(w, req, name, id, size, u)
	}
}

// finishUpload appends an optional last chunk, verifies the digest of the
// whole upload and moves it into the blob store. On a mismatch the session is
// discarded. A sha256 upload was hashed as it arrived; only after a restart
// (or a failed chunk) is the data file read and hashed again. A sha512 upload
// is read and hashed when it closes.
func (r *Registry) finishUpload(w http.ResponseWriter, req *http.Request, name, id string, size int64, u *upload) {
	ds := req.URL.Query().Get("digest")
	if ds == "" {
		writeError(w, http.StatusBadRequest, CodeDigestInvalid, "digest parameter required", nil)
		return
	}
	d, ok := parseDigest(w, ds)
	if !ok {
		return
	}
	streamed := d.Algorithm() == digest.SHA256 // the algorithm u hashes with
	if streamed && u.hashAt(size) == nil {
		h, err := hashFileStart(r.uploadData(id), size, digest.SHA256)
		if err != nil {
			r.storageError(w, req, err)
			return
		}
		u.h, u.off = h, size
	}
	if req.ContentLength != 0 {
		if size, ok = r.appendChunk(w, req, name, id, size, u); !ok {
			return
		}
	}
	var got digest.Digest
	if streamed {
		got = digest.NewDigest(digest.SHA256, u.hashAt(size))
	} else {
		h, err := hashFileStart(r.uploadData(id), size, d.Algorithm())
		if err != nil {
			r.storageError(w, req, err)
			return
		}
		got = digest.NewDigest(d.Algorithm(), h)
	}
	if got != d {
		r.dropUpload(id)
		writeError(w, http.StatusBadRequest, CodeDigestInvalid, "content does not match digest", map[string]string{"digest": d.String(), "actual": got.String()})
		return
	}
	// Chunks are not fsynced one by one: the blob must be durable before it
	// is placed, the session's bytes need not be (a crash shows up as a digest
	// mismatch, and the client pushes again).
	if err := syncFile(r.uploadData(id)); err != nil {
		r.storageError(w, req, err)
		return
	}
	if err := r.placeBlob(r.uploadData(id), d); err != nil {
		r.storageError(w, req, err)
		return
	}
	r.meta.Lock()
	err := r.linkBlob(name, d)
	r.meta.Unlock()
	r.dropUpload(id)
	if err != nil {
		r.storageError(w, req, err)
		return
	}
	blobCreated(w, name, d)
}

// appendChunk writes the request body at offset size, honouring an optional
// Content-Range "start-end", and hashes it into u when u's hash covers the
// first size bytes. A failed or short chunk is cut off again, so the session
// stays at its old offset and hash. It answers the error itself.
func (r *Registry) appendChunk(w http.ResponseWriter, req *http.Request, name, id string, size int64, u *upload) (int64, bool) {
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
		r.storageError(w, req, err)
		return size, false
	}
	defer f.Close()
	var src io.Reader = req.Body
	if want >= 0 {
		src = io.LimitReader(req.Body, want+1)
	}
	h := u.hashAt(size)
	var before hash.Hash // h as it was, to go back to if the chunk fails
	if c, ok := h.(hash.Cloner); ok {
		if hc, err := c.Clone(); err == nil {
			before = hc
		}
	}
	n, err := receive(f, size, src, h)
	if err == nil && want >= 0 && n != want {
		err = fmt.Errorf("chunk has %d bytes, Content-Range says %d", n, want)
	}
	if err != nil {
		f.Truncate(size)
		u.h, u.off = before, size
		if full(err) {
			r.storageError(w, req, err)
			return size, false
		}
		r.logger().Warn("registry: chunk upload failed", "path", req.URL.Path, "err", err)
		writeError(w, http.StatusBadRequest, CodeBlobUploadInvalid, "chunk upload failed", map[string]string{"reason": err.Error()})
		return size, false
	}
	if h != nil {
		u.off = size + n
	}
	return size + n, true
}

// storeBlob streams src into a temp file while hashing it and, when it hashes
// to want, moves it into the blob store (a monolithic POST). Nothing becomes
// visible otherwise.
func (r *Registry) storeBlob(src io.Reader, want digest.Digest) error {
	f, err := os.CreateTemp(filepath.Join(r.dir, "uploads"), ".blob-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op once placed
	h := want.Algorithm().Hash()
	_, err = receive(f, 0, src, h)
	if got := digest.NewDigest(want.Algorithm(), h); err == nil && got != want {
		err = fmt.Errorf("got %s, want %s: %w", got, want, errDigestMismatch)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return r.placeBlob(f.Name(), want)
}

// receive writes src to f from offset off on and returns how many bytes it
// wrote. When h is not nil, a goroutine hashes each buffer once written, so
// hashing overlaps with receiving the next one.
func receive(f *os.File, off int64, src io.Reader, h hash.Hash) (int64, error) {
	type piece struct {
		bp *[]byte
		n  int
	}
	const nbuf = 3
	free := make(chan *[]byte, nbuf)
	for range nbuf {
		free <- copyBufs.Get().(*[]byte)
	}
	hashq := make(chan piece, nbuf)
	var wg sync.WaitGroup
	if h != nil {
		wg.Go(func() {
			for p := range hashq {
				h.Write((*p.bp)[:p.n])
				free <- p.bp
			}
		})
	}
	var n int64
	var err error
	for {
		bp := <-free
		k, rerr := fill(src, *bp)
		if k > 0 {
			if _, err = f.WriteAt((*bp)[:k], off+n); err != nil {
				free <- bp
				break
			}
			n += int64(k)
		}
		if h != nil && k > 0 {
			hashq <- piece{bp, k}
		} else {
			free <- bp
		}
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			break
		}
	}
	close(hashq)
	wg.Wait()
	for range nbuf {
		copyBufs.Put(<-free)
	}
	return n, err
}

// fill reads from src until buf is full or src fails (io.EOF at its end).
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := src.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// hashFileStart returns the hash state, under algorithm alg, of the first
// size bytes of the file at path.
func hashFileStart(path string, size int64, alg digest.Algorithm) (hash.Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	h := alg.Hash()
	if n, err := io.CopyBuffer(h, io.LimitReader(f, size), *bp); err != nil || n != size {
		return nil, fmt.Errorf("hashing upload: %d of %d bytes: %v", n, size, err)
	}
	return h, nil
}

// syncFile flushes the file at path to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
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
	// end+1 must not overflow: the chunk's length is end-start+1.
	if err1 != nil || err2 != nil || start < 0 || end == math.MaxInt64 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	return start, end, nil
}

// linkAndAnswer makes blob d visible in repository name and answers 201 Created.
func (r *Registry) linkAndAnswer(w http.ResponseWriter, req *http.Request, name string, d digest.Digest) {
	r.meta.Lock()
	err := r.linkBlob(name, d)
	r.meta.Unlock()
	if err != nil {
		r.storageError(w, req, err)
		return
	}
	blobCreated(w, name, d)
}
