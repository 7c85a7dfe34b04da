// Package pgtest gives tests a PostgreSQL schema of their own in the database
// DROVER_TEST_POSTGRES names, dropped when the test ends. Without that variable the
// test is skipped, except in CI (CI set), where .ci/run starts PostgreSQL: a skip there
// would hide a broken install, so it fails instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the database/sql driver "pgx", for making the schema
)

// Env names the test database's URL.
const Env = "DROVER_TEST_POSTGRES"

// Base is the test database's URL; the test skips without one (fails in CI).
func Base(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" && os.Getenv("CI") != "" {
		t.Fatalf("CI is set but %s is not: .ci/run must start PostgreSQL and export it", Env)
	}
	if dsn == "" {
		t.Skipf("PostgreSQL not tested: set %s to a database URL where tests may create schemas, e.g. "+
			"%[1]s='postgres://drover:drover@127.0.0.1:5432/drover?sslmode=disable'", Env)
	}
	return dsn
}

// Schema creates a schema of the test's own, dropped when the test ends, and returns a
// URL of the test database with its search_path set to it, and the schema's name.
func Schema(t testing.TB) (dsn, schema string) {
	t.Helper()
	base := Base(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	schema = "drover_test_" + strings.ToLower(rand.Text())
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if _, err := admin.ExecContext(context.Background(), `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), schema
}
