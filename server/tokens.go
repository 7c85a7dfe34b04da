package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/internal/duration"
	"github.com/drover-cd/drover/store"
)

// usage notes when tokens were last used without a database write per request: a
// token's LastUsed is written when it was last written a minute ago or more, so it is
// at most a minute behind. The note is in memory only; after a restart the stored
// LastUsed stands in for it.
type usage struct {
	mu      sync.Mutex
	written map[int64]time.Time // by token ID: the LastUsed last written
}

// usageEvery is how often at most a token's LastUsed is written.
const usageEvery = time.Minute

// note writes t's use now if it is due.
func (u *usage) note(ctx context.Context, st store.Store, t *store.Token, log *slog.Logger) {
	now := time.Now()
	u.mu.Lock()
	if u.written == nil {
		u.written = map[int64]time.Time{}
	}
	last := u.written[t.ID]
	if t.LastUsed.After(last) {
		last = t.LastUsed
	}
	due := now.Sub(last) >= usageEvery
	if due {
		u.written[t.ID] = now
		if len(u.written) > 10000 { // forget notes that are due anyway
			for id, at := range u.written {
				if now.Sub(at) >= usageEvery {
					delete(u.written, id)
				}
			}
		}
	}
	u.mu.Unlock()
	if due {
		if err := st.TouchToken(ctx, t.ID, now); err != nil && ctx.Err() == nil {
			log.Warn("note a token's use", "token", t.ID, "err", err)
		}
	}
}

// userJSON is a user as the API shows it.
type userJSON struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Approvals []string  `json:"approvals"`
	Created   time.Time `json:"created"`
}

func toUserJSON(u *store.User) userJSON {
	j := userJSON{ID: u.ID, Name: u.Name, Role: u.Role, Approvals: u.Groups, Created: u.Created}
	if j.Approvals == nil {
		j.Approvals = []string{}
	}
	return j
}

// tokenJSON is a token as the API shows it: never its secret or hash.
type tokenJSON struct {
	ID         int64     `json:"id"`
	User       string    `json:"user,omitempty"`    // "" for a machine token
	Machine    string    `json:"machine,omitempty"` // agent, proxy, pull
	Repository string    `json:"repository,omitempty"`
	Label      string    `json:"label"`
	Role       string    `json:"role,omitempty"`
	Approvals  []string  `json:"approvals,omitempty"`
	State      string    `json:"state"` // active, expired, revoked
	Created    time.Time `json:"created"`
	LastUsed   time.Time `json:"last_used,omitzero"`
	Expires    time.Time `json:"expires,omitzero"`
	Revoked    time.Time `json:"revoked,omitzero"`
}

func toTokenJSON(t *store.Token, now time.Time) tokenJSON {
	j := tokenJSON{ID: t.ID, User: t.User, Machine: t.Machine, Repository: t.Repository, Label: t.Label, Role: t.Role,
		Approvals: t.Groups, State: "active", Created: t.Created, LastUsed: t.LastUsed, Expires: t.Expires, Revoked: t.Revoked}
	switch {
	case !t.Revoked.IsZero():
		j.State = "revoked"
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		j.State = "expired"
	}
	return j
}

