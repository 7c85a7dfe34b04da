package server

// The environments' own routes: plan and apply an environments.yml, bring a developer
// environment up and down, stop an environment's services, scale a service.

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/drover-cd/drover/deploy"
	"github.com/drover-cd/drover/internal/duration"
	"github.com/drover-cd/drover/pipeline"
)

// readEnvironments reads an environments.yml sent as the request body.
func (s *Server) readEnvironments(w http.ResponseWriter, r *http.Request) (*pipeline.Environments, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		s.errorJSON(w, http.StatusBadRequest, "request body: "+err.Error())
		return nil, false
	}
	envs, err := pipeline.ParseEnvironments(pipeline.EnvironmentsFile, data)
	if err != nil {
		s.errorJSON(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return envs, true
}

// planEnvironments is POST /api/v1/environments/plan with an environments.yml as body:
// what applying it would change.
func (s *Server) planEnvironments(w http.ResponseWriter, r *http.Request) {
	envs, ok := s.readEnvironments(w, r)
	if !ok {
		return
	}
	plan, err := s.cfg.Deploys.Plan(r.Context(), envs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"changes": planLines(plan)})
}

// applyEnvironments is POST /api/v1/environments/apply with an environments.yml as body.
func (s *Server) applyEnvironments(w http.ResponseWriter, r *http.Request) {
	envs, ok := s.readEnvironments(w, r)
	if !ok {
		return
	}
	log := &lineLog{}
	plan, err := s.cfg.Deploys.Apply(r.Context(), envs, principal(r).Name, log.add)
	out := map[string]any{"changes": planLines(plan), "log": log.lines}
	if errors.Is(err, deploy.ErrFrozen) {
		s.fail(w, r, err)
		return
	}
	if err != nil {
		out["error"] = err.Error()
		writeJSON(w, http.StatusUnprocessableEntity, out)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func planLines(plan []deploy.Change) []string {
	out := []string{}
	for _, c := range plan {
		out = append(out, c.String())
	}
	return out
}

// envUp is POST /api/v1/environments/{env}/up {"from", "with", "idle", "force"}: a
// developer environment copied from another, with some releases replaced. A release
// with names whose run has not passed is refused (409) unless an admin forces it.
func (s *Server) envUp(w http.ResponseWriter, r *http.Request) {
	var req struct {
		From  string   `json:"from"`
		With  []string `json:"with"`
		Idle  string   `json:"idle"`
		Force bool     `json:"force"`
	}
	if !s.decode(w, r, &req) || !s.mayForce(w, r, req.Force) {
		return
	}
	if _, ok := s.mayChange(w, r, r.PathValue("env")); !ok {
		return // an environment called production, say
	}
	var idle time.Duration
	if req.Idle != "" {
		d, err := duration.Parse(req.Idle)
		if err != nil {
			s.errorJSON(w, http.StatusBadRequest, "idle: "+err.Error()+" (0 keeps it until env down)")
			return
		}
		idle = d
	}
	log := &lineLog{}
	ds, err := s.cfg.Deploys.Up(r.Context(), deploy.UpRequest{Name: r.PathValue("env"), From: req.From, With: req.With,
		Idle: idle, Trigger: principal(r).Name, Force: req.Force, Log: log.add})
	out := map[string]any{"log": log.lines}
	var dj []deploymentJSON
	for _, d := range ds {
		dj = append(dj, toDeploymentJSON(d))
	}
	out["deployments"] = dj
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, out)
	case errors.Is(err, deploy.ErrBadRequest):
		out["error"] = err.Error()
		writeJSON(w, http.StatusBadRequest, out)
	case errors.Is(err, deploy.ErrNotPassed):
		out["error"] = err.Error()
		writeJSON(w, http.StatusConflict, out)
	case errors.Is(err, deploy.ErrFrozen):
		s.fail(w, r, err)
	default:
		out["error"] = err.Error()
		writeJSON(w, http.StatusUnprocessableEntity, out)
	}
}

// stopEnv is POST /api/v1/environments/{env}/stop {"message"}: stop every service of
// an environment, audited; they stay stopped across restarts until deployed again. It
// answers the services it stopped.
func (s *Server) stopEnv(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Message string `json:"message"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if _, ok := s.mayChange(w, r, r.PathValue("env")); !ok {
		return
	}
	stopped, err := s.cfg.Deploys.StopEnv(r.Context(), r.PathValue("env"), principal(r).Name, req.Message)
	switch {
	case errors.Is(err, deploy.ErrBadRequest):
		s.errorJSON(w, http.StatusNotFound, err.Error())
	case err != nil:
		s.fail(w, r, err)
	default:
		if stopped == nil {
			stopped = []string{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"stopped": stopped})
	}
}

// scaleIn is PUT /api/v1/environments/{env}/scale {"project", "replicas", "reset"}: how
// many instances project's service runs there from now on (1 to deploy.MaxReplicas),
// or, with reset, the count set by hand removed. Audited; answers the count that applies.
func (s *Server) scaleIn(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Project  string `json:"project"`
		Replicas int    `json:"replicas"`
		Reset    bool   `json:"reset"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if req.Project == "" || (req.Reset != (req.Replicas == 0)) {
		s.errorJSON(w, http.StatusBadRequest, "give a project and either replicas (1 to "+strconv.Itoa(deploy.MaxReplicas)+") or reset")
		return
	}
	if _, ok := s.mayChange(w, r, r.PathValue("env")); !ok {
		return
	}
	if _, err := s.cfg.Store.Project(r.Context(), req.Project); err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := s.cfg.Deploys.Scale(r.Context(), r.PathValue("env"), req.Project, req.Replicas, principal(r).Name)
	switch {
	case errors.Is(err, deploy.ErrBadRequest):
		s.errorJSON(w, http.StatusBadRequest, err.Error())
	case err != nil:
		s.fail(w, r, err)
	default:
		writeJSON(w, http.StatusOK, map[string]int{"replicas": n})
	}
}

// envDown is DELETE /api/v1/environments/{env}: stop a developer environment.
func (s *Server) envDown(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.mayChange(w, r, r.PathValue("env")); !ok {
		return
	}
	err := s.cfg.Deploys.Down(r.Context(), r.PathValue("env"), principal(r).Name, "by request")
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, deploy.ErrBadRequest):
		s.errorJSON(w, http.StatusConflict, err.Error())
	default:
		s.fail(w, r, err)
	}
}
