package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/drover-cd/drover/store"
)

// groupsArg is a list of approval roles as stored: comma-separated.
func groupsArg(groups []string) string { return strings.Join(groups, ",") }

// splitGroups reads groupsArg back; "" is nil.
func splitGroups(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// CreateUser stores u and sets its ID and Created; a taken name is an error wrapping
// store.ErrExists.
func (db *DB) CreateUser(ctx context.Context, u *store.User) error {
	created := now()
	var id int64
	err := db.w.QueryRowContext(ctx, db.d.rebind(`INSERT INTO users (name, role, approval_roles, created)
		VALUES (?, ?, ?, ?) RETURNING id`), u.Name, u.Role, groupsArg(u.Groups), db.d.timeArg(created)).Scan(&id)
	if db.d.isUnique(err) {
		return fmt.Errorf("store: create user %q: %w", u.Name, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create user %q: %w", u.Name, err)
	}
	u.ID, u.Created = id, created
	return nil
}

const userCols = `id, name, role, approval_roles, created`

func scanUser(sc scanner) (*store.User, error) {
	u := &store.User{}
	var groups string
	if err := sc.Scan(&u.ID, &u.Name, &u.Role, &groups, dbTime{&u.Created}); err != nil {
		return nil, err
	}
	u.Groups = splitGroups(groups)
	return u, nil
}

// User returns the user called name.
func (db *DB) User(ctx context.Context, name string) (*store.User, error) {
	return one(ctx, db, fmt.Sprintf("user %q", name), db.d.rebind(`SELECT `+userCols+` FROM users WHERE name = ?`), []any{name}, scanUser)
}

// Users returns every user, by name.
func (db *DB) Users(ctx context.Context) ([]*store.User, error) {
	return list(ctx, db, "list users", `SELECT `+userCols+` FROM users ORDER BY name`, nil, scanUser)
}

// CreateToken stores t and sets its ID and Created, and the User, Role and Groups of
// its user. A hash already stored is an error wrapping store.ErrExists, a UserID no
// user has one wrapping store.ErrNotFound.
func (db *DB) CreateToken(ctx context.Context, t *store.Token) error {
	created := now()
	var user sql.NullInt64
	if t.UserID != 0 {
		user = sql.NullInt64{Int64: t.UserID, Valid: true}
	}
	var id int64
	err := db.w.QueryRowContext(ctx, db.d.rebind(`INSERT INTO tokens (user_id, machine, repository, label, hash, created, expires)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		user, t.Machine, t.Repository, t.Label, t.Hash, db.d.timeArg(created), db.d.timeArg(t.Expires)).Scan(&id)
	switch {
	case db.d.isUnique(err):
		return fmt.Errorf("store: create token: %w", store.ErrExists)
	case db.d.isForeignKey(err):
		return fmt.Errorf("store: create token: user %d: %w", t.UserID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("store: create token: %w", err)
	}
	t.ID, t.Created = id, created
	t.Expires = t.Expires.UTC().Truncate(precision)
	if t.UserID != 0 {
		back, err := db.Token(ctx, id)
		if err != nil {
			return err
		}
		t.User, t.Role, t.Groups = back.User, back.Role, back.Groups
	}
	return nil
}

// tokenQuery reads tokens with their users'.
const tokenQuery = `SELECT t.id, t.user_id, COALESCE(u.name, ''), COALESCE(u.role, ''), COALESCE(u.approval_roles, ''),
	t.machine, t.repository, t.label, t.hash, t.created, t.expires, t.revoked, t.last_used
	FROM tokens t LEFT JOIN users u ON u.id = t.user_id`

func scanToken(sc scanner) (*store.Token, error) {
	t := &store.Token{}
	var user sql.NullInt64
	var groups string
	if err := sc.Scan(&t.ID, &user, &t.User, &t.Role, &groups, &t.Machine, &t.Repository, &t.Label, &t.Hash,
		dbTime{&t.Created}, dbTime{&t.Expires}, dbTime{&t.Revoked}, dbTime{&t.LastUsed}); err != nil {
		return nil, err
	}
	t.UserID, t.Groups = user.Int64, splitGroups(groups)
	return t, nil
}

// TokenByHash returns the token whose hash is hash, revoked and expired ones too.
func (db *DB) TokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	return one(ctx, db, "token by hash", db.d.rebind(tokenQuery+` WHERE t.hash = ?`), []any{hash}, scanToken)
}

// Token returns token id.
func (db *DB) Token(ctx context.Context, id int64) (*store.Token, error) {
	return one(ctx, db, fmt.Sprintf("token %d", id), db.d.rebind(tokenQuery+` WHERE t.id = ?`), []any{id}, scanToken)
}

// Tokens returns the tokens f selects, by ID.
func (db *DB) Tokens(ctx context.Context, f store.TokenFilter) ([]*store.Token, error) {
	q, args := tokenQuery, []any{}
	if f.UserID != 0 {
		q, args = q+` WHERE t.user_id = ?`, append(args, f.UserID)
	}
	return list(ctx, db, "list tokens", db.d.rebind(q+` ORDER BY t.id`), args, scanToken)
}

// RevokeToken sets token id's revoked time to now, unless it has one.
func (db *DB) RevokeToken(ctx context.Context, id int64) error {
	res, err := db.w.ExecContext(ctx, db.d.rebind(`UPDATE tokens SET revoked = COALESCE(revoked, ?) WHERE id = ?`),
		db.d.timeArg(now()), id)
	if err != nil {
		return fmt.Errorf("store: revoke token %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: revoke token %d: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("store: revoke token %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// TouchToken sets token id's last use to at, unless it is later already.
func (db *DB) TouchToken(ctx context.Context, id int64, at time.Time) error {
	arg := db.d.timeArg(at)
	res, err := db.w.ExecContext(ctx, db.d.rebind(`UPDATE tokens SET last_used = ? WHERE id = ? AND (last_used IS NULL OR last_used < ?)`),
		arg, id, arg)
	if err != nil {
		return fmt.Errorf("store: note the use of token %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: note the use of token %d: %w", id, err)
	} else if n == 0 {
		if _, err := db.Token(ctx, id); err != nil {
			return err // ErrNotFound; else a later use was noted
		}
	}
	return nil
}

// CountTokens returns how many tokens there are.
func (db *DB) CountTokens(ctx context.Context) (int, error) {
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count tokens: %w", err)
	}
	return n, nil
}
