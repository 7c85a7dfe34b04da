package server

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"

	"github.com/drover-cd/drover/release"
)

// releaseJSON is a release in the API, with links to its files when listed alone.
type releaseJSON struct {
	*release.Release
	Files []fileJSON `json:"files,omitempty"`
}

type fileJSON struct {
	release.File
	URL string `json:"url,omitempty"` // download link; none for a symlink
}

// project404 answers 404 unless project p exists.
func (s *Server) projectExists(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("p")
	if _, err := s.cfg.Store.Project(r.Context(), name); err != nil {
		s.fail(w, r, err)
		return "", false
	}
	return name, true
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request) {
	name, ok := s.projectExists(w, r)
	if !ok {
		return
	}
	rels, err := s.cfg.Releases.List(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rels == nil {
		rels = []release.Release{}
	}
	writeJSON(w, http.StatusOK, rels)
}

func (s *Server) getRelease(w http.ResponseWriter, r *http.Request) {
	name, ok := s.projectExists(w, r)
	if !ok {
		return
	}
	rel, err := s.cfg.Releases.Get(r.Context(), name, r.PathValue("ref"))
	if err != nil {
		s.releaseFail(w, r, err)
		return
	}
	files, err := s.cfg.Releases.Files(r.Context(), rel)
	if err != nil {
		s.releaseFail(w, r, err)
		return
	}
	out := releaseJSON{Release: rel, Files: []fileJSON{}}
	for _, f := range files {
		fj := fileJSON{File: f}
		if f.Link == "" {
			fj.URL = downloadURL(name, rel.Run, f.Path)
		}
		out.Files = append(out.Files, fj)
	}
	writeJSON(w, http.StatusOK, out)
}

// downloadURL is the path of a release file's download.
func downloadURL(project string, run int, file string) string {
	return "/artifacts/" + url.PathEscape(project) + "/" + strconv.Itoa(run) + "/" + (&url.URL{Path: file}).EscapedPath()
}

// download serves one file of a run's artifact: GET /artifacts/{p}/{ref}/{path...}, where
// ref is a run number, a release tag, a commit or a digest. The file's digest is its
// ETag, so a client holding it gets 304 without a byte read from storage.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	name, ok := s.projectExists(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	rel, err := s.cfg.Releases.Get(ctx, name, r.PathValue("ref"))
	if err != nil {
		s.releaseFail(w, r, err)
		return
	}
	f, err := s.cfg.Releases.Find(ctx, rel, r.PathValue("path"))
	if err == nil && f.Link != "" {
		err = fmt.Errorf("%s is a symlink to %s: %w", f.Path, f.Link, release.ErrNotFound)
	}
	if err != nil {
		s.releaseFail(w, r, err)
		return
	}
	etag := `"` + f.Digest.String() + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache") // the path may name another release later; revalidate
	if match := r.Header.Get("If-None-Match"); match == etag || match == "*" {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	ct := mime.TypeByExtension(path.Ext(f.Path))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(f.Path)}))
	h.Set("Docker-Content-Digest", f.Digest.String())
	if r.Method == http.MethodHead {
		return
	}
	if err := s.cfg.Releases.Copy(ctx, name, f, w); err != nil {
		// The headers are gone: cut the connection so the client sees a broken
		// download, never a complete-looking wrong one.
		s.cfg.Log.Error("artifact download failed", "project", name, "file", f.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// releaseFail answers a release lookup's error.
func (s *Server) releaseFail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, release.ErrNotFound) {
		s.errorJSON(w, http.StatusNotFound, err.Error())
		return
	}
	s.fail(w, r, err)
}
