package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/drover-cd/drover/dispatch"
	"github.com/drover-cd/drover/store"
)

// Roles, each allowed what the ones before it are.
const (
	RoleViewer    = "viewer"    // read projects, runs, logs; clone
	RoleDeveloper = "developer" // also push, start, cancel and re-run runs
	RoleAdmin     = "admin"     // also add projects, users and tokens
)

func roleRank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RoleDeveloper:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// ValidRole reports whether role is one of the roles.
func ValidRole(role string) bool { return roleRank(role) > 0 }

// Principal is who made a request.
type Principal struct {
	// Name is the user's name, which runs, approvals, deploys and the audit log
	// record; "proxy token 7" for a machine token; "anonymous" without a token.
	Name          string
	Role          string   // "" when nothing is allowed, as for machine tokens
	Authenticated bool     // a valid token was presented
	Groups        []string // approval roles, e.g. release-manager
	UserID        int64    // the user's; 0 for machines and anonymous callers
	TokenID       int64    // the token presented; 0 for none
	// Machine is the job of a machine token (MachineAgent, MachineProxy, MachinePull),
	// which holds no role: it opens only the routes of its job.
	Machine string
	// Repository is the one repository a pull token reads; for a step's credential
	// (MachineStep), the project whose run it is.
	Repository string
	// Lease is the lease whose credential was presented (MachineStep); Pushes are the
	// image tags ("REPO:TAG") its build: step may push.
	Lease  int64
	Pushes []string
	// Runs marks the server's own Docker Engine, which pushes the images runs build
	// with a token that lives in the server's memory only. Only it writes projects'
	// image repositories over HTTP; a token's name can never make a caller this.
	Runs bool
}

// CanApprove reports whether p may decide an approval asking for role: an admin, or a
// holder of that approval role.
func (p Principal) CanApprove(role string) bool {
	return p.Authenticated && (p.Role == RoleAdmin || slices.Contains(p.Groups, role))
}

// Can reports whether p holds role or a higher one.
func (p Principal) Can(role string) bool { return roleRank(p.Role) >= roleRank(role) }

// NewToken makes a random token and the hash the store keeps of it.
func NewToken() (token string, hash []byte, err error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("make token: %w", err)
	}
	token = "drover_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	return token, HashToken(token), nil
}

// HashToken is how a token is looked up: its SHA-256.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// TokenCookie is the cookie the web UI keeps the signed-in token in.
const TokenCookie = "drover_token"

type principalKey struct{}

// principal is who made r; set by authenticate.
func principal(r *http.Request) Principal {
	p, _ := r.Context().Value(principalKey{}).(Principal)
	return p
}

