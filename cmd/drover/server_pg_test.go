package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the database/sql driver "pgx", for making the test's schema
)

// postgresDSN returns a DSN for a fresh schema of the test PostgreSQL database, dropped
// when the test ends. Without DROVER_TEST_POSTGRES the test is skipped, except in CI.
func postgresDSN(t *testing.T) string {
	t.Helper()
	base := os.Getenv("DROVER_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but DROVER_TEST_POSTGRES is not: .ci/run must start PostgreSQL and export it")
		}
		t.Skip("PostgreSQL not tested: set DROVER_TEST_POSTGRES=postgres://USER:PASS@127.0.0.1:5432/DB?sslmode=disable")
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	schema := fmt.Sprintf("drover_e2e_%d", time.Now().UnixNano())
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err == nil {
			_, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			db.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// The same flow as on SQLite, on PostgreSQL: push, run, logs, restart keeps the data.
func TestServerOnPostgres(t *testing.T) {
	t.Parallel()
	dsn := postgresDSN(t)
	s := startServer(t, t.TempDir(), dsn)
	repo := gitRepo(t, "steps:\n  - {name: hello, run: echo on postgres}\n")
	git(t, repo, "push", "-q", s.pushURL("pg"), "main")
	if run := s.waitRun("pg", 1, finished); run.Status != "success" {
		t.Fatalf("run: %+v", run)
	}
	s.stop(9)
	s.start()
	if run := s.waitRun("pg", 1, finished); run.Status != "success" {
		t.Errorf("after restart: %+v", run)
	}
	if got := s.text("/api/v1/projects/pg/runs/1/steps/hello/log"); got != "on postgres\n" {
		t.Errorf("log %q", got)
	}
}
