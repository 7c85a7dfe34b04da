package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/drover-cd/drover/release"
)

// releasesPage is the data of a project's releases page.
type releasesPage struct {
	Project  string
	Releases []release.Release
	Deployed map[int][]string // run number -> environments running its release now
}

// releases lists a project's releases, newest first.
func (w *web) releases(rw http.ResponseWriter, r *http.Request) {
	p, err := w.s.cfg.Store.Project(r.Context(), r.PathValue("p"))
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("project %s: %w", r.PathValue("p"), err))
		return
	}
	rels, err := w.s.cfg.Releases.List(r.Context(), p.Name)
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("releases of %s: %w", p.Name, err))
		return
	}
	page := releasesPage{Project: p.Name, Releases: rels, Deployed: map[int][]string{}}
	if w.s.cfg.Deploys != nil {
		envs, err := w.s.cfg.Store.Environments(r.Context())
		if err != nil {
			w.failErr(rw, r, err)
			return
		}
		for _, e := range envs {
			for _, st := range w.s.cfg.Deploys.Status(e.Name) {
				if st.Project == p.Name && len(st.Instances) > 0 {
					page.Deployed[st.Run] = append(page.Deployed[st.Run], e.Name)
				}
			}
		}
	}
	w.render(rw, r, http.StatusOK, "releases", p.Name+" releases", page)
}

// runFiles is what the run page shows of the run's published artifact.
type runFiles struct {
	Release *release.Release
	Files   []fileJSON
	Gone    string // why the artifact cannot be shown (garbage-collected, unreadable)
}

// publishedFiles reads the files of run n's artifact for its page; nil when the run
// published none or the server has no registry.
func (w *web) publishedFiles(r *http.Request, project string, n int, digest string) *runFiles {
	if w.s.cfg.Releases == nil || digest == "" {
		return nil
	}
	rel, err := w.s.cfg.Releases.Get(r.Context(), project, digest)
	if errors.Is(err, release.ErrNotFound) {
		return &runFiles{Gone: "This run's artifact is no longer stored: the retention policy let it go."}
	}
	if err != nil {
		return &runFiles{Gone: "The artifact cannot be read: " + err.Error()}
	}
	files, err := w.s.cfg.Releases.Files(r.Context(), rel)
	if err != nil {
		return &runFiles{Gone: "The artifact's files cannot be read: " + err.Error()}
	}
	out := &runFiles{Release: rel}
	for _, f := range files {
		fj := fileJSON{File: f}
		if f.Link == "" {
			fj.URL = downloadURL(project, n, f.Path)
		}
		out.Files = append(out.Files, fj)
	}
	return out
}

// releaseRunURL is the files section of the run a release came from.
func releaseRunURL(project string, rel release.Release) string {
	return runURL(project, rel.Run) + "#files-h"
}