// addUser is POST /api/v1/users {"name", "role", "approvals"}.
func (s *Server) addUser(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name      string   `json:"name"`
		Role      string   `json:"role"`
		Approvals []string `json:"approvals"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	u := &store.User{Name: req.Name, Role: req.Role, Groups: req.Approvals}
	err := AddUser(r.Context(), s.cfg.Store, u)
	if errors.Is(err, store.ErrExists) {
		s.errorJSON(w, http.StatusConflict, fmt.Sprintf("user %s exists already: give them a token with drover token create --user %s", req.Name, req.Name))
		return
	}
	if err != nil {
		s.userFail(w, r, err)
		return
	}
	msg := u.Name + ": " + u.Role
	if len(u.Groups) > 0 {
		msg += ", approves " + strings.Join(u.Groups, ",")
	}
	s.audit(r, "user-add", msg)
	writeJSON(w, http.StatusCreated, toUserJSON(u))
}

// userFail answers an error of AddUser or IssueToken.
func (s *Server) userFail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrInvalid) {
		s.errorJSON(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
		return
	}
	s.fail(w, r, err)
}

// listUsers is GET /api/v1/users.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	us, err := s.cfg.Store.Users(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []userJSON{}
	for _, u := range us {
		out = append(out, toUserJSON(u))
	}
	writeJSON(w, http.StatusOK, out)
}

// createToken is POST /api/v1/tokens. It makes a token for a user ({"user", "label",
// "expires"}), for a machine ({"machine", "repository", "label", "expires"}), or, as
// before users existed, a user of its own with the token ({"name", "role",
// "approvals"}). The answer holds the token, shown this once.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		User       string   `json:"user"`
		Machine    string   `json:"machine"`
		Repository string   `json:"repository"`
		Label      string   `json:"label"`
		Expires    string   `json:"expires"` // a duration: 90d, 720h; "" never (a pull token: 1h)
		Name       string   `json:"name"`
		Role       string   `json:"role"`
		Approvals  []string `json:"approvals"` // approval roles, e.g. release-manager
	}
	if !s.decode(w, r, &req) {
		return
	}
	ctx, now := r.Context(), time.Now()
	t := &store.Token{Machine: req.Machine, Repository: req.Repository, Label: req.Label}
	if req.Expires != "" {
		d, err := duration.Parse(req.Expires)
		if err != nil {
			s.errorJSON(w, http.StatusBadRequest, "expires: "+err.Error())
			return
		}
		t.Expires = now.Add(d)
	}
	legacy := req.User == "" && req.Machine == ""
	switch {
	case !legacy && (req.Role != "" || len(req.Approvals) > 0 || req.Name != ""):
		s.errorJSON(w, http.StatusBadRequest, "a user's token holds the user's role and approval roles, and a machine's none: "+
			"leave out name, role and approvals (drover user add sets them)")
		return
	case req.User != "":
		u, err := s.cfg.Store.User(ctx, req.User)
		if errors.Is(err, store.ErrNotFound) {
			s.errorJSON(w, http.StatusNotFound, fmt.Sprintf("no user %s: add them first with drover user add %s --role ROLE", req.User, req.User))
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		t.UserID = u.ID
	case legacy:
		if req.Role == "" {
			req.Role = RoleDeveloper
		}
		if req.Name == "" {
			req.Name = req.Role
		}
		u := &store.User{Name: req.Name, Role: req.Role, Groups: req.Approvals}
		if err := checkLabelAndLife(t, now); err != nil { // before the user is made
			s.userFail(w, r, err)
			return
		}
		if err := addUserFreeName(ctx, s.cfg.Store, u); err != nil {
			s.userFail(w, r, err)
			return
		}
		s.audit(r, "user-add", u.Name+": "+u.Role+" (with the token made for it)")
		t.UserID = u.ID
	}
	secret, err := IssueToken(ctx, s.cfg.Store, t, now)
	if err != nil {
		s.userFail(w, r, err)
		return
	}
	s.audit(r, "token-create", describeToken(t))
	out := struct {
		tokenJSON
		Name  string `json:"name"`  // the user's name (the machine token's)
		Token string `json:"token"` // the secret, shown this once
	}{toTokenJSON(t, now), principalOf(t).Name, secret}
	writeJSON(w, http.StatusCreated, out)
}

// describeToken says whose token t is, for the audit log.
func describeToken(t *store.Token) string {
	var b strings.Builder
	if t.Machine != "" {
		fmt.Fprintf(&b, "token %d of machine %s", t.ID, t.Machine)
		if t.Repository != "" {
			fmt.Fprintf(&b, " for %s", t.Repository)
		}
	} else {
		fmt.Fprintf(&b, "token %d of %s (%s)", t.ID, t.User, t.Role)
	}
	if t.Label != "" {
		fmt.Fprintf(&b, ", label %q", t.Label)
	}
	if !t.Expires.IsZero() {
		fmt.Fprintf(&b, ", expires %s", t.Expires.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// audit appends what the caller did to people and tokens to the audit log.
func (s *Server) audit(r *http.Request, action, message string) {
	e := &store.AuditEntry{Actor: principal(r).Name, Action: action, Result: "success", Message: message}
	if err := s.cfg.Store.AppendAudit(r.Context(), e); err != nil {
		s.cfg.Log.Error("append to the audit log", "action", action, "err", err)
	}
}

// listTokens is GET /api/v1/tokens[?user=NAME]: as in GitLab, admins see every token
// (or one user's), everyone else their own. Secrets are never shown: only hashes are
// kept.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if !p.Can(RoleAdmin) && p.UserID == 0 { // anonymous, with --public
		s.unauthorized(w, r, "sign in with your own token to list your tokens")
		return
	}
	f := store.TokenFilter{UserID: p.UserID}
	if p.Can(RoleAdmin) {
		f.UserID = 0
		if name := r.URL.Query().Get("user"); name != "" {
			u, err := s.cfg.Store.User(r.Context(), name)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			f.UserID = u.ID
		}
	}
	ts, err := s.cfg.Store.Tokens(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := time.Now()
	out := []tokenJSON{}
	for _, t := range ts {
		out = append(out, toTokenJSON(t, now))
	}
	writeJSON(w, http.StatusOK, out)
}

// revokeToken is DELETE /api/v1/tokens/{id}: admins revoke any token, everyone else
// their own (another's is 404, as if it did not exist). It takes effect on the next
// request the token makes, whichever door it comes through.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if !p.Can(RoleAdmin) && p.UserID == 0 { // anonymous, with --public
		s.unauthorized(w, r, "sign in with your own token to revoke it")
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.errorJSON(w, http.StatusBadRequest, fmt.Sprintf("token %q: give the ID drover token ls shows", r.PathValue("id")))
		return
	}
	t, err := s.cfg.Store.Token(r.Context(), id)
	if err == nil && !p.Can(RoleAdmin) && t.UserID != p.UserID {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		msg := fmt.Sprintf("no token %d: see drover token ls", id)
		if !p.Can(RoleAdmin) {
			msg = fmt.Sprintf("no token %d of yours: see drover token ls", id)
		}
		s.errorJSON(w, http.StatusNotFound, msg)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !t.Revoked.IsZero() {
		s.errorJSON(w, http.StatusConflict, fmt.Sprintf("token %d was revoked at %s already", id, t.Revoked.UTC().Format(time.RFC3339)))
		return
	}
	if err := s.cfg.Store.RevokeToken(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	s.audit(r, "token-revoke", describeToken(t))
	if t, err = s.cfg.Store.Token(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTokenJSON(t, time.Now()))
}
