package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/opencontainers/go-digest"
)

// This file is the registry's in-process API, for the server's own use (a run
// publishing its release, the releases API, downloads). Writes go through the
// same handlers as HTTP clients, so they get the same validation, immutability
// and garbage-collection safety.

// ErrNotFound is wrapped by the in-process API when a repository, tag, manifest
// or blob does not exist.
var ErrNotFound = errors.New("not found")

// APIError is an error answered by the registry's handlers.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Unwrap lets errors.Is(err, ErrNotFound) match 404 answers.
func (e *APIError) Unwrap() error {
	if e.Status == http.StatusNotFound {
		return ErrNotFound
	}
	return nil
}

// call serves one in-process request and returns the recorded answer, or the
// registry's error.
func (r *Registry) call(ctx context.Context, method, path string, body io.Reader, header http.Header) (*httptest.ResponseRecorder, error) {
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	maps.Copy(req.Header, header)
	if b, ok := body.(*bytes.Reader); ok {
		req.ContentLength = int64(b.Len())
	}
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	if rec.Code >= 400 {
		var eb errorBody
		e := &APIError{Status: rec.Code, Code: "UNKNOWN", Message: http.StatusText(rec.Code)}
		if json.Unmarshal(rec.Body.Bytes(), &eb) == nil && len(eb.Errors) > 0 {
			e.Code, e.Message = eb.Errors[0].Code, eb.Errors[0].Message
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, e)
	}
	return rec, nil
}

// PushBlob makes blob d visible in repo, reading it from open only when the
// registry does not hold it yet. The content is verified against d.
func (r *Registry) PushBlob(ctx context.Context, repo string, d digest.Digest, open func() (io.ReadCloser, error)) error {
	if _, err := r.call(ctx, http.MethodHead, blobLocation(repo, d), nil, nil); err == nil {
		return nil
	}
	src, err := open()
	if err != nil {
		return fmt.Errorf("push blob %s: %w", d, err)
	}
	defer src.Close()
	_, err = r.call(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), src, nil)
	return err
}

// PushManifest stores a manifest of the given media type in repo under ref (a
// tag, a digest, or "" to store it by its sha256 digest only) and returns its
// digest: the sha256 one unless ref is a digest of another algorithm (sha512),
// which the manifest must then hash to.
func (r *Registry) PushManifest(ctx context.Context, repo, ref, mediaType string, body []byte) (digest.Digest, error) {
	d := digest.FromBytes(body)
	if ref == "" {
		ref = d.String()
	} else if rd, err := digest.Parse(ref); err == nil && supported(rd.Algorithm()) {
		d = rd.Algorithm().FromBytes(body)
	}
	_, err := r.call(ctx, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body),
		http.Header{"Content-Type": {mediaType}})
	if err != nil {
		return "", err
	}
	return d, nil
}

// Manifest returns the manifest ref (a tag or a digest) names in repo, with its
// media type and digest.
func (r *Registry) Manifest(ctx context.Context, repo, ref string) ([]byte, string, digest.Digest, error) {
	rec, err := r.call(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, nil)
	if err != nil {
		return nil, "", "", err
	}
	return rec.Body.Bytes(), rec.Header().Get("Content-Type"), digest.Digest(rec.Header().Get("Docker-Content-Digest")), nil
}

// Tags returns repo's tags in lexical order; none for an unknown repository.
func (r *Registry) Tags(repo string) ([]string, error) {
	if !nameRE.MatchString(repo) {
		return nil, fmt.Errorf("repository %q: %w", repo, ErrNotFound)
	}
	return r.listTags(repo)
}

// OpenBlob opens blob d of repo for reading. The reader checks the content
// against d and fails at the end, instead of returning io.EOF, when it does
// not match.
func (r *Registry) OpenBlob(repo string, d digest.Digest) (io.ReadCloser, int64, error) {
	if !nameRE.MatchString(repo) || d.Validate() != nil || !supported(d.Algorithm()) || !r.hasBlob(repo, d) {
		return nil, 0, fmt.Errorf("blob %s in %s: %w", d, repo, ErrNotFound)
	}
	f, err := os.Open(r.blobPath(d))
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s in %s: %w", d, repo, ErrNotFound)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return &verifier{f: f, h: d.Algorithm().Hash(), want: d}, fi.Size(), nil
}

// verifier hashes what is read and turns io.EOF into an error on a mismatch.
type verifier struct {
	f    *os.File
	h    hash.Hash
	want digest.Digest
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := digest.NewDigest(v.want.Algorithm(), v.h); got != v.want {
			return n, fmt.Errorf("blob %s on disk hashes to %s: %w", v.want, got, errDigestMismatch)
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.f.Close() }

// ValidRepository reports whether name is a valid repository name.
func ValidRepository(name string) bool {
	return len(name) <= maxNameLen && nameRE.MatchString(name) // nameRE allows no empty path component
}
