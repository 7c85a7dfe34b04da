package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/deploy"
	"github.com/drover-cd/drover/internal/words"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/store"
)

// EnvKey is the notify key of an environment: told when what runs there changes.
func EnvKey(env string) string { return "env:" + env }

// deploymentJSON is a deployment in the API.
type deploymentJSON struct {
	ID          int64     `json:"id"`
	Environment string    `json:"environment"`
	Service     string    `json:"service"`
	Project     string    `json:"project"`
	Tag         string    `json:"tag"`
	Digest      string    `json:"digest"`
	Run         int       `json:"run"`
	Release     string    `json:"release,omitempty"` // r12 once run 12 passed, also when deployed before
	Strategy    string    `json:"strategy"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	Trigger     string    `json:"trigger"`
	RollbackOf  int64     `json:"rollback_of,omitempty"`
	Created     time.Time `json:"created"`
	Finished    time.Time `json:"finished,omitzero"`
	DurationMS  int64     `json:"duration_ms,omitempty"`
}

func toDeploymentJSON(d *store.Deployment) deploymentJSON {
	out := deploymentJSON{ID: d.ID, Environment: d.Environment, Service: d.Service, Project: d.Project, Tag: d.Tag,
		Digest: d.Digest, Run: d.Run, Strategy: d.Strategy, Status: d.Status, Reason: d.Reason, Trigger: d.Trigger,
		RollbackOf: d.RollbackOf, Created: d.Created, Finished: d.Finished}
	if !d.Finished.IsZero() {
		out.DurationMS = d.Finished.Sub(d.Created).Milliseconds()
	}
	return out
}

// envJSON is an environment with what runs there and its recent deploy history.
type envJSON struct {
	Name        string                 `json:"name"`
	Strategy    string                 `json:"strategy"`
	Created     time.Time              `json:"created"`
	Services    []deploy.ServiceStatus `json:"services"`
	Deployments []deploymentJSON       `json:"deployments,omitempty"`
	// Scales are the replica counts set by hand there (drover scale), by project.
	Scales []scaleJSON `json:"scales,omitempty"`
}

// scaleJSON is a replica count set by hand.
type scaleJSON struct {
	Project  string    `json:"project"`
	Replicas int       `json:"replicas"`
	Actor    string    `json:"actor"`
	Updated  time.Time `json:"updated"`
}

func (s *Server) envDetail(r *http.Request, e *store.Environment, history int) (envJSON, error) {
	out := envJSON{Name: e.Name, Strategy: e.Strategy, Created: e.Created, Services: s.withReleases(r.Context(), s.cfg.Deploys.Status(e.Name))}
	if history > 0 {
		scales, err := s.cfg.Store.Scales(r.Context(), e.Name)
		if err != nil {
			return out, err
		}
		for _, sc := range scales {
			out.Scales = append(out.Scales, scaleJSON{Project: sc.Project, Replicas: sc.Replicas, Actor: sc.Actor, Updated: sc.Updated})
		}
		ds, err := s.cfg.Store.Deployments(r.Context(), store.DeploymentFilter{Environment: e.Name, Limit: history})
		if err != nil {
			return out, err
		}
		out.Deployments = []deploymentJSON{}
		releases := releaseNames{s: s}
		for _, d := range ds {
			dj := toDeploymentJSON(d)
			dj.Release = releases.of(r.Context(), d.Project, d.Run, d.Tag)
			out.Deployments = append(out.Deployments, dj)
		}
	}
	return out, nil
}

// withReleases fills in each service's Release.
func (s *Server) withReleases(ctx context.Context, services []deploy.ServiceStatus) []deploy.ServiceStatus {
	releases := releaseNames{s: s}
	for i := range services {
		services[i].Release = releases.of(ctx, services[i].Project, services[i].Run, services[i].Tag)
	}
	return services
}

// releaseNames says which runs are releases, asking the store once per run. A run
// deployed by a deploy: step before it passed is named by its number (tag "12"); once
// it passes it is release r12 there as everywhere.
type releaseNames struct {
	s    *Server
	seen map[string]string
}

func (n *releaseNames) of(ctx context.Context, project string, run int, tag string) string {
	if strings.HasPrefix(tag, "r") || run == 0 {
		return tag
	}
	key := project + "#" + strconv.Itoa(run)
	if rel, ok := n.seen[key]; ok {
		return rel
	}
	rel := ""
	if r, err := n.s.cfg.Store.Run(ctx, project, run); err == nil && r.Status == "success" {
		rel = "r" + strconv.Itoa(run)
	}
	if n.seen == nil {
		n.seen = map[string]string{}
	}
	n.seen[key] = rel
	return rel
}

func (s *Server) listEnvironments(w http.ResponseWriter, r *http.Request) {
	envs, err := s.cfg.Store.Environments(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []envJSON{}
	for _, e := range envs {
		ej, err := s.envDetail(r, e, 0)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out = append(out, ej)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getEnvironment(w http.ResponseWriter, r *http.Request) {
	e, err := s.cfg.Store.Environment(r.Context(), r.PathValue("env"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ej, err := s.envDetail(r, e, 50)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ej)
}

// deployResultJSON answers a deploy or rollback: the deployment and what it logged.
type deployResultJSON struct {
	Deployment *deploymentJSON `json:"deployment,omitempty"`
	Log        []string        `json:"log"`
	Error      string          `json:"error,omitempty"`
}

// lineLog collects a deploy's log lines.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) add(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

// deployTo is POST /api/v1/environments/{env}/deploy {"project", "ref", "strategy",
// "force", "without_requires"}. It answers once the release takes the traffic (200) or
// has failed without taking any (422). A release whose run has not passed is refused
// (409) unless an admin sends "force": true; one requiring services that do not run in
// the environment is refused (400) unless "without_requires" is true.
func (s *Server) deployTo(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Project         string `json:"project"`
		Ref             string `json:"ref"`
		Strategy        string `json:"strategy"`
		Force           bool   `json:"force"`
		WithoutRequires bool   `json:"without_requires"`
	}
	if !s.decode(w, r, &req) || !s.mayForce(w, r, req.Force) {
		return
	}
	env, ok := s.mayChange(w, r, r.PathValue("env"))
	if !ok {
		return
	}
	if !s.notOwnChange(w, r, env, req.Project, req.Ref) {
		return
	}
	if _, err := s.cfg.Store.Project(r.Context(), req.Project); err != nil {
		s.fail(w, r, err)
		return
	}
	log := &lineLog{}
	d, err := s.cfg.Deploys.Deploy(r.Context(), deploy.Request{Env: r.PathValue("env"), Project: req.Project, Ref: req.Ref,
		Strategy: req.Strategy, Trigger: principal(r).Name, Log: log.add, RequirePassed: true, Force: req.Force,
		WithoutRequires: req.WithoutRequires})
	s.deployAnswer(w, r, d, log, err)
}

// rollbackIn is POST /api/v1/environments/{env}/rollback {"project", "force"}. Going back
// to a release whose run has not passed is refused (409) unless an admin forces it.
func (s *Server) rollbackIn(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Project string `json:"project"`
		Force   bool   `json:"force"`
	}
	if !s.decode(w, r, &req) || !s.mayForce(w, r, req.Force) {
		return
	}
	if _, ok := s.mayChange(w, r, r.PathValue("env")); !ok {
		return
	}
	log := &lineLog{}
	d, err := s.cfg.Deploys.Rollback(r.Context(), deploy.RollbackRequest{Env: r.PathValue("env"), Project: req.Project,
		Trigger: principal(r).Name, Force: req.Force, Log: log.add})
	s.deployAnswer(w, r, d, log, err)
}

// mayForce answers 403, and false, when a caller other than an admin asks to force a
// release whose run has not passed.
func (s *Server) mayForce(w http.ResponseWriter, r *http.Request, force bool) bool {
	if p := principal(r); force && !p.Can(RoleAdmin) {
		s.errorJSON(w, http.StatusForbidden, fmt.Sprintf("only an admin may force a release whose run has not passed; %s has the %s role",
			p.Name, p.Role))
		return false
	}
	return true
}

func (s *Server) deployAnswer(w http.ResponseWriter, r *http.Request, d *store.Deployment, log *lineLog, err error) {
	out := deployResultJSON{Log: log.lines}
	if out.Log == nil {
		out.Log = []string{}
	}
	if d != nil {
		dj := toDeploymentJSON(d)
		out.Deployment = &dj
	}
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, out)
	case errors.Is(err, deploy.ErrBadRequest):
		out.Error = err.Error()
		writeJSON(w, http.StatusBadRequest, out)
	case errors.Is(err, deploy.ErrNotPassed):
		out.Error = err.Error()
		writeJSON(w, http.StatusConflict, out)
	case errors.Is(err, deploy.ErrFrozen):
		s.fail(w, r, err)
	case d != nil:
		out.Error = err.Error()
		writeJSON(w, http.StatusUnprocessableEntity, out)
	default:
		s.fail(w, r, err)
	}
}

// promoteTo is POST /api/v1/environments/{env}/promote {"project", "from", "message",
// "force", "without_requires"}. A release whose run has not passed is refused (409)
// unless an admin forces it; requires are checked as by deployTo.
func (s *Server) promoteTo(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Project         string `json:"project"`
		From            string `json:"from"`
		Message         string `json:"message"`
		Force           bool   `json:"force"`
		WithoutRequires bool   `json:"without_requires"`
	}
	if !s.decode(w, r, &req) || !s.mayForce(w, r, req.Force) {
		return
	}
	env, ok := s.mayChange(w, r, r.PathValue("env"))
	if !ok {
		return
	}
	if live, err := s.cfg.Store.Deployments(r.Context(), store.DeploymentFilter{Environment: req.From, Project: req.Project,
		Status: []string{deploy.StatusSuccess}, Limit: 1}); err == nil && len(live) == 1 {
		if !s.notOwnChange(w, r, env, req.Project, live[0].Digest) {
			return
		}
	}
	log := &lineLog{}
	d, err := s.cfg.Deploys.Promote(r.Context(), deploy.PromoteRequest{Project: req.Project, From: req.From, To: r.PathValue("env"),
		Trigger: principal(r).Name, Message: req.Message, Force: req.Force, WithoutRequires: req.WithoutRequires, Log: log.add})
	s.deployAnswer(w, r, d, log, err)
}

// auditJSON is an audit log entry in the API.
type auditJSON struct {
	ID          int64     `json:"id"`
	Time        time.Time `json:"time"`
	Actor       string    `json:"actor"`
	Action      string    `json:"action"`
	Environment string    `json:"environment,omitempty"`
	Project     string    `json:"project,omitempty"`
	Digest      string    `json:"digest,omitempty"`
	Run         int       `json:"run,omitempty"`
	Deployment  int64     `json:"deployment,omitempty"`
	Result      string    `json:"result,omitempty"`
	Message     string    `json:"message,omitempty"`
}

func (s *Server) auditEntries(r *http.Request) ([]auditJSON, error) {
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	es, err := s.cfg.Store.Audit(r.Context(), before, limit)
	if err != nil {
		return nil, err
	}
	out := make([]auditJSON, 0, len(es))
	for _, e := range es {
		out = append(out, auditJSON{ID: e.ID, Time: e.Time, Actor: e.Actor, Action: e.Action, Environment: e.Environment,
			Project: e.Project, Digest: e.Digest, Run: e.Run, Deployment: e.Deployment, Result: e.Result, Message: e.Message})
	}
	return out, nil
}

// listAudit is GET /api/v1/audit?before=ID&limit=N.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	out, err := s.auditEntries(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// approveRun is POST /api/v1/projects/{p}/runs/{n}/approve {"step", "reject", "message"}:
// a holder of the approval's role (or an admin) decides the approval the run waits for.
func (s *Server) approveRun(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Step    string `json:"step"`
		Reject  bool   `json:"reject"`
		Message string `json:"message"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	run, ok := s.run(w, r)
	if !ok {
		return
	}
	a, err := s.decide(r, run, req.Step, !req.Reject, req.Message)
	if err != nil {
		s.approvalFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"step": a.Step, "decision": a.Decision, "by": a.Actor, "message": a.Message})
}

