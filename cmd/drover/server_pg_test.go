package main

import (
	"testing"

	"github.com/drover-cd/drover/internal/pgtest"
)

// postgresDSN returns a DSN for a fresh schema of the test PostgreSQL database, dropped
// when the test ends (see pgtest).
func postgresDSN(t *testing.T) string {
	dsn, _ := pgtest.Schema(t)
	return dsn
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