// authenticate finds the caller from a bearer token, or from HTTP basic auth with the
// token as password (what git clients send). A wrong token is refused outright, so a
// typo is not mistaken for anonymous access.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := Principal{Name: "anonymous"}
		if s.cfg.Public {
			p.Role = RoleViewer
		}
		token, fromCookie := "", false
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			if token = strings.TrimPrefix(h, "Bearer "); token == anonymousToken {
				token = "" // handed out by the registry token endpoint to anonymous callers
			}
		} else if _, pass, ok := r.BasicAuth(); ok {
			token = pass
		} else if c, err := r.Cookie(TokenCookie); err == nil && !unsafeAPI(r) {
			token, fromCookie = c.Value, true // the web UI's sign-in; SameSite=Strict keeps other sites from using it
		}
		if token != "" && s.cfg.EngineToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.EngineToken)) == 1 {
			p = Principal{Name: "docker-engine", Role: RoleDeveloper, Authenticated: true, Runs: true}
			token = ""
		}
		if token != "" && s.cfg.Agents != nil && strings.HasPrefix(token, dispatch.TokenPrefix) {
			// A step's credential lives in the dispatcher's memory, as long as its lease.
			c, ok := s.cfg.Agents.Credential(token)
			if !ok {
				s.unauthorized(w, r, "the lease of this step is over: the server lost it, gave it up or has its result")
				return
			}
			p = Principal{Name: fmt.Sprintf("step lease %d", c.Lease), Authenticated: true, Machine: MachineStep,
				Repository: c.Project, Lease: c.Lease, Pushes: c.Pushes}
			token = ""
		}
		if token != "" {
			// Every request reads its token afresh, so a revoked or expired token is
			// refused at once on every door: API, git, registry and web session.
			t, err := s.cfg.Store.TokenByHash(r.Context(), HashToken(token))
			why := ""
			switch {
			case errors.Is(err, store.ErrNotFound):
				why = "the token is not valid"
			case err != nil:
				s.fail(w, r, err)
				return
			default:
				why = refused(t, time.Now())
			}
			switch {
			case why != "" && fromCookie:
				// A stale sign-in: forget it and carry on as anonymous, so /login still works.
				http.SetCookie(w, &http.Cookie{Name: TokenCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
				return
			case why != "":
				s.unauthorized(w, r, why)
				return
			}
			s.usage.note(r.Context(), s.cfg.Store, t, s.cfg.Log)
			p = principalOf(t)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// refused says why t may not be used at now; "" when it may.
func refused(t *store.Token, now time.Time) string {
	switch {
	case !t.Revoked.IsZero():
		return fmt.Sprintf("the token was revoked at %s; create a new one with drover token create", t.Revoked.UTC().Format(time.RFC3339))
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return fmt.Sprintf("the token expired at %s; create a new one with drover token create", t.Expires.UTC().Format(time.RFC3339))
	}
	return ""
}

// stillValid reports why the token p presented no longer works (revoked, expired or
// gone), or nil: for requests that outlive their authentication, such as event streams.
func (s *Server) stillValid(ctx context.Context, p Principal) error {
	if p.TokenID == 0 {
		return nil // anonymous (--public) or the server's own engine
	}
	t, err := s.cfg.Store.Token(ctx, p.TokenID)
	if err != nil {
		return err
	}
	if why := refused(t, time.Now()); why != "" {
		return errors.New(why)
	}
	return nil
}

// principalOf is who presents t: its user, or its machine.
func principalOf(t *store.Token) Principal {
	if t.Machine != "" {
		return Principal{Name: fmt.Sprintf("%s token %d", t.Machine, t.ID), Authenticated: true, TokenID: t.ID,
			Machine: t.Machine, Repository: t.Repository}
	}
	return Principal{Name: t.User, Role: t.Role, Authenticated: true, Groups: t.Groups, UserID: t.UserID, TokenID: t.ID}
}

// require answers 401 (no credentials) or 403 (not enough) unless the caller holds role.
func (s *Server) require(role string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principal(r)
		switch {
		case p.Can(role):
			next(w, r)
		case !p.Authenticated:
			// 401, not 403, for anonymous callers even with --public: git sends its
			// credentials only after a 401 challenge.
			s.unauthorized(w, r, "sign in with a token: Authorization: Bearer TOKEN")
		case p.Machine != "":
			s.errorJSON(w, http.StatusForbidden, machineRefusal(p, r))
		default:
			s.errorJSON(w, http.StatusForbidden, fmt.Sprintf("%s needs the %s role; %s has %s", r.URL.Path, role, p.Name, p.Role))
		}
	}
}

// unsafeAPI reports a state-changing request to the API or to git. The web UI's cookie
// does not authenticate those: a page on another port or subdomain of the same site
// could otherwise make a signed-in browser send them (SameSite stops only other sites).
// The same goes for the registry. The UI's own forms post to its pages, which check
// the origin.
func unsafeAPI(r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
		return false
	}
	return strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/git/") || strings.HasPrefix(r.URL.Path, "/v2/")
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v2/"), r.URL.Path == "/auth/token":
		s.registryChallenge(w, r, msg)
		return
	case strings.HasPrefix(r.URL.Path, "/git/"):
		w.Header().Set("WWW-Authenticate", `Basic realm="drover"`)
	}
	s.errorJSON(w, http.StatusUnauthorized, msg)
}
