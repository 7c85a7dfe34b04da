package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/drover-cd/drover/registry"
	"github.com/drover-cd/drover/store"
)

// anonymousToken is what the token endpoint hands anonymous callers of a --public
// server: docker insists on a non-empty token, and authenticate reads this one as no
// token at all.
const anonymousToken = "anonymous"

// registryHandler guards the OCI registry: pulls need the viewer role, pushes and deletes
// the developer role, and a project's repositories take writes from its runs only (see
// refuseWrite). Anonymous callers get a Bearer challenge naming the token endpoint (the
// flow docker login follows); Basic auth with the token as password works as well.
func (s *Server) registryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := RoleViewer
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			role = RoleDeveloper
		}
		p := principal(r)
		switch {
		case p.Machine != "" && (mayPull(p, r) || mayStepRegistry(p, r)):
			s.cfg.Registry.ServeHTTP(w, r)
		case p.Machine != "":
			registryError(w, http.StatusForbidden, "DENIED", machineRefusal(p, r))
		case p.Can(role) && role == RoleViewer:
			s.cfg.Registry.ServeHTTP(w, r)
		case p.Can(role):
			if status, msg := s.refuseWrite(r, p); status != 0 {
				s.cfg.Log.Warn("registry write refused", "method", r.Method, "path", r.URL.Path, "who", p.Name, "why", msg)
				registryError(w, status, "DENIED", msg)
				return
			}
			s.cfg.Registry.ServeHTTP(w, r)
		case !p.Authenticated:
			s.registryChallenge(w, r, "sign in with a Drover token as the password: docker login "+r.Host)
		default:
			registryError(w, http.StatusForbidden, "DENIED", fmt.Sprintf("%s needs the %s role", r.Method, role))
		}
	})
}

// refuseWrite says why p may not make the write r asks for (a status and a message), or
// returns 0. A repository whose first path component is a project's name (in any case)
// belongs to that project: its releases, run tags, artifacts and build: images. Runs
// publish through the registry's in-process API and build images through the server's
// own Docker Engine, so over HTTP only that engine writes there, and nobody deletes:
// what a release or a kept run references goes only by retention and garbage
// collection. Other repositories (base images, tools) take writes by role.
func (s *Server) refuseWrite(r *http.Request, p Principal) (int, string) {
	repo, ok := registry.RepositoryOf(r.URL.Path)
	if !ok {
		return 0, "" // not an endpoint: the registry answers
	}
	first, _, _ := strings.Cut(repo, "/")
	proj, err := s.cfg.Store.ProjectFold(r.Context(), first)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, ""
	case err != nil:
		// Refuse when the owner cannot be known, rather than let a forgery through.
		s.cfg.Log.Error("registry: find the project owning a repository", "repository", repo, "err", err)
		return http.StatusServiceUnavailable, fmt.Sprintf("cannot tell whether %s belongs to a project: %v; try again", repo, err)
	case r.Method == http.MethodDelete:
		return http.StatusForbidden, fmt.Sprintf("%s belongs to project %s: nothing in it is deleted by hand; retention and garbage collection remove what no release or kept run needs (drover project set %s --keep-runs N, drover registry gc)", repo, proj.Name, proj.Name)
	case !p.Runs:
		return http.StatusForbidden, fmt.Sprintf("%s belongs to project %s: only its runs write there; push other images to a repository of their own, such as base/NAME or tools/NAME", repo, proj.Name)
	}
	return 0, ""
}

// registryChallenge answers 401 with the challenge of the registry token flow.
func (s *Server) registryChallenge(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/auth/token",service="drover"`, baseURL(r)))
	registryError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
}

// registryToken is the token endpoint of the registry token flow: a client that
// authenticated with Basic auth (a Drover token as the password) gets that token back
// as its bearer token, so revoking it ends the bearer token too. Tokens carry roles,
// not scopes, so the scope asked for is not narrowed; a pull token's own scope is
// checked on each registry request. Other machine tokens get nothing.
func (s *Server) registryToken(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	token := anonymousToken
	switch {
	case p.Machine != "" && p.Machine != MachinePull && p.Machine != MachineStep:
		registryError(w, http.StatusForbidden, "DENIED", machineRefusal(p, r))
		return
	case p.Authenticated:
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			token = strings.TrimPrefix(h, "Bearer ")
		} else {
			_, token, _ = r.BasicAuth()
		}
	case !p.Can(RoleViewer):
		s.registryChallenge(w, r, "sign in with a Drover token as the password")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": token, "access_token": token,
		"expires_in": 3600, "issued_at": time.Now().UTC().Format(time.RFC3339)})
}

// baseURL is the scheme and host the request came to.
func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// registryError answers in the distribution spec's error format.
func registryError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	writeJSON(w, status, map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}