// errCannotApprove is wrapped when the caller lacks the approval's role.
var errCannotApprove = errors.New("not allowed to decide this approval")

// decide checks the caller may decide run's approval, records the decision and its
// audit entry, and resumes the run.
func (s *Server) decide(r *http.Request, run *store.Run, step string, approve bool, message string) (*store.Approval, error) {
	p := principal(r)
	a, err := s.cfg.Runner.PendingApproval(r.Context(), run, step)
	if err != nil {
		return nil, err
	}
	if !p.CanApprove(a.Role) {
		return nil, fmt.Errorf("%w: step %s needs a user with the %s approval role (drover user add NAME --role developer --approves %s); %s has none",
			errCannotApprove, a.Step, a.Role, a.Role, p.Name)
	}
	env, err := s.separated(r.Context(), run)
	if err != nil {
		return nil, fmt.Errorf("check the separation of duties: %w", err) // when unsure, refuse
	}
	if env != "" && p.Name == s.pusher(r.Context(), run) {
		return nil, fmt.Errorf("%w: %s pushed this change, and %s says separation: true: someone else with the %s role approves it",
			errCannotApprove, p.Name, env, a.Role)
	}
	a, err = s.cfg.Runner.Decide(r.Context(), run, a.Step, approve, p.Name, message)
	if err != nil {
		return nil, err
	}
	action := "approve"
	if !approve {
		action = "reject"
	}
	e := &store.AuditEntry{Actor: p.Name, Action: action, Project: run.Project, Run: run.Number, Digest: run.Artifact,
		Result: a.Decision, Message: "step " + a.Step + joinMessage(message)}
	if err := s.cfg.Store.AppendAudit(r.Context(), e); err != nil {
		s.cfg.Log.Error("append to the audit log", "action", action, "err", err)
	}
	return a, nil
}

