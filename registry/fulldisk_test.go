package registry

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/drover-cd/drover/internal/fulldisk"
)

// On a full disk an upload gets 507 saying so, the server logs it, what was stored stays
// intact, and the same push works once there is space again.
func TestFullDiskAnswers507AndLosesNothing(t *testing.T) {
	dir := fulldisk.Mount(t, 1<<20)
	s := newServerIn(t, dir)
	log := captureLog(s)
	kept := randomBytes(10_000, 1)
	keptDigest := s.pushBlob(t, "base/a", kept)
	loc := s.startUpload(t, "base/b")
	filler := fulldisk.Fill(t, dir)

	data := randomBytes(256<<10, 2)
	d := digest.FromBytes(data)
	isFull := func(what string, r result) {
		t.Helper()
		if r.status != http.StatusInsufficientStorage || !strings.Contains(string(r.body), "no space left on device") {
			t.Errorf("%s on a full disk: %d %s; want 507 saying no space left on device", what, r.status, r.body)
		}
	}
	isFull("monolithic upload", s.do(t, "POST", "/v2/base/b/blobs/uploads/?digest="+d.String(), data))
	isFull("a new upload session", s.do(t, "POST", "/v2/base/b/blobs/uploads/", nil))
	isFull("chunk", s.do(t, "PATCH", loc, data, "Content-Type", "application/octet-stream"))
	if got := strings.Count(log.String(), "no space left on device"); got < 3 {
		t.Errorf("the log has %d lines about the full disk, want 3:\n%s", got, log)
	}

	wantStatus(t, s.do(t, "HEAD", "/v2/base/b/blobs/"+d.String(), nil), http.StatusNotFound)
	r := s.do(t, "GET", "/v2/base/a/blobs/"+keptDigest.String(), nil)
	if r.status != http.StatusOK || !bytes.Equal(r.body, kept) {
		t.Errorf("a blob stored before the disk filled: %d, %d bytes", r.status, len(r.body))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s.pushBlob(t, "base/b", data)
	r = s.do(t, "GET", "/v2/base/b/blobs/"+d.String(), nil)
	if r.status != http.StatusOK || !bytes.Equal(r.body, data) {
		t.Errorf("the blob pushed again once there was space: %d, %d bytes", r.status, len(r.body))
	}
}
