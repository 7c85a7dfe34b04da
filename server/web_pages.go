package server

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/store"
)

// webRunsPerPage is how many runs a project's page lists.
const webRunsPerPage = 30

// projectRow is a line of the projects page.
type projectRow struct {
	Name   string
	URL    string   // followed remote; "" when hosted here
	Latest *runJSON // nil before the first run
}

// index lists the projects with their latest run.
func (w *web) index(rw http.ResponseWriter, r *http.Request) {
	projects, err := w.s.cfg.Store.Projects(r.Context())
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("list projects: %w", err))
		return
	}
	rows := make([]projectRow, 0, len(projects))
	for _, p := range projects {
		row := projectRow{Name: p.Name, URL: p.URL}
		runs, err := w.s.cfg.Store.Runs(r.Context(), store.RunFilter{Project: p.Name, Limit: 1})
		if err != nil {
			w.failErr(rw, r, fmt.Errorf("latest run of %s: %w", p.Name, err))
			return
		}
		if len(runs) > 0 {
			rj := toRunJSON(runs[0])
			row.Latest = &rj
		}
		rows = append(rows, row)
	}
	w.render(rw, r, http.StatusOK, "index", "Projects", map[string]any{
		"Projects": rows, "PushURL": w.s.cloneURL(r, "NAME")})
}

// projectPage is the data of a project's runs page.
type projectPage struct {
	Project  *store.Project
	CloneURL string
	Runs     []runJSON
	Before   int // this page's ?before; 0 for the newest runs
	Older    int // ?before for the next page; 0 when there is none
	Events   string
}

// project lists a project's runs, newest first, a page at a time (?before=N).
func (w *web) project(rw http.ResponseWriter, r *http.Request) {
	p, err := w.s.cfg.Store.Project(r.Context(), r.PathValue("p"))
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("project %s: %w", r.PathValue("p"), err))
		return
	}
	before, _ := strconv.Atoi(r.URL.Query().Get("before"))
	runs, err := w.projectRuns(r, p.Name, before)
	if err != nil {
		w.failErr(rw, r, err)
		return
	}
	page := projectPage{Project: p, CloneURL: w.s.cloneURL(r, p.Name), Runs: runs, Before: max(before, 0),
		Events: "/p/" + p.Name + "/events"}
	if page.Before > 0 {
		page.Events += "?before=" + strconv.Itoa(page.Before)
	}
	if len(runs) == webRunsPerPage && runs[len(runs)-1].Number > 1 {
		page.Older = runs[len(runs)-1].Number
	}
	w.render(rw, r, http.StatusOK, "project", p.Name, page)
}

// projectRuns is a page of a project's runs in their JSON shape.
func (w *web) projectRuns(r *http.Request, project string, before int) ([]runJSON, error) {
	runs, err := w.s.cfg.Store.Runs(r.Context(), store.RunFilter{Project: project, Before: max(before, 0), Limit: webRunsPerPage})
	if err != nil {
		return nil, fmt.Errorf("runs of %s: %w", project, err)
	}
	out := make([]runJSON, 0, len(runs))
	for _, run := range runs {
		if run.Status != runner.Waiting {
			out = append(out, toRunJSON(run))
			continue
		}
		// A waiting run shows how long it ran before it stopped, which its steps tell.
		detail, err := w.s.runDetail(r.Context(), run)
		if err != nil {
			return nil, fmt.Errorf("steps of %s #%d: %w", project, run.Number, err)
		}
		out = append(out, detail)
	}
	return out, nil
}
