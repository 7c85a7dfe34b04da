package registry

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// captureLog sends the registry's log to a buffer.
func captureLog(s *testServer) *syncBuffer {
	buf := &syncBuffer{}
	s.reg.Log = slog.New(slog.NewTextHandler(buf, nil))
	return buf
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// flipByte corrupts the stored bytes of d at offset off, keeping the size.
func flipByte(t *testing.T, s *testServer, d digest.Digest, off int64) {
	t.Helper()
	f, err := os.OpenFile(s.reg.blobPath(d), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// wantQuarantined checks that the blob file of d was moved to corrupt/.
func wantQuarantined(t *testing.T, s *testServer, d digest.Digest, log *syncBuffer) {
	t.Helper()
	if exists(s.reg.blobPath(d)) {
		t.Fatal("corrupt blob still in blobs/")
	}
	if !exists(filepath.Join(s.dir, "corrupt", d.Algorithm().String()+"-"+d.Encoded())) {
		t.Fatal("corrupt blob not in corrupt/")
	}
	if l := log.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "corrupt") || !strings.Contains(l, d.String()) {
		t.Fatalf("no error logged: %q", l)
	}
}

func TestCorruptSmallBlobIsNotServed(t *testing.T) {
	for _, hdr := range [][]string{nil, {"Range", "bytes=0-99"}} {
		s := newServer(t)
		log := captureLog(s)
		data := randomBytes(100_000, 1)
		d := s.pushBlob(t, "app", data)
		flipByte(t, s, d, 5000)
		// HEAD reads nothing, so it does not notice.
		wantStatus(t, s.do(t, "HEAD", "/v2/app/blobs/"+d.String(), nil), http.StatusOK)

		r := s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil, hdr...)
		wantError(t, r, http.StatusNotFound, CodeBlobUnknown)
		if !strings.Contains(string(r.body), "corrupt") {
			t.Fatalf("body %s", r.body)
		}
		wantQuarantined(t, s, d, log)
		wantError(t, s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil), http.StatusNotFound, CodeBlobUnknown)
		wantStatus(t, s.do(t, "HEAD", "/v2/app/blobs/"+d.String(), nil), http.StatusNotFound)

		// Pushing it again stores a good copy.
		s.pushBlob(t, "app", data)
		r = s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil)
		wantStatus(t, r, http.StatusOK)
		if !bytes.Equal(r.body, data) {
			t.Fatal("re-pushed blob differs")
		}
	}
}

// getRaw GETs path and returns the response and whatever of the body arrived
// before the first read error.
func getRaw(t *testing.T, s *testServer, path string) (*http.Response, []byte, error) {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestCorruptLargeBlobIsCutShort(t *testing.T) {
	size := verifyWhole + 3*copyBufSize + 123 // several buffers and a short last one
	for _, off := range []int64{0, int64(size / 2), int64(size - 1)} {
		t.Run(strconv.FormatInt(off, 10), func(t *testing.T) {
			s := newServer(t)
			log := captureLog(s)
			data := randomBytes(size, uint64(off))
			d := s.pushBlob(t, "app", data)
			// Good content streams whole.
			resp, b, err := getRaw(t, s, "/v2/app/blobs/"+d.String())
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(b, data) {
				t.Fatalf("good blob: status %d, %d bytes, %v", resp.StatusCode, len(b), err)
			}

			flipByte(t, s, d, off)
			resp, b, err = getRaw(t, s, "/v2/app/blobs/"+d.String())
			if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(size) {
				t.Fatalf("status %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) || len(b) >= size {
				t.Fatalf("corrupt blob: got %d of %d bytes, err %v; want a short body", len(b), size, err)
			}
			wantQuarantined(t, s, d, log)
			wantError(t, s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil), http.StatusNotFound, CodeBlobUnknown)

			s.pushBlob(t, "app", data)
			resp, b, err = getRaw(t, s, "/v2/app/blobs/"+d.String())
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(b, data) {
				t.Fatalf("re-pushed blob: status %d, %d bytes, %v", resp.StatusCode, len(b), err)
			}
		})
	}
}

// Ranges of large blobs are served from disk as they are (see serveBlob), and
// an If-None-Match that matches answers 304 without reading.
func TestLargeBlobRangeAndConditional(t *testing.T) {
	s := newServer(t)
	data := randomBytes(verifyWhole+10, 7)
	d := s.pushBlob(t, "app", data)
	r := s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil, "Range", "bytes=100-199")
	wantStatus(t, r, http.StatusPartialContent)
	if !bytes.Equal(r.body, data[100:200]) {
		t.Fatal("range body differs")
	}
	r = s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil, "If-None-Match", `"`+d.String()+`"`)
	wantStatus(t, r, http.StatusNotModified)
	r = s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil, "If-None-Match", `"sha256:other"`)
	wantStatus(t, r, http.StatusOK)
	if !bytes.Equal(r.body, data) {
		t.Fatal("body differs")
	}
	r = s.do(t, "HEAD", "/v2/app/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Length", strconv.Itoa(len(data)))
}

