package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

type testServer struct {
	*httptest.Server
	reg *Registry
	dir string
}

func newServer(t *testing.T) *testServer {
	t.Helper()
	return newServerIn(t, t.TempDir())
}

// newServerIn serves a registry stored in dir.
func newServerIn(t *testing.T, dir string) *testServer {
	t.Helper()
	reg, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, reg: reg, dir: dir}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; path may be absolute ("/v2/...") or a full URL.
func (s *testServer) do(t *testing.T, method, path string, body []byte, hdr ...string) result {
	t.Helper()
	if strings.HasPrefix(path, "/") {
		path = s.URL + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

func wantStatus(t *testing.T, r result, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
}

func wantHeader(t *testing.T, r result, key, want string) {
	t.Helper()
	if got := r.header.Get(key); got != want {
		t.Fatalf("header %s = %q, want %q", key, got, want)
	}
}

// wantError checks the status and the first error code of the body.
func wantError(t *testing.T, r result, status int, code string) {
	t.Helper()
	wantStatus(t, r, status)
	wantHeader(t, r, "Content-Type", "application/json")
	var eb errorBody
	if err := json.Unmarshal(r.body, &eb); err != nil || len(eb.Errors) == 0 {
		t.Fatalf("not an error body: %s", r.body)
	}
	if eb.Errors[0].Code != code {
		t.Fatalf("error code %s, want %s (%s)", eb.Errors[0].Code, code, eb.Errors[0].Message)
	}
}

// pushBlob uploads data monolithically to repository name.
func (s *testServer) pushBlob(t *testing.T, name string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	r := s.do(t, "POST", "/v2/"+name+"/blobs/uploads/?digest="+d.String(), data)
	wantStatus(t, r, http.StatusCreated)
	return d
}

// startUpload opens an upload session and returns its Location.
func (s *testServer) startUpload(t *testing.T, name string) string {
	t.Helper()
	r := s.do(t, "POST", "/v2/"+name+"/blobs/uploads/", nil)
	wantStatus(t, r, http.StatusAccepted)
	wantHeader(t, r, "Range", "0-0")
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/"+name+"/blobs/uploads/") {
		t.Fatalf("Location %q", loc)
	}
	return loc
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
