package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/secret"
	"github.com/drover-cd/drover/store"
)

// Secrets over the API: values go in, never out. Viewers list what there is;
// developers set and remove a project's secrets for no environment or for environments
// without approval rules; global secrets and secrets of an environment with approval
// rules need an admin or a holder of that environment's approval role; a rekey needs an
// admin. Machine tokens get nothing.

// secretJSON is a secret as the API shows it: never its value.
type secretJSON struct {
	Name    string    `json:"name"`
	Project string    `json:"project"` // "" for a global secret
	Env     string    `json:"env"`     // "" for no environment
	Branch  string    `json:"branch"`  // glob of the branches it goes to; "" for all
	Version int       `json:"version"`
	Actor   string    `json:"actor"` // who set this version
	Updated time.Time `json:"updated"`
	// Warning, when not "", is something the caller should know: the project does
	// not exist yet.
	Warning string `json:"warning,omitempty"`
}

func toSecretJSON(m secret.Meta) secretJSON {
	return secretJSON{Name: m.Name, Project: m.Project, Env: m.Environment, Branch: m.Branch, Version: m.Version,
		Actor: m.Actor, Updated: m.Updated}
}

// secretsOn answers 503 and returns false when the server keeps no secrets.
func (s *Server) secretsOn(w http.ResponseWriter) bool {
	if s.cfg.Secrets == nil {
		s.errorJSON(w, http.StatusServiceUnavailable, "secrets are not configured on this server")
		return false
	}
	return true
}

// secretFail answers an error of the vault.
func (s *Server) secretFail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, secret.ErrInvalid) {
		s.errorJSON(w, http.StatusBadRequest, err.Error())
		return
	}
	s.fail(w, r, err)
}

