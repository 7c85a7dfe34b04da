// Package registry is Drover's built-in OCI registry: an http.Handler that
// serves the OCI distribution specification v1.1 under /v2/ from a folder on
// disk. Authentication is the caller's job.
//
// Storage layout under the folder given to New:
//
//	blobs/sha256/<hex>                                    blob and manifest bytes, global and deduplicated
//	uploads/<id>.data, uploads/<id>.json                  an upload session's bytes and state (repository)
//	repositories/<name>/_layers/sha256/<hex>              link: blob visible in <name> (pushed or mounted)
//	repositories/<name>/_manifests/revisions/sha256/<hex> link: manifest in <name>; holds its media type
//	repositories/<name>/_manifests/tags/<tag>             the digest the tag points at
//	corrupt/sha256-<hex>                                  blob files found not to match their digest on read
//
// Blobs are hashed as they arrive (an upload session keeps its hash state
// between chunks), written to a temp or session file, checked against the
// pushed digest, fsynced and only then linked into blobs/ (never overwriting
// an existing blob), so content under blobs/ matches its name when placed.
// Reads check that it still does: a full GET of a blob or manifest never
// sends content that does not match its digest, and moves such a file to
// corrupt/ (see serveBlob). Link and tag files are written atomically (temp
// file, fsync, rename).
// Deleting a blob or manifest removes only the repository's link; the bytes
// stay until garbage collection (Registry.GC, safe while pushes run) removes them.
package registry

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
)

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// maxNameLen bounds repository names, as most registries do.
const maxNameLen = 255

// Registry serves the OCI distribution API from a folder on disk. It is safe
// for concurrent use.
type Registry struct {
	dir string

	// Log receives storage problems found while serving (corrupt blobs);
	// nil logs to slog.Default().
	Log *slog.Logger

	// Immutable, when set, reports the tags that, once written, may neither move to
	// another digest nor be deleted through the API (Drover's release tags). Set it
	// before serving. Garbage collection still removes them.
	Immutable func(repo, tag string) bool

	meta sync.Mutex // serialises manifest, tag and link changes

	upMu    sync.Mutex
	uploads map[string]*upload // per-session locks and hash states (uploads.go)

	gc gcState // garbage collection (gc.go)
}

// New opens (creating if needed) a registry stored in dir.
func New(dir string) (*Registry, error) {
	dir = filepath.Clean(dir)
	for _, sub := range []string{"blobs/sha256", "uploads", "repositories"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(sub)), 0o755); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	return &Registry{dir: dir, uploads: map[string]*upload{}}, nil
}

func (r *Registry) immutable(repo, tag string) bool {
	return r.Immutable != nil && r.Immutable(repo, tag)
}

// ServeHTTP routes a request whose path starts with /v2/.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	if !ok && req.URL.Path != "/v2" {
		writeError(w, http.StatusNotFound, CodeUnsupported, "not a /v2/ path", nil)
		return
	}
	if p == "" {
		if !allow(w, req, http.MethodGet, http.MethodHead) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if req.Method == http.MethodGet {
			w.Write([]byte("{}"))
		}
		return
	}
	segs := strings.Split(p, "/")
	n := len(segs)
	route := func(k int, h func(w http.ResponseWriter, req *http.Request, name string, args []string)) {
		name := strings.Join(segs[:n-k], "/")
		if len(name) > maxNameLen || !nameRE.MatchString(name) {
			writeError(w, http.StatusBadRequest, CodeNameInvalid, "invalid repository name", map[string]string{"name": name})
			return
		}
		h(w, req, name, segs[n-k+1:])
	}
	switch {
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads" && segs[n-1] == "":
		route(3, r.startUpload)
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		route(2, r.startUpload)
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		route(3, r.serveUpload)
	case n >= 3 && segs[n-2] == "blobs":
		route(2, r.serveBlob)
	case n >= 3 && segs[n-2] == "manifests":
		route(2, r.serveManifest)
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		route(2, r.serveTags)
	case n >= 3 && segs[n-2] == "referrers":
		route(2, r.serveReferrers)
	default:
		writeError(w, http.StatusNotFound, CodeUnsupported, "unknown endpoint", nil)
	}
}

// allow reports whether req uses one of methods, answering 405 otherwise.
func allow(w http.ResponseWriter, req *http.Request, methods ...string) bool {
	for _, m := range methods {
		if req.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, CodeUnsupported, "method not allowed", nil)
	return false
}

// parseDigest parses a sha256 digest, answering 400 DIGEST_INVALID (or
// UNSUPPORTED for other algorithms) when it is not one.
func parseDigest(w http.ResponseWriter, s string) (digest.Digest, bool) {
	d, err := digest.Parse(s)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeDigestInvalid, "invalid digest", map[string]string{"digest": s})
		return "", false
	}
	if d.Algorithm() != digest.SHA256 {
		writeError(w, http.StatusBadRequest, CodeUnsupported, "only sha256 digests are supported", map[string]string{"digest": s})
		return "", false
	}
	return d, true
}
