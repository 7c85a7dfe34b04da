package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"

	"github.com/drover-cd/drover/deploy"
	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/store"
)

// envs lists the environments with what runs in each.
func (w *web) envs(rw http.ResponseWriter, r *http.Request) {
	envs, err := w.s.cfg.Store.Environments(r.Context())
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("list environments: %w", err))
		return
	}
	out := []envJSON{}
	for _, e := range envs {
		ej, err := w.s.envDetail(r, e, 0)
		if err != nil {
			w.failErr(rw, r, err)
			return
		}
		out = append(out, ej)
	}
	w.render(rw, r, http.StatusOK, "envs", "Environments", out)
}

// env shows one environment: its services, their instances and health, and the deploy
// history; it follows changes live.
func (w *web) env(rw http.ResponseWriter, r *http.Request) {
	e, err := w.s.cfg.Store.Environment(r.Context(), r.PathValue("env"))
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("environment %s: %w", r.PathValue("env"), err))
		return
	}
	ej, err := w.s.envDetail(r, e, 30)
	if err != nil {
		w.failErr(rw, r, err)
		return
	}
	w.render(rw, r, http.StatusOK, "env", e.Name, map[string]any{"Env": ej, "Events": "/env/" + e.Name + "/events",
		"ProxyHost": w.s.cfg.ProxyHost})
}

// envEvents streams an environment's state as server-sent events ("env") at once and
// after every change.
func (w *web) envEvents(rw http.ResponseWriter, r *http.Request) {
	e, err := w.s.cfg.Store.Environment(r.Context(), r.PathValue("env"))
	if err != nil {
		w.s.fail(rw, r, err)
		return
	}
	w.stream(rw, r, EnvKey(e.Name), "env", func(context.Context) (any, error) {
		return w.s.envDetail(r, e, 0)
	})
}

// auditPage shows the audit log, newest first, a page at a time (?before=ID).
func (w *web) auditPage(rw http.ResponseWriter, r *http.Request) {
	entries, err := w.s.auditEntries(r)
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("read the audit log: %w", err))
		return
	}
	older := int64(0)
	if len(entries) == 50 {
		older = entries[len(entries)-1].ID
	}
	w.render(rw, r, http.StatusOK, "audit", "Audit log", map[string]any{"Entries": entries, "Older": older})
}

// pipelineRow is one project on the pipeline overview.
type pipelineRow struct {
	Project string
	Cells   []*deploy.ServiceStatus // by the page's environments; nil where it does not run
	Waiting []waitingRun
}

// waitingRun is a run waiting for an approval, with what the viewer may do about it.
type waitingRun struct {
	Number    int
	Commit    string
	Approvals []approvalView
}

// pipelineOverview shows, for every project, the release each environment runs and the
// runs waiting for an approval, with buttons for those allowed to decide.
func (w *web) pipelineOverview(rw http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	projects, err := w.s.cfg.Store.Projects(ctx)
	if err != nil {
		w.failErr(rw, r, err)
		return
	}
	all, err := w.s.cfg.Store.Environments(ctx)
	if err != nil {
		w.failErr(rw, r, err)
		return
	}
	// Permanent environments along the promotion path: the tracking ones (usually
	// integration) first, then those anyone may deploy to (staging), then those guarded
	// by an approval role (production).
	var envs []*store.Environment
	stage := map[string]int{}
	for _, e := range all {
		if e.IdleTimeout != 0 {
			continue
		}
		envs = append(envs, e)
		switch role, _, _ := w.s.cfg.Deploys.ApprovalRole(ctx, e.Name); {
		case e.Track != "":
			stage[e.Name] = 0
		case role == "":
			stage[e.Name] = 1
		default:
			stage[e.Name] = 2
		}
	}
	sort.SliceStable(envs, func(i, j int) bool { return stage[envs[i].Name] < stage[envs[j].Name] })
	status := map[string]map[string]*deploy.ServiceStatus{} // env -> project -> service
	for _, e := range envs {
		status[e.Name] = map[string]*deploy.ServiceStatus{}
		for _, st := range w.s.withReleases(r.Context(), w.s.cfg.Deploys.Status(e.Name)) {
			status[e.Name][st.Project] = &st
		}
	}
	var rows []pipelineRow
	for _, p := range projects {
		row := pipelineRow{Project: p.Name}
		for _, e := range envs {
			row.Cells = append(row.Cells, status[e.Name][p.Name])
		}
		waiting, err := w.s.cfg.Store.Runs(ctx, store.RunFilter{Project: p.Name, Status: []string{runner.Waiting}, Limit: 10})
		if err != nil {
			w.failErr(rw, r, err)
			return
		}
		for _, run := range waiting {
			wr := waitingRun{Number: run.Number, Commit: run.Commit}
			as, err := w.s.cfg.Store.Approvals(ctx, run.ID)
			if err != nil {
				w.failErr(rw, r, err)
				return
			}
			for _, a := range as {
				if a.Decision == "pending" {
					wr.Approvals = append(wr.Approvals, approvalView{Step: a.Step, Role: a.Role, Deadline: a.Deadline,
						CanDecide: principal(r).CanApprove(a.Role)})
				}
			}
			row.Waiting = append(row.Waiting, wr)
		}
		rows = append(rows, row)
	}
	w.render(rw, r, http.StatusOK, "pipeline", "Pipeline", map[string]any{"Envs": envs, "Rows": rows})
}
