package sqlstore

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/store"
)

// made is when the tokens of the older drover were made.
var made = time.Date(2025, 3, 1, 9, 30, 0, 123000, time.UTC)

// openAt opens dsn migrated to version v only, as an older drover left it.
func openAt(t *testing.T, dsn string, v int) *DB {
	t.Helper()
	ctx := t.Context()
	var db *DB
	var err error
	if strings.HasPrefix(dsn, "postgres") {
		db, err = openPostgres(ctx, dsn)
	} else {
		db, err = openSQLite(ctx, dsn)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.migrateTo(ctx, v); err != nil {
		t.Fatalf("migrate to version %d: %v", v, err)
	}
	return db
}

// versionOf is the number of the migration called name.
func versionOf(t *testing.T, name string) int {
	t.Helper()
	for i, m := range migrations {
		if m.name == name {
			return i + 1
		}
	}
	t.Fatalf("no migration %q", name)
	return 0
}

// Issue 14: each token of an older drover becomes its own user, named after the token,
// with -ID added where names repeat; it keeps its role and approval roles, and its
// name as its label.
func TestMigrateTokensToUsers(t *testing.T) {
	engines(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		before := versionOf(t, "users; tokens expire, are revoked and note their last use") - 1
		old := openAt(t, dsn, before)
		for _, tok := range []struct {
			name, role, groups, hash string
		}{
			{"admin", "admin", "", "h1"},
			{"developer", "developer", "", "h2"},
			{"developer", "developer", "release-manager", "h3"},
			{"rita", "developer", "release-manager,dba", "h4"},
			{"developer", "viewer", "", "h5"},
			{"developer-3", "viewer", "", "h6"}, // taken by token 3 by then: developer-3-6
		} {
			if _, err := old.w.ExecContext(ctx, old.d.rebind(`INSERT INTO tokens (name, role, approval_roles, hash, created)
				VALUES (?, ?, ?, ?, ?)`), tok.name, tok.role, tok.groups, []byte(tok.hash), old.d.timeArg(made)); err != nil {
				t.Fatal(err)
			}
		}
		old.Close()

		db := mustOpen(t, dsn)
		wantVersions(t, db.r)
		want := []struct {
			hash, user, role, label string
			groups                  []string
		}{
			{"h1", "admin", "admin", "admin", nil},
			{"h2", "developer", "developer", "developer", nil},
			{"h3", "developer-3", "developer", "developer", []string{"release-manager"}},
			{"h4", "rita", "developer", "rita", []string{"release-manager", "dba"}},
			{"h5", "developer-5", "viewer", "developer", nil},
			{"h6", "developer-3-6", "viewer", "developer-3", nil},
		}
		for _, w := range want {
			tok, err := db.TokenByHash(ctx, []byte(w.hash))
			if err != nil {
				t.Fatalf("token %s after the migration: %v", w.hash, err)
			}
			if tok.User != w.user || tok.Role != w.role || tok.Label != w.label || !reflect.DeepEqual(tok.Groups, w.groups) ||
				tok.Machine != "" || !tok.Created.Equal(made) || !tok.Expires.IsZero() || !tok.Revoked.IsZero() {
				t.Errorf("token %s after the migration: %+v; want user %s, role %s, label %s, approval roles %v, created %v, no expiry",
					w.hash, tok, w.user, w.role, w.label, w.groups, made)
			}
			u, err := db.User(ctx, w.user)
			if err != nil || u.ID != tok.UserID || u.Role != w.role || !u.Created.Equal(made) {
				t.Errorf("user %s: %+v, %v; want the token's", w.user, u, err)
			}
		}
		if us, err := db.Users(ctx); err != nil || len(us) != len(want) {
			t.Errorf("Users after the migration: %d, %v; want one per token", len(us), err)
		}
		// The old columns are gone: roles live with users.
		if _, err := db.r.ExecContext(ctx, `SELECT role FROM tokens`); err == nil {
			t.Error("tokens still has a role column")
		}
		// New users and tokens follow.
		u := &store.User{Name: "developer-2", Role: "developer"}
		if err := db.CreateUser(ctx, u); err != nil {
			t.Errorf("a new user after the migration: %v", err)
		}
		if err := db.CreateToken(ctx, &store.Token{UserID: u.ID, Hash: []byte("h7")}); err != nil {
			t.Errorf("a new token after the migration: %v", err)
		}
	})
}