func joinMessage(m string) string {
	if m == "" {
		return ""
	}
	return ": " + m
}

// approvalFail answers an approval's error.
func (s *Server) approvalFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errCannotApprove):
		s.errorJSON(w, http.StatusForbidden, err.Error())
	case errors.Is(err, runner.ErrNoApproval), errors.Is(err, store.ErrExists):
		s.errorJSON(w, http.StatusConflict, err.Error())
	default:
		s.fail(w, r, err)
	}
}

// mayChange checks that the caller may change env: an environment with an approval
// role (declared, or production's default) takes changes only from holders of that
// role (or admins). It returns the environment, nil for one the change would create.
func (s *Server) mayChange(w http.ResponseWriter, r *http.Request, env string) (*store.Environment, bool) {
	role, e, err := s.cfg.Deploys.ApprovalRole(r.Context(), env)
	if err != nil {
		s.fail(w, r, err) // when unsure, refuse
		return nil, false
	}
	if p := principal(r); role != "" && !p.CanApprove(role) {
		msg := fmt.Sprintf("changes to %s need the %s approval role (drover user add NAME --role developer --approves %s); %s has none",
			env, role, role, p.Name)
		if e == nil || !e.Managed {
			msg += fmt.Sprintf(" (%s asks for it unless an environments.yml declares it otherwise)", env)
		}
		s.errorJSON(w, http.StatusForbidden, msg)
		return nil, false
	}
	return e, true
}