// A corrupt file replaced by a good copy after a GET opened it stays in place.
func TestQuarantineKeepsNewCopy(t *testing.T) {
	s := newServer(t)
	log := captureLog(s)
	data := []byte("some blob")
	d := s.pushBlob(t, "app", data)
	f, err := os.Open(s.reg.blobPath(d))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The file f read is moved away and a good copy placed meanwhile.
	if err := os.Rename(s.reg.blobPath(d), filepath.Join(s.dir, "old")); err != nil {
		t.Fatal(err)
	}
	s.pushBlob(t, "app", data)
	s.reg.quarantine(f, d, "sha256:whatever")
	if !exists(s.reg.blobPath(d)) {
		t.Fatal("the good copy was moved aside")
	}
	if !strings.Contains(log.String(), "corrupt") {
		t.Fatalf("log %q", log.String())
	}
}

func TestCorruptManifestIsNotServed(t *testing.T) {
	s := newServer(t)
	log := captureLog(s)
	m := imageManifest(t, s, "app", "layer")
	d := digest.FromBytes(m)
	wantStatus(t, s.putManifest(t, "app", "v1", manifestType, m), http.StatusCreated)
	flipByte(t, s, d, 10)
	wantStatus(t, s.do(t, "HEAD", "/v2/app/manifests/v1", nil), http.StatusOK) // HEAD reads nothing

	r := s.do(t, "GET", "/v2/app/manifests/v1", nil)
	wantError(t, r, http.StatusNotFound, CodeManifestUnknown)
	if !strings.Contains(string(r.body), "corrupt") {
		t.Fatalf("body %s", r.body)
	}
	wantQuarantined(t, s, d, log)
	for _, ref := range []string{"v1", d.String()} {
		wantError(t, s.do(t, "GET", "/v2/app/manifests/"+ref, nil), http.StatusNotFound, CodeManifestUnknown)
		wantStatus(t, s.do(t, "HEAD", "/v2/app/manifests/"+ref, nil), http.StatusNotFound)
	}

	wantStatus(t, s.putManifest(t, "app", "v1", manifestType, m), http.StatusCreated)
	for _, ref := range []string{"v1", d.String()} {
		r = s.do(t, "GET", "/v2/app/manifests/"+ref, nil)
		wantStatus(t, r, http.StatusOK)
		if !bytes.Equal(r.body, m) {
			t.Fatalf("body %s", r.body)
		}
	}
}

// Uploads are hashed as they arrive, across PATCHes and the final PUT, with
// buffers of copyBufSize.
func TestLargeUploads(t *testing.T) {
	s := newServer(t)
	data := randomBytes(3*copyBufSize+777, 3)
	d := digest.FromBytes(data)

	// Monolithic POST, then a wrong digest.
	s.pushBlob(t, "mono", data)
	r := s.do(t, "POST", "/v2/mono/blobs/uploads/?digest="+digest.FromString("x").String(), data)
	wantError(t, r, http.StatusBadRequest, CodeDigestInvalid)

	// POST, then PUT with the whole body.
	loc := s.startUpload(t, "put")
	wantStatus(t, s.do(t, "PUT", loc+"?digest="+d.String(), data), http.StatusCreated)

	// Uneven chunks, the last one in the PUT.
	loc = s.startUpload(t, "chunks")
	cuts := []int{0, 1, copyBufSize + 5, 2*copyBufSize + 9, len(data) - 3}
	for i := 0; i+1 < len(cuts); i++ {
		r := s.do(t, "PATCH", loc, data[cuts[i]:cuts[i+1]], "Content-Range", strconv.Itoa(cuts[i])+"-"+strconv.Itoa(cuts[i+1]-1))
		wantStatus(t, r, http.StatusAccepted)
		wantHeader(t, r, "Range", "0-"+strconv.Itoa(cuts[i+1]-1))
	}
	wantStatus(t, s.do(t, "PUT", loc+"?digest="+d.String(), data[len(data)-3:]), http.StatusCreated)

	// A wrong digest after chunks discards the session.
	loc = s.startUpload(t, "chunks")
	wantStatus(t, s.do(t, "PATCH", loc, data), http.StatusAccepted)
	r = s.do(t, "PUT", loc+"?digest="+digest.FromBytes(data[1:]).String(), nil)
	wantError(t, r, http.StatusBadRequest, CodeDigestInvalid)
	wantError(t, s.do(t, "GET", loc, nil), http.StatusNotFound, CodeBlobUploadUnknown)

	for _, repo := range []string{"mono", "put", "chunks"} {
		r := s.do(t, "GET", "/v2/"+repo+"/blobs/"+d.String(), nil)
		wantStatus(t, r, http.StatusOK)
		if !bytes.Equal(r.body, data) {
			t.Fatalf("%s: blob differs", repo)
		}
	}
	assertNoUploads(t, s)
}

