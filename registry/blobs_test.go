package registry

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBase(t *testing.T) {
	s := newServer(t)
	r := s.do(t, "GET", "/v2/", nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Docker-Distribution-API-Version", "registry/2.0")
	if string(r.body) != "{}" {
		t.Fatalf("body %q", r.body)
	}
}

func TestMonolithicPushPull(t *testing.T) {
	s := newServer(t)
	data := []byte("hello, registry")
	d := digest.FromBytes(data)
	r := s.do(t, "POST", "/v2/team/app/blobs/uploads/?digest="+d.String(), data)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Location", "/v2/team/app/blobs/"+d.String())
	wantHeader(t, r, "Docker-Content-Digest", d.String())

	r = s.do(t, "HEAD", "/v2/team/app/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Length", strconv.Itoa(len(data)))
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	if len(r.body) != 0 {
		t.Fatalf("HEAD body %q", r.body)
	}

	r = s.do(t, "GET", "/v2/team/app/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Type", "application/octet-stream")
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	if !bytes.Equal(r.body, data) {
		t.Fatalf("body %q", r.body)
	}

	r = s.do(t, "GET", "/v2/team/app/blobs/"+d.String(), nil, "Range", "bytes=7-14")
	wantStatus(t, r, http.StatusPartialContent)
	wantHeader(t, r, "Content-Range", "bytes 7-14/15")
	if string(r.body) != "registry" {
		t.Fatalf("range body %q", r.body)
	}

	// Unknown blob, and the blob is not visible in another repository.
	other := digest.FromString("nope")
	wantError(t, s.do(t, "GET", "/v2/team/app/blobs/"+other.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	wantError(t, s.do(t, "GET", "/v2/other/blobs/"+d.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	r = s.do(t, "HEAD", "/v2/other/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusNotFound)

	// Monolithic push with a wrong digest stores nothing.
	r = s.do(t, "POST", "/v2/team/app/blobs/uploads/?digest="+other.String(), data)
	wantError(t, r, http.StatusBadRequest, CodeDigestInvalid)
	wantError(t, s.do(t, "GET", "/v2/team/app/blobs/"+other.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	assertNoUploads(t, s)
}

// assertNoUploads checks that no session or temp file is left behind.
func assertNoUploads(t *testing.T, s *testServer) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.dir, "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("leftover upload file %s", e.Name())
	}
}

func TestChunkedUpload(t *testing.T) {
	s := newServer(t)
	chunks := [][]byte{[]byte("first-"), []byte("second-"), []byte("third")}
	all := bytes.Join(chunks, nil)
	d := digest.FromBytes(all)
	loc := s.startUpload(t, "app")
	off := 0
	for _, c := range chunks {
		cr := strconv.Itoa(off) + "-" + strconv.Itoa(off+len(c)-1)
		r := s.do(t, "PATCH", loc, c, "Content-Range", cr, "Content-Type", "application/octet-stream")
		wantStatus(t, r, http.StatusAccepted)
		off += len(c)
		wantHeader(t, r, "Range", "0-"+strconv.Itoa(off-1))
		wantHeader(t, r, "Location", loc)
	}
	r := s.do(t, "GET", loc, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-"+strconv.Itoa(len(all)-1))

	r = s.do(t, "PUT", loc+"?digest="+d.String(), nil)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Location", "/v2/app/blobs/"+d.String())
	wantHeader(t, r, "Docker-Content-Digest", d.String())

	r = s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	if !bytes.Equal(r.body, all) {
		t.Fatalf("body %q", r.body)
	}
	wantError(t, s.do(t, "GET", loc, nil), http.StatusNotFound, CodeBlobUploadUnknown)
	assertNoUploads(t, s)
}

func TestChunkWithoutRangeAndFinalChunkInPut(t *testing.T) {
	s := newServer(t)
	loc := s.startUpload(t, "app")
	r := s.do(t, "PATCH", loc, []byte("abc"))
	wantStatus(t, r, http.StatusAccepted)
	wantHeader(t, r, "Range", "0-2")
	d := digest.FromString("abcdef")
	r = s.do(t, "PUT", loc+"?digest="+d.String(), []byte("def"), "Content-Range", "3-5")
	wantStatus(t, r, http.StatusCreated)
	r = s.do(t, "GET", "/v2/app/blobs/"+d.String(), nil)
	if string(r.body) != "abcdef" {
		t.Fatalf("body %q", r.body)
	}
}

func TestOutOfOrderChunk(t *testing.T) {
	s := newServer(t)
	loc := s.startUpload(t, "app")
	wantStatus(t, s.do(t, "PATCH", loc, []byte("01234"), "Content-Range", "0-4"), http.StatusAccepted)
	r := s.do(t, "PATCH", loc, []byte("abcde"), "Content-Range", "10-14")
	wantError(t, r, http.StatusRequestedRangeNotSatisfiable, CodeBlobUploadInvalid)
	wantHeader(t, r, "Range", "0-4")
	// A chunk shorter than its Content-Range is rejected and cut off again.
	r = s.do(t, "PATCH", loc, []byte("56"), "Content-Range", "5-9")
	wantError(t, r, http.StatusBadRequest, CodeBlobUploadInvalid)
	// A range whose length overflows is refused, not taken as "no range" (found by
	// FuzzParseContentRange's review).
	r = s.do(t, "PATCH", loc, []byte("56789"), "Content-Range", "5-9223372036854775807")
	wantError(t, r, http.StatusRequestedRangeNotSatisfiable, CodeBlobUploadInvalid)
	r = s.do(t, "GET", loc, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-4")
}

func TestWrongDigestDiscardsUpload(t *testing.T) {
	s := newServer(t)
	loc := s.startUpload(t, "app")
	data := []byte("real content")
	wantStatus(t, s.do(t, "PATCH", loc, data), http.StatusAccepted)
	claimed := digest.FromString("something else")
	r := s.do(t, "PUT", loc+"?digest="+claimed.String(), nil)
	wantError(t, r, http.StatusBadRequest, CodeDigestInvalid)
	wantError(t, s.do(t, "GET", "/v2/app/blobs/"+claimed.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	wantError(t, s.do(t, "GET", "/v2/app/blobs/"+digest.FromBytes(data).String(), nil), http.StatusNotFound, CodeBlobUnknown)
	wantError(t, s.do(t, "GET", loc, nil), http.StatusNotFound, CodeBlobUploadUnknown)
	if _, err := os.Stat(s.reg.blobPath(claimed)); err == nil {
		t.Fatal("mismatched content stored under the claimed digest")
	}
	// Missing and malformed digests.
	loc = s.startUpload(t, "app")
	wantError(t, s.do(t, "PUT", loc, data), http.StatusBadRequest, CodeDigestInvalid)
	wantError(t, s.do(t, "PUT", loc+"?digest=sha256:xyz", data), http.StatusBadRequest, CodeDigestInvalid)
}

func TestCancelUpload(t *testing.T) {
	s := newServer(t)
	loc := s.startUpload(t, "app")
	wantStatus(t, s.do(t, "PATCH", loc, []byte("data")), http.StatusAccepted)
	wantStatus(t, s.do(t, "DELETE", loc, nil), http.StatusNoContent)
	wantError(t, s.do(t, "GET", loc, nil), http.StatusNotFound, CodeBlobUploadUnknown)
	wantError(t, s.do(t, "DELETE", loc, nil), http.StatusNotFound, CodeBlobUploadUnknown)
	wantError(t, s.do(t, "PATCH", loc, []byte("x")), http.StatusNotFound, CodeBlobUploadUnknown)
	wantError(t, s.do(t, "GET", "/v2/app/blobs/uploads/not-a-session", nil), http.StatusNotFound, CodeBlobUploadUnknown)
	assertNoUploads(t, s)

	// A session belongs to the repository that opened it.
	loc = s.startUpload(t, "app")
	other := "/v2/other/blobs/uploads/" + loc[len("/v2/app/blobs/uploads/"):]
	wantError(t, s.do(t, "GET", other, nil), http.StatusNotFound, CodeBlobUploadUnknown)
}

func TestMount(t *testing.T) {
	s := newServer(t)
	d := s.pushBlob(t, "src", []byte("shared layer"))
	r := s.do(t, "POST", "/v2/dst/blobs/uploads/?mount="+d.String()+"&from=src", nil)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Location", "/v2/dst/blobs/"+d.String())
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	r = s.do(t, "GET", "/v2/dst/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != "shared layer" {
		t.Fatalf("body %q", r.body)
	}
	// Not in the source repository: falls back to a new upload session.
	r = s.do(t, "POST", "/v2/third/blobs/uploads/?mount="+d.String()+"&from=nothere", nil)
	wantStatus(t, r, http.StatusAccepted)
	wantHeader(t, r, "Range", "0-0")
	wantError(t, s.do(t, "GET", "/v2/third/blobs/"+d.String(), nil), http.StatusNotFound, CodeBlobUnknown)
}

func TestDeleteBlob(t *testing.T) {
	s := newServer(t)
	d := s.pushBlob(t, "a", []byte("bytes"))
	s.do(t, "POST", "/v2/b/blobs/uploads/?mount="+d.String()+"&from=a", nil)
	wantStatus(t, s.do(t, "DELETE", "/v2/a/blobs/"+d.String(), nil), http.StatusAccepted)
	wantError(t, s.do(t, "GET", "/v2/a/blobs/"+d.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	wantError(t, s.do(t, "DELETE", "/v2/a/blobs/"+d.String(), nil), http.StatusNotFound, CodeBlobUnknown)
	// Still visible where it was mounted.
	wantStatus(t, s.do(t, "HEAD", "/v2/b/blobs/"+d.String(), nil), http.StatusOK)
}

func TestConcurrentPushSameBlob(t *testing.T) {
	s := newServer(t)
	data := bytes.Repeat([]byte("layer"), 1<<14)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := "repo" + strconv.Itoa(i%3)
			if i%2 == 0 {
				s.pushBlob(t, name, data)
				return
			}
			loc := s.startUpload(t, name)
			s.do(t, "PATCH", loc, data[:1000])
			r := s.do(t, "PUT", loc+"?digest="+digest.FromBytes(data).String(), data[1000:])
			wantStatus(t, r, http.StatusCreated)
		})
	}
	wg.Wait()
	r := s.do(t, "GET", "/v2/repo1/blobs/"+digest.FromBytes(data).String(), nil)
	if !bytes.Equal(r.body, data) {
		t.Fatal("blob corrupted by concurrent pushes")
	}
	assertNoUploads(t, s)
}
