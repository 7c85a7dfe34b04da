package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// anonymousToken is what the token endpoint hands anonymous callers of a --public
// server: docker insists on a non-empty token, and authenticate reads this one as no
// token at all.
const anonymousToken = "anonymous"

// registryHandler guards the OCI registry: pulls need the viewer role, pushes and deletes
// the developer role. Anonymous callers get a Bearer challenge naming the token endpoint
// (the flow docker login follows); Basic auth with the token as password works as well.
func (s *Server) registryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := RoleViewer
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			role = RoleDeveloper
		}
		p := principal(r)
		switch {
		case p.Can(role):
			s.cfg.Registry.ServeHTTP(w, r)
		case !p.Authenticated:
			s.registryChallenge(w, r, "sign in with a Drover token as the password: docker login "+r.Host)
		default:
			registryError(w, http.StatusForbidden, "DENIED", fmt.Sprintf("%s needs the %s role", r.Method, role))
		}
	})
}

// registryChallenge answers 401 with the challenge of the registry token flow.
func (s *Server) registryChallenge(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/auth/token",service="drover"`, baseURL(r)))
	registryError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
}

// registryToken is the token endpoint of the registry token flow: a client that
// authenticated with Basic auth (a Drover token as the password) gets that token back
// as its bearer token. Tokens carry roles, not scopes, so the scope asked for is not
// narrowed.
func (s *Server) registryToken(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	token := anonymousToken
	switch {
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