// failingBody yields data and then fails, as a client that goes away.
type failingBody struct{ r io.Reader }

func (b *failingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// A chunk that breaks off is cut off again and the session's hash goes back
// to where it was, so the client can send the chunk again.
func TestBrokenChunkKeepsHash(t *testing.T) {
	s := newServer(t)
	data := randomBytes(2*copyBufSize+100, 4)
	d := digest.FromBytes(data)
	loc := s.startUpload(t, "app")
	wantStatus(t, s.do(t, "PATCH", loc, data[:1000]), http.StatusAccepted)

	req := httptest.NewRequest("PATCH", loc, &failingBody{bytes.NewReader(data[1000 : copyBufSize+50])})
	rec := httptest.NewRecorder()
	s.reg.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("broken chunk: %d %s", rec.Code, rec.Body)
	}
	r := s.do(t, "GET", loc, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-999")

	wantStatus(t, s.do(t, "PATCH", loc, data[1000:]), http.StatusAccepted)
	wantStatus(t, s.do(t, "PUT", loc+"?digest="+d.String(), nil), http.StatusCreated)
	r = s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil)
	if !bytes.Equal(r.body, data) {
		t.Fatal("blob differs")
	}
}

// A registry that did not see a session's chunks (the server restarted) hashes
// the data file at PUT.
func TestUploadAcrossRestart(t *testing.T) {
	s := newServer(t)
	data := randomBytes(copyBufSize+300, 5)
	d := digest.FromBytes(data)
	loc := s.startUpload(t, "app")
	wantStatus(t, s.do(t, "PATCH", loc, data[:copyBufSize]), http.StatusAccepted)

	reg, err := New(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	s2 := httptest.NewServer(reg)
	defer s2.Close()
	next := &testServer{Server: s2, reg: reg, dir: s.dir}
	wantStatus(t, next.do(t, "PUT", loc+"?digest="+d.String(), data[copyBufSize:]), http.StatusCreated)
	r := next.do(t, "GET", "/v2/app/blobs/"+d.String(), nil)
	if !bytes.Equal(r.body, data) {
		t.Fatal("blob differs")
	}

	// And it still notices a wrong digest.
	loc = next.startUpload(t, "app")
	wantStatus(t, next.do(t, "PATCH", loc, data), http.StatusAccepted)
	reg3, _ := New(s.dir)
	s3 := httptest.NewServer(reg3)
	defer s3.Close()
	last := &testServer{Server: s3, reg: reg3, dir: s.dir}
	wantError(t, last.do(t, "PUT", loc+"?digest="+digest.FromBytes(data[1:]).String(), nil), http.StatusBadRequest, CodeDigestInvalid)
}

// The referrers list leaves out a referrer whose stored manifest is corrupt.
func TestReferrersSkipCorruptManifest(t *testing.T) {
	s := newServer(t)
	subject := digest.FromString("subject")
	cd := s.pushBlob(t, "app", []byte("{}"))
	var ds []digest.Digest
	for _, at := range []string{"application/a", "application/b"} {
		m := mustJSON(t, map[string]any{
			"schemaVersion": 2, "mediaType": manifestType, "artifactType": at,
			"config":  map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": 2},
			"layers":  []any{},
			"subject": map[string]any{"mediaType": manifestType, "digest": subject, "size": 7},
		})
		wantStatus(t, s.putManifest(t, "app", digest.FromBytes(m).String(), manifestType, m), http.StatusCreated)
		ds = append(ds, digest.FromBytes(m))
	}
	flipByte(t, s, ds[0], 3)
	r := s.do(t, "GET", "/v2/app/referrers/"+subject.String(), nil)
	wantStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.body), ds[0].String()) || !strings.Contains(string(r.body), ds[1].String()) {
		t.Fatalf("referrers %s", r.body)
	}
}
