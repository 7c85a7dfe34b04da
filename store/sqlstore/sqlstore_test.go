package sqlstore

import (
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover-cd/drover/internal/pgtest"
	"github.com/drover-cd/drover/store"
	"github.com/drover-cd/drover/store/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return mustOpen(t, sqliteDSN(t)) })
}

func TestPostgres(t *testing.T) {
	base := postgresBase(t)
	storetest.Run(t, func(t *testing.T) store.Store { return mustOpen(t, postgresDSN(t, base)) })
}

// engine is a way to get the DSN of a fresh, empty database.
type engine struct {
	name string
	dsn  func(t *testing.T) string
}

// engines runs fn as a subtest on each engine; PostgreSQL's skips without pgtest.Env.
func engines(t *testing.T, fn func(t *testing.T, dsn string)) {
	for _, e := range []engine{
		{"sqlite", sqliteDSN},
		{"postgres", func(t *testing.T) string { return postgresDSN(t, postgresBase(t)) }},
	} {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			fn(t, e.dsn(t))
		})
	}
}

// sqliteDSN is a SQLite file in a new temporary folder.
func sqliteDSN(t *testing.T) string {
	return filepath.Join(t.TempDir(), "drover.db")
}

// postgresBase is the PostgreSQL test database's URL; the test skips without one.
func postgresBase(t *testing.T) string { return pgtest.Base(t) }

// postgresDSN creates a schema of its own for the test, dropped when it ends, and
// returns the test database's URL with its search_path set to it.
func postgresDSN(t *testing.T, _ string) string {
	dsn, _ := pgtest.Schema(t)
	return dsn
}

// mustOpen opens dsn and closes it when the test ends.
func mustOpen(t *testing.T, dsn string) *DB {
	t.Helper()
	db, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// raw opens dsn with database/sql alone, to look at or change the database behind
// the store's back.
func raw(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	driver, name := "sqlite", strings.TrimPrefix(dsn, "sqlite:")
	if strings.HasPrefix(dsn, "postgres") {
		driver, name = "pgx", dsn
	}
	db, err := sql.Open(driver, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// versions returns the versions recorded in schema_version.
func versions(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT version FROM schema_version ORDER BY version`)
	if err != nil {
		t.Fatalf("read schema_version: %v", err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

// wantVersions fails unless schema_version records versions 1..SchemaVersion()
// followed by extra.
func wantVersions(t *testing.T, db *sql.DB, extra ...int) {
	t.Helper()
	var want []int
	for v := 1; v <= SchemaVersion(); v++ {
		want = append(want, v)
	}
	want = append(want, extra...)
	if got := versions(t, db); !slices.Equal(got, want) {
		t.Errorf("schema_version holds %v, want %v", got, want)
	}
}

func TestRebind(t *testing.T) {
	q := `SELECT '?', "a?" FROM t WHERE a = ? AND b IN (?, ?) AND c = 'it''s ?' AND d = ?`
	if got := sqliteDialect.rebind(q); got != q {
		t.Errorf("sqlite rebind changed the query: %s", got)
	}
	want := `SELECT '?', "a?" FROM t WHERE a = $1 AND b IN ($2, $3) AND c = 'it''s ?' AND d = $4`
	if got := postgresDialect.rebind(q); got != want {
		t.Errorf("postgres rebind:\n got %s\nwant %s", got, want)
	}
}