// notOwnChange refuses, for an environment e with separation: true (nil: one not made
// yet), a deploy or promotion of project's release ref by the person who pushed the
// change it was built from.
func (s *Server) notOwnChange(w http.ResponseWriter, r *http.Request, e *store.Environment, project, ref string) bool {
	if e == nil || !e.Separation {
		return true
	}
	env := e.Name
	p := principal(r)
	if ref == "" { // the newest release, as Deploy takes it
		rels, err := s.cfg.Releases.List(r.Context(), project)
		if err != nil || len(rels) == 0 {
			return true // Deploy answers that there is nothing to deploy
		}
		ref = rels[0].Tag
	}
	rel, err := s.cfg.Releases.Get(r.Context(), project, ref)
	if err != nil {
		return true // Deploy answers an unknown release itself
	}
	run, err := s.cfg.Store.Run(r.Context(), project, rel.Run)
	if err != nil {
		s.fail(w, r, err)
		return false
	}
	if s.pusher(r.Context(), run) == p.Name {
		s.errorJSON(w, http.StatusForbidden, fmt.Sprintf("%s pushed this change, and %s says separation: true: someone else deploys it there", p.Name, env))
		return false
	}
	return true
}

// pusher is who pushed the change a run builds: the trigger of the run it re-runs, if it
// is a re-run.
func (s *Server) pusher(ctx context.Context, run *store.Run) string {
	for i := 0; run.RerunOf != 0 && i < 100; i++ {
		prev, err := s.cfg.Store.Run(ctx, run.Project, run.RerunOf)
		if err != nil {
			break
		}
		run = prev
	}
	return run.Trigger
}

