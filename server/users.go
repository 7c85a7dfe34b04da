package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/drover-cd/drover/registry"
	"github.com/drover-cd/drover/store"
)

// ErrInvalid is wrapped by the errors of AddUser and IssueToken that the caller can
// fix: a bad name, role, approval role, machine kind, repository or expiry.
var ErrInvalid = errors.New("invalid")

// invalid is an error wrapping ErrInvalid that says msg.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Pull tokens are short-lived: an hour unless asked otherwise, never more than a day.
const (
	pullDefaultLife = time.Hour
	pullMaxLife     = 24 * time.Hour
)

// reservedNames name what starts runs and deploys that is not a person, in triggers
// and the audit log; no user may take them.
var reservedNames = []string{"anonymous", "drover", "docker-engine", "push", "poll", "webhook", "manual", "reconcile", "rollback"}

// checkUserName says what is wrong with name as a user's name; nil when nothing.
func checkUserName(name string) error {
	ok := name != "" && len(name) <= 64
	for i, c := range name {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !letter && (i == 0 || c != '.' && c != '_' && c != '-') {
			ok = false
		}
	}
	if !ok {
		return invalid("user name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64", name)
	}
	if slices.Contains(reservedNames, name) {
		return invalid("user name %q names what the server does itself in runs and the audit log; choose another", name)
	}
	return nil
}

// validGroup reports whether g can name an approval role.
func validGroup(g string) bool {
	if g == "" || len(g) > 64 {
		return false
	}
	for _, c := range g {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkUser says what is wrong with u's name, role and approval roles.
func checkUser(u *store.User) error {
	if err := checkUserName(u.Name); err != nil {
		return err
	}
	if !ValidRole(u.Role) {
		return invalid("role %q: use %s, %s or %s", u.Role, RoleViewer, RoleDeveloper, RoleAdmin)
	}
	for _, g := range u.Groups {
		if !validGroup(g) {
			return invalid("approval role %q: use lower-case letters, digits, '-' and '_'", g)
		}
	}
	return nil
}

// AddUser checks and stores u. Errors wrap ErrInvalid, or store.ErrExists for a taken
// name.
func AddUser(ctx context.Context, st store.Store, u *store.User) error {
	if err := checkUser(u); err != nil {
		return err
	}
	return st.CreateUser(ctx, u)
}

// addUserFreeName stores u under its name, or, when that is taken, the first free
// one of NAME-2, NAME-3, ...: a token made the old way (a role, no user) makes a user
// of its own, as each token was its own person before users existed.
func addUserFreeName(ctx context.Context, st store.Store, u *store.User) error {
	if err := checkUser(u); err != nil {
		return err
	}
	base := u.Name
	for n := 2; ; n++ {
		err := st.CreateUser(ctx, u)
		if !errors.Is(err, store.ErrExists) || n > 1000 {
			return err
		}
		u.Name = base + "-" + strconv.Itoa(n)
	}
}

// IssueToken makes a secret for t, a person's token (UserID set) or a machine's
// (Machine set, and Repository for a pull token), stores its hash with t and returns
// the secret, which is shown once and never stored. A pull token without Expires
// lives pullDefaultLife. Errors the caller can fix wrap ErrInvalid.
func IssueToken(ctx context.Context, st store.Store, t *store.Token, now time.Time) (string, error) {
	switch {
	case t.UserID != 0 && t.Machine != "":
		return "", invalid("a token belongs to a user or to a machine, not both")
	case t.UserID == 0 && !slices.Contains(machines, t.Machine):
		return "", invalid("machine %q: use %s, %s or %s", t.Machine, MachineAgent, MachineProxy, MachinePull)
	case t.Machine == MachinePull && !registry.ValidRepository(t.Repository):
		return "", invalid("a pull token reads one repository: give its name, such as shop/image (lower case, '/' between parts)")
	case t.Machine != MachinePull && t.Repository != "":
		return "", invalid("only pull tokens are scoped to a repository")
	}
	if err := checkLabelAndLife(t, now); err != nil {
		return "", err
	}
	if t.Machine == MachinePull {
		if t.Expires.IsZero() {
			t.Expires = now.Add(pullDefaultLife)
		}
		if t.Expires.Sub(now) > pullMaxLife {
			return "", invalid("a pull token lives at most %s; make a new one when it runs out", "24h")
		}
	}
	secret, hash, err := NewToken()
	if err != nil {
		return "", err
	}
	t.Hash = hash
	if err := st.CreateToken(ctx, t); err != nil {
		return "", err
	}
	return secret, nil
}

// checkLabelAndLife says what is wrong with t's label and expiry, whoever it is for.
func checkLabelAndLife(t *store.Token, now time.Time) error {
	switch {
	case len(t.Label) > 200:
		return invalid("the label is longer than 200 characters")
	case !t.Expires.IsZero() && !t.Expires.After(now):
		return invalid("the token would expire at once: give a positive duration, or none for a token that does not expire")
	}
	return nil
}

// CreateToken makes a user of its own named name (or NAME-2, NAME-3, ... when taken),
// with role and approval roles, and a token for it, and returns the token: what
// `drover token create --role R` did before users existed, and still does.
func CreateToken(ctx context.Context, st store.Store, name, role string, groups ...string) (string, error) {
	u := &store.User{Name: name, Role: role, Groups: groups}
	if err := addUserFreeName(ctx, st, u); err != nil {
		return "", err
	}
	return IssueToken(ctx, st, &store.Token{UserID: u.ID}, time.Now())
}

// AdminToken makes a token for the user admin, the first admin a server makes (or,
// should a user admin hold another role, the first free admin-N, made an admin), and
// returns it.
func AdminToken(ctx context.Context, st store.Store) (string, error) {
	u, err := st.User(ctx, "admin")
	if errors.Is(err, store.ErrNotFound) || err == nil && u.Role != RoleAdmin {
		u = &store.User{Name: "admin", Role: RoleAdmin}
		err = addUserFreeName(ctx, st, u)
	}
	if err != nil {
		return "", err
	}
	return IssueToken(ctx, st, &store.Token{UserID: u.ID, Label: "admin-token file"}, time.Now())
}

// NeedsAdminToken reports whether no admin token works: on first start, or once every
// admin token was revoked or expired. The server then makes one (AdminToken), so the
// person who runs it, who can read its data folder anyway, is never locked out.
func NeedsAdminToken(ctx context.Context, st store.Store) (bool, error) {
	ts, err := st.Tokens(ctx, store.TokenFilter{})
	if err != nil {
		return false, err
	}
	now := time.Now()
	for _, t := range ts {
		if t.Role == RoleAdmin && refused(t, now) == "" {
			return false, nil
		}
	}
	return true, nil
}