// setSecret is PUT /api/v1/secrets/{name} {"value" or "value_base64", "project", "env",
// "branch"}: a new secret, or a new version of one. The answer is the secret without
// its value.
func (s *Server) setSecret(w http.ResponseWriter, r *http.Request) {
	if !s.secretsOn(w) {
		return
	}
	var req struct {
		Value       *string `json:"value"`
		ValueBase64 *string `json:"value_base64"` // for values that are not UTF-8
		Project     string  `json:"project"`
		Env         string  `json:"env"`
		Branch      string  `json:"branch"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	var value []byte
	switch {
	case (req.Value == nil) == (req.ValueBase64 == nil):
		s.errorJSON(w, http.StatusBadRequest, `give the value as "value" (text) or "value_base64", one of them`)
		return
	case req.Value != nil:
		value = []byte(*req.Value)
	default:
		v, err := base64.StdEncoding.DecodeString(*req.ValueBase64)
		if err != nil {
			s.errorJSON(w, http.StatusBadRequest, "value_base64: "+err.Error())
			return
		}
		value = v
	}
	defer clear(value)
	k := secret.Key{Name: r.PathValue("name"), Project: req.Project, Environment: req.Env}
	if err := secret.CheckKey(k); err != nil {
		s.secretFail(w, r, err)
		return
	}
	warning, ok := s.secretProject(w, r, req.Project)
	if !ok || !s.mayChangeSecret(w, r, k) {
		return
	}
	m, err := s.cfg.Secrets.Set(r.Context(), k, value, req.Branch, principal(r).Name)
	if err != nil && m.Version == 0 {
		s.secretFail(w, r, err)
		return
	}
	if err != nil { // set, but not audited
		s.cfg.Log.Error("a secret was set but not audited", "secret", k.String(), "err", err)
	}
	out := toSecretJSON(m)
	out.Warning = warning
	writeJSON(w, http.StatusOK, out)
}

// secretProject checks the project a secret is set for. A project that does not exist
// yet may have secrets (a hosted project is made by its first push, whose run may need
// them): the answer warns about it, so a misspelt name shows. A name no project could
// have, or one that differs from a project's in case only, is refused.
func (s *Server) secretProject(w http.ResponseWriter, r *http.Request, project string) (warning string, ok bool) {
	if project == "" {
		return "", true
	}
	p, err := s.cfg.Store.ProjectFold(r.Context(), project)
	switch {
	case err == nil && p.Name == project:
		return "", true
	case err == nil:
		s.errorJSON(w, http.StatusBadRequest, fmt.Sprintf("project %q: there is a project %q; secrets go by the exact name: use --project %s",
			project, p.Name, p.Name))
		return "", false
	case !errors.Is(err, store.ErrNotFound):
		s.fail(w, r, err)
		return "", false
	}
	if err := release.CheckProjectName(project); err != nil {
		s.errorJSON(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return fmt.Sprintf("project %s does not exist yet: the secret waits for it (a push to /git/%s.git makes it); if the name is misspelt, drover secret rm it",
		project, project), true
}

// mayChangeSecret checks that the caller may set or remove the secret k: a developer a
// project's secret for no environment or one without approval rules; an admin or a
// holder of the environment's approval role a global one, or one of an environment
// with approval rules.
func (s *Server) mayChangeSecret(w http.ResponseWriter, r *http.Request, k secret.Key) bool {
	p := principal(r)
	role := ""
	if k.Environment != "" {
		var err error
		if role, err = s.approvalRole(r.Context(), k.Environment); err != nil {
			s.fail(w, r, err) // when unsure, refuse
			return false
		}
	}
	switch {
	case p.Can(RoleAdmin):
		return true
	case k.Project == "" && role == "":
		s.errorJSON(w, http.StatusForbidden, fmt.Sprintf("global secrets (for every project) need an admin; %s is a %s: "+
			"set it for one project with --project P", p.Name, p.Role))
		return false
	case role != "" && !p.CanApprove(role):
		s.errorJSON(w, http.StatusForbidden, fmt.Sprintf("secrets of environment %s need an admin or the %s approval role, as its deploys do "+
			"(drover user add NAME --role developer --approves %s); %s has neither", k.Environment, role, role, p.Name))
		return false
	}
	return true
}

// approvalRole is the approval role changes to env need ("" for none): the deploy
// manager's answer, or, on a server without deploys, the same rule (deploy/gates.go)
// on the stored environment: what environments.yml declared, else production needs a
// release-manager.
func (s *Server) approvalRole(ctx context.Context, env string) (string, error) {
	if s.cfg.Deploys != nil {
		role, _, err := s.cfg.Deploys.ApprovalRole(ctx, env)
		return role, err
	}
	e, err := s.cfg.Store.Environment(ctx, env)
	switch {
	case err == nil && (e.Managed || e.Approval != ""):
		return e.Approval, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return "", err
	case env == "production":
		return "release-manager", nil
	}
	return "", nil
}

// listSecrets is GET /api/v1/secrets[?project=P][&all=1]: the global secrets and P's,
// or every secret; never a value.
func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	if !principal(r).Authenticated { // anonymous, with --public
		s.unauthorized(w, r, "sign in with a token to list secrets")
		return
	}
	if !s.secretsOn(w) {
		return
	}
	project, all := r.URL.Query().Get("project"), r.URL.Query().Get("all") != ""
	ms, err := s.cfg.Secrets.List(r.Context(), project, all)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out, own := []secretJSON{}, false
	for _, m := range ms {
		out = append(out, toSecretJSON(m))
		own = own || (project != "" && m.Project == project)
	}
	if project != "" && !own && !all {
		if _, err := s.cfg.Store.Project(r.Context(), project); errors.Is(err, store.ErrNotFound) {
			s.errorJSON(w, http.StatusNotFound, fmt.Sprintf("no project %s, and no secrets for it: see drover secret ls --all", project))
			return
		} else if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// removeSecret is DELETE /api/v1/secrets/{name}?project=P&env=E.
func (s *Server) removeSecret(w http.ResponseWriter, r *http.Request) {
	if !s.secretsOn(w) {
		return
	}
	k := secret.Key{Name: r.PathValue("name"), Project: r.URL.Query().Get("project"), Environment: r.URL.Query().Get("env")}
	if err := secret.CheckKey(k); err != nil {
		s.secretFail(w, r, err)
		return
	}
	if !s.mayChangeSecret(w, r, k) {
		return
	}
	if err := s.cfg.Secrets.Remove(r.Context(), k, principal(r).Name); err != nil {
		s.secretFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": k.String()})
}

// rekeySecrets is POST /api/v1/secrets/rekey: every value moves to a new key.
func (s *Server) rekeySecrets(w http.ResponseWriter, r *http.Request) {
	if !s.secretsOn(w) {
		return
	}
	n, err := s.cfg.Secrets.Rekey(r.Context(), principal(r).Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rekeyed": n, "key_id": s.cfg.Secrets.Keyring().ID()})
}