// separated names an environment the run deploys to whose changes need separation of
// duties; "" when none does.
func (s *Server) separated(ctx context.Context, run *store.Run) (string, error) {
	if s.cfg.Hosting == nil {
		return "", nil
	}
	p, err := s.runPipeline(ctx, run)
	if err != nil {
		return "", err
	}
	for _, st := range p.Steps {
		if st.Deploy == "" {
			continue
		}
		e, err := s.cfg.Store.Environment(ctx, st.Deploy)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if e.Separation {
			return e.Name, nil
		}
	}
	return "", nil
}

// runPipeline is the drover.yml a hosted project's run was made from.
func (s *Server) runPipeline(ctx context.Context, run *store.Run) (*pipeline.Pipeline, error) {
	data, err := source.ReadFileLimit(ctx, s.cfg.Hosting.RepoPath(run.Project), run.Commit, runner.PipelineFile, pipeline.MaxFileSize)
	if err != nil {
		return nil, err
	}
	return pipeline.Parse(runner.PipelineFile, data)
}

// envMissing is an environment a waiting run's deploy: steps go to, and the services its
// release requires that run nowhere there: as things stand, its deploy there is refused.
type envMissing struct {
	Env     string
	Missing []string
}

// List is "a", "a and b", "a, b and c".
func (e envMissing) List() string { return words.And(e.Missing) }

// missingRequires is, for each environment the run's deploy: steps that have not run yet
// go to, what its service requires and that environment lacks.
func (s *Server) missingRequires(ctx context.Context, run *store.Run, steps []stepJSON) ([]envMissing, error) {
	if s.cfg.Hosting == nil || s.cfg.Deploys == nil {
		return nil, nil
	}
	p, err := s.runPipeline(ctx, run)
	if err != nil || p.Service == nil || len(p.Service.Requires) == 0 {
		return nil, err
	}
	pending := map[string]bool{}
	for _, st := range steps {
		pending[st.Name] = st.Status == "pending"
	}
	var out []envMissing
	for _, st := range p.Steps {
		if st.Deploy == "" || !pending[st.Name] || slices.ContainsFunc(out, func(e envMissing) bool { return e.Env == st.Deploy }) {
			continue
		}
		if missing := s.cfg.Deploys.Missing(st.Deploy, p.Service.Requires); len(missing) > 0 {
			out = append(out, envMissing{Env: st.Deploy, Missing: missing})
		}
	}
	return out, nil
}
