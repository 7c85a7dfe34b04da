package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/drover-cd/drover/internal/duration"
	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/store"
)

func (s *Server) cloneURL(r *http.Request, name string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s/git/%s.git", scheme, r.Host, name)
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	projects, err := s.cfg.Store.Projects(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []projectJSON{}
	for _, p := range projects {
		out = append(out, s.toProjectJSON(r, p))
	}
	writeJSON(w, http.StatusOK, out)
}

// decode reads a JSON request body of at most 1 MiB into v.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		s.errorJSON(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

func (s *Server) addProject(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name          string `json:"name"`
		URL           string `json:"url"`
		PollInterval  string `json:"poll_interval"`
		WebhookSecret string `json:"webhook_secret"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	switch err := s.checkNewProject(r.Context(), req.Name); {
	case errors.Is(err, store.ErrExists), errors.Is(err, errNameTaken):
		s.errorJSON(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		s.errorJSON(w, http.StatusBadRequest, err.Error())
		return
	}
	p := &store.Project{Name: req.Name, URL: req.URL, WebhookSecret: req.WebhookSecret}
	if req.PollInterval != "" {
		d, err := duration.Parse(req.PollInterval)
		if err == nil && d < time.Second {
			err = fmt.Errorf("poll_interval %q: poll at most once a second, like 1m", req.PollInterval)
		}
		if err != nil {
			s.errorJSON(w, http.StatusBadRequest, "poll_interval: "+err.Error())
			return
		}
		p.PollInterval = d
	}
	if err := s.cfg.Store.CreateProject(r.Context(), p); err != nil {
		s.fail(w, r, err)
		return
	}
	if p.URL != "" {
		go s.poll(p) // first fetch at once; later ones by the poller
	}
	writeJSON(w, http.StatusCreated, s.toProjectJSON(r, p))
}

// updateProject changes a project's retention: PATCH {"keep_runs": 10, "keep_for": "720h"};
// 0 and "0s" go back to the server's default. "default_branch" sets the branch secrets
// of environments with approval rules go to ("" for not known), "branch_secrets"
// whether runs of other branches of a followed repository get secrets.
func (s *Server) updateProject(w http.ResponseWriter, r *http.Request) {
	var req struct {
		KeepRuns      *int    `json:"keep_runs"`
		KeepFor       *string `json:"keep_for"`
		DefaultBranch *string `json:"default_branch"`
		BranchSecrets *bool   `json:"branch_secrets"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	p, err := s.cfg.Store.Project(r.Context(), r.PathValue("p"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	before := *p
	if req.KeepRuns != nil {
		if *req.KeepRuns < 0 {
			s.errorJSON(w, http.StatusBadRequest, fmt.Sprintf("keep_runs %d: write 0 (the server's default) or more", *req.KeepRuns))
			return
		}
		p.KeepRuns = *req.KeepRuns
	}
	if req.KeepFor != nil {
		d, err := duration.Parse(*req.KeepFor)
		if err != nil {
			s.errorJSON(w, http.StatusBadRequest, "keep_for: "+err.Error()+" (0 for the server's default)")
			return
		}
		p.KeepFor = d
	}
	if req.DefaultBranch != nil {
		if err := checkBranchName(*req.DefaultBranch); err != nil {
			s.errorJSON(w, http.StatusBadRequest, "default_branch: "+err.Error())
			return
		}
		p.DefaultBranch = *req.DefaultBranch
	}
	if req.BranchSecrets != nil {
		p.BranchSecrets = *req.BranchSecrets
	}
	if err := s.cfg.Store.UpdateProject(r.Context(), p); err != nil {
		s.fail(w, r, err)
		return
	}
	s.auditBranches(r, &before, p)
	writeJSON(w, http.StatusOK, s.toProjectJSON(r, p))
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	f := store.RunFilter{Project: r.PathValue("p"), Branch: r.URL.Query().Get("branch")}
	if v := r.URL.Query().Get("status"); v != "" {
		f.Status = []string{v}
	}
	f.Before, _ = strconv.Atoi(r.URL.Query().Get("before"))
	f.Limit, _ = strconv.Atoi(r.URL.Query().Get("limit"))
	if _, err := s.cfg.Store.Project(r.Context(), f.Project); err != nil {
		s.fail(w, r, err)
		return
	}
	runs, err := s.cfg.Store.Runs(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]runJSON, 0, len(runs))
	for _, run := range runs {
		out = append(out, toRunJSON(run))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) startRun(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Branch string `json:"branch"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if req.Branch == "" {
		req.Branch = "main"
	}
	run, err := s.cfg.Runner.Enqueue(r.Context(), runner.Request{Project: r.PathValue("p"), Branch: req.Branch,
		Event: "manual", Trigger: principal(r).Name})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toRunJSON(run))
}

// run finds the run named by the path's {p} and {n}.
func (s *Server) run(w http.ResponseWriter, r *http.Request) (*store.Run, bool) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 {
		s.errorJSON(w, http.StatusBadRequest, fmt.Sprintf("run number %q is not a positive number", r.PathValue("n")))
		return nil, false
	}
	run, err := s.cfg.Store.Run(r.Context(), r.PathValue("p"), n)
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return run, true
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	run, ok := s.run(w, r)
	if !ok {
		return
	}
	detail, err := s.runDetail(r.Context(), run)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, detail)
}

func (s *Server) stepLog(w http.ResponseWriter, r *http.Request) {
	run, ok := s.run(w, r)
	if !ok {
		return
	}
	steps, err := s.cfg.Store.Steps(r.Context(), run.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	position := -1
	for _, st := range steps {
		if st.Name == r.PathValue("step") {
			position = st.Position
		}
	}
	if position < 0 {
		s.errorJSON(w, http.StatusNotFound, fmt.Sprintf("run #%d has no step %q", run.Number, r.PathValue("step")))
		return
	}
	follow := r.URL.Query().Get("follow") == "1" && runner.Active(run.Status)
	ctx := r.Context()
	if follow {
		// Stop following when the run ends, also for a step that never starts.
		var cancel func()
		ctx, cancel = s.untilRunEnds(ctx, run)
		defer cancel()
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Accel-Buffering", "no") // stream through proxies such as nginx
	rc := http.NewResponseController(w)
	if err := s.cfg.Logs.Follow(ctx, run.ID, position, follow, w, func() { _ = rc.Flush() }); err != nil {
		s.cfg.Log.Warn("stream log", "err", err)
	}
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	run, ok := s.run(w, r)
	if !ok {
		return
	}
	if err := s.cfg.Runner.Cancel(r.Context(), run.Project, run.Number, principal(r).Name); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "cancelling"})
}

func (s *Server) rerun(w http.ResponseWriter, r *http.Request) {
	var req struct {
		FromStep string `json:"from_step"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	run, ok := s.run(w, r)
	if !ok {
		return
	}
	next, err := s.cfg.Runner.Rerun(r.Context(), run.Project, run.Number, req.FromStep, principal(r).Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toRunJSON(next))
}
