// Package registry is Drover's built-in OCI registry: an http.Handler that
// serves the OCI distribution specification v1.1 under /v2/ from a folder on
// disk. Authentication is the caller's job.
//
// Storage layout under the folder given to New:
//
//	blobs/<alg>/<hex>                                    blob and manifest bytes, global and deduplicated
//	uploads/<id>.data, uploads/<id>.json                 an upload session's bytes and state (repository)
//	repositories/<name>/_layers/<alg>/<hex>              link: blob visible in <name> (pushed or mounted)
//	repositories/<name>/_manifests/revisions/<alg>/<hex> link: manifest in <name>; holds its media type
//	repositories/<name>/_manifests/tags/<tag>            the digest the tag points at
//	corrupt/<alg>-<hex>                                  blob files found not to match their digest on read
//
// <alg> is sha256 or sha512, the digest algorithms the registry accepts (see
// algorithms). A client chooses the algorithm of a blob by the digest it
// pushes it under, and that of a manifest by pushing it by digest; a manifest
// pushed by tag is stored under its sha256 digest. Content hashed with both
// algorithms is stored once under each digest.
//
// Blobs are hashed as they arrive (an upload session keeps its SHA-256 state
// between chunks; one closed with a sha512 digest is read and hashed again
// then), written to a temp or session file, checked against the pushed
// digest, fsynced and only then linked into blobs/ (never overwriting
// an existing blob), so content under blobs/ matches its name when placed.
// Reads check that it still does: a full GET of a blob or manifest never
// sends content that does not match its digest, and moves such a file to
// corrupt/ (see serveBlob). Link and tag files are written atomically (temp
// file, fsync, rename).
// Deleting a blob or manifest removes only the repository's link; the bytes
// stay until garbage collection (Registry.GC, safe while pushes run) removes them.
package registry

import (
	_ "crypto/sha512" // registers digest.SHA512
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(sub)), 0o700); err != nil {
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
	rt, ok := parseRoute(p)
	if !ok {
		writeError(w, http.StatusNotFound, CodeUnsupported, "unknown endpoint", nil)
		return
	}
	if !ValidRepository(rt.name) {
		writeError(w, http.StatusBadRequest, CodeNameInvalid, "invalid repository name", map[string]string{"name": rt.name})
		return
	}
	handlers := map[string]func(w http.ResponseWriter, req *http.Request, name string, args []string){
		"uploads": r.startUpload, "upload": r.serveUpload, "blobs": r.serveBlob,
		"manifests": r.serveManifest, "tags": r.serveTags, "referrers": r.serveReferrers,
	}
	handlers[rt.kind](w, req, rt.name, rt.args)
}

// route is what a /v2/ path asks for: an endpoint kind in repository name, with the
// path segments after the kind's keyword (a digest, a reference, an upload id).
type route struct {
	name, kind string
	args       []string
}

// parseRoute splits a path below /v2/ into its repository and endpoint. Repository
// names may hold slashes, so the endpoint is found from the end of the path.
func parseRoute(p string) (route, bool) {
	segs := strings.Split(p, "/")
	n := len(segs)
	at := func(k int, kind string) (route, bool) {
		return route{name: strings.Join(segs[:n-k], "/"), kind: kind, args: segs[n-k+1:]}, true
	}
	switch {
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads" && segs[n-1] == "":
		return at(3, "uploads")
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		return at(2, "uploads")
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		return at(3, "upload")
	case n >= 3 && segs[n-2] == "blobs":
		return at(2, "blobs")
	case n >= 3 && segs[n-2] == "manifests":
		return at(2, "manifests")
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		return at(2, "tags")
	case n >= 3 && segs[n-2] == "referrers":
		return at(2, "referrers")
	}
	return route{}, false
}

// RepositoryOf returns the repository a request path (/v2/NAME/...) addresses, and
// false for /v2/ itself and paths that are no endpoint. The name is not validated.
func RepositoryOf(path string) (string, bool) {
	p, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return "", false
	}
	rt, ok := parseRoute(p)
	return rt.name, ok
}

// NamespaceUsed reports whether a repository named first, or below first/, holds
// anything or did: first is a repository name's first path component.
func (r *Registry) NamespaceUsed(first string) bool {
	if strings.Contains(first, "/") || !ValidRepository(first) {
		return false
	}
	return exists(r.repoDir(first))
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

// algorithms are the digest algorithms the registry accepts, the first one
// canonical: what a manifest pushed by tag is stored under.
var algorithms = []digest.Algorithm{digest.SHA256, digest.SHA512}

// supported reports whether the registry accepts digests of algorithm a.
func supported(a digest.Algorithm) bool {
	return slices.Contains(algorithms, a)
}

// parseDigest parses a sha256 or sha512 digest, answering 400 DIGEST_INVALID
// when s is not a digest and 400 UNSUPPORTED for another algorithm.
func parseDigest(w http.ResponseWriter, s string) (digest.Digest, bool) {
	d, err := digest.Parse(s)
	if err != nil && !errors.Is(err, digest.ErrDigestUnsupported) {
		writeError(w, http.StatusBadRequest, CodeDigestInvalid, "invalid digest", map[string]string{"digest": s})
		return "", false
	}
	if err != nil || !supported(d.Algorithm()) {
		writeError(w, http.StatusBadRequest, CodeUnsupported, "only sha256 and sha512 digests are supported", map[string]string{"digest": s})
		return "", false
	}
	return d, true
}
