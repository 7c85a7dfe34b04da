package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/drover-cd/drover/store"
)

func TestSchemaTooNew(t *testing.T) {
	engines(t, func(t *testing.T, dsn string) {
		db := mustOpen(t, dsn)
		if err := db.CreateProject(t.Context(), &store.Project{Name: "app"}); err != nil {
			t.Fatal(err)
		}
		db.Close()
		future := SchemaVersion() + 5
		r := raw(t, dsn)
		if _, err := r.ExecContext(t.Context(), db.d.rebind(`INSERT INTO schema_version (version, name, applied)
			VALUES (?, 'from the future', ?)`), future, db.d.timeArg(now())); err != nil {
			t.Fatalf("bump schema_version: %v", err)
		}

		_, err := Open(t.Context(), dsn)
		if !errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("Open of a newer schema: error %v, want one wrapping ErrSchemaTooNew", err)
		}
		var tooNew *SchemaTooNewError
		if !errors.As(err, &tooNew) || tooNew.Database != future || tooNew.Binary != SchemaVersion() {
			t.Errorf("Open of a newer schema: error %#v, want a SchemaTooNewError{%d, %d}", err, future, SchemaVersion())
		}
		msg := fmt.Sprintf("database schema version %d is newer than this drover binary supports (%d); upgrade drover",
			future, SchemaVersion())
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("Open of a newer schema: error %q does not say %q", err, msg)
		}

		// Nothing changed; once the database is back to a known version, all is there.
		wantVersions(t, r, future)
		if _, err := r.ExecContext(t.Context(), db.d.rebind(`DELETE FROM schema_version WHERE version = ?`), future); err != nil {
			t.Fatal(err)
		}
		if _, err := mustOpen(t, dsn).Project(t.Context(), "app"); err != nil {
			t.Errorf("Project(app) once reopened: %v", err)
		}
	})
}

func TestReopen(t *testing.T) {
	engines(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		db := mustOpen(t, dsn)
		p := &store.Project{Name: "app"}
		if err := db.CreateProject(ctx, p); err != nil {
			t.Fatal(err)
		}
		r := &store.Run{ProjectID: p.ID, Status: "success"}
		if err := db.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := db.SaveStep(ctx, &store.Step{RunID: r.ID, Name: "build", Needs: []string{"x"}, Status: "success"}); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateToken(ctx, &store.Token{Machine: "proxy", Hash: []byte("hash")}); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		db = mustOpen(t, dsn)
		if got, err := db.Run(ctx, "app", 1); err != nil || got.ID != r.ID || !got.Created.Equal(r.Created) {
			t.Errorf("Run(app, 1) once reopened = %+v, %v; want %+v", got, err, r)
		}
		if steps, err := db.Steps(ctx, r.ID); err != nil || len(steps) != 1 || !slices.Equal(steps[0].Needs, []string{"x"}) {
			t.Errorf("Steps once reopened = %v, %v; want build needing x", steps, err)
		}
		if _, err := db.TokenByHash(ctx, []byte("hash")); err != nil {
			t.Errorf("TokenByHash once reopened: %v", err)
		}
		r2 := &store.Run{ProjectID: p.ID, Status: "pending"}
		if err := db.CreateRun(ctx, r2); err != nil || r2.Number != 2 {
			t.Errorf("CreateRun once reopened: number %d, %v; want 2", r2.Number, err)
		}
		wantVersions(t, db.r)
	})
}

func TestConcurrentOpen(t *testing.T) {
	engines(t, func(t *testing.T, dsn string) {
		const n = 4
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				db, err := Open(t.Context(), dsn)
				if err == nil {
					err = db.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Errorf("concurrent Open: %v", err)
			}
		}
		wantVersions(t, raw(t, dsn))
	})
}

// TestTwoHandles writes through two stores open on one database at once, as two
// processes would: SQLite's writers then meet in the file, not in one process.
func TestTwoHandles(t *testing.T) {
	engines(t, func(t *testing.T, dsn string) {
		a, b := mustOpen(t, dsn), mustOpen(t, dsn)
		p := &store.Project{Name: "app"}
		if err := a.CreateProject(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		const n = 30
		var wg sync.WaitGroup
		errs := make([]error, n)
		nums := make([]int, n)
		for i := range n {
			db := a
			if i%2 == 1 {
				db = b
			}
			wg.Go(func() {
				r := &store.Run{Project: "app", Status: "pending"}
				errs[i] = db.CreateRun(t.Context(), r)
				nums[i] = r.Number
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("CreateRun through two handles: %v", err)
			}
		}
		slices.Sort(nums)
		for i, num := range nums {
			if num != i+1 {
				t.Fatalf("numbers of runs created through two handles = %v, want 1..%d", nums, n)
			}
		}
	})
}

func TestCreateRunByName(t *testing.T) {
	db := mustOpen(t, sqliteDSN(t))
	p := &store.Project{Name: "app"}
	if err := db.CreateProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	r := &store.Run{Project: "app", Status: "pending"}
	if err := db.CreateRun(t.Context(), r); err != nil || r.ProjectID != p.ID || r.Number != 1 {
		t.Errorf("CreateRun by project name: %+v, %v; want project %d, number 1", r, err, p.ID)
	}
	r = &store.Run{ProjectID: p.ID, Status: "pending"}
	if err := db.CreateRun(t.Context(), r); err != nil || r.Project != "app" {
		t.Errorf("CreateRun by project ID: Project %q, %v; want app", r.Project, err)
	}
}

func TestSQLiteMissingFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	_, err := Open(t.Context(), filepath.Join(dir, "drover.db"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "folder "+dir+" does not exist") {
		t.Errorf("Open in a missing folder: error %v, want one saying the folder %s does not exist", err, dir)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open in a missing folder created it: %v", err)
	}
}

func TestSQLiteDSN(t *testing.T) {
	path := sqliteDSN(t)
	db := mustOpen(t, "sqlite:"+path)
	if err := db.CreateProject(t.Context(), &store.Project{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := mustOpen(t, path).Project(t.Context(), "app"); err != nil {
		t.Errorf("the file opened as sqlite:%s is not %s: %v", path, path, err)
	}
	for _, dsn := range []string{"", "sqlite:", ":memory:", "file:" + path, path + "?mode=ro"} {
		if db, err := Open(t.Context(), dsn); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
}

func TestSQLitePragmas(t *testing.T) {
	db := mustOpen(t, sqliteDSN(t))
	for _, pool := range []struct {
		name string
		db   interface {
			QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
		}
	}{{"writer", db.w}, {"reader", db.r}} {
		for pragma, want := range map[string]string{
			"journal_mode": "wal", "busy_timeout": "5000", "foreign_keys": "1", "synchronous": "1",
		} {
			var got string
			if err := pool.db.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
				t.Errorf("%s: PRAGMA %s = %q, %v; want %q", pool.name, pragma, got, err, want)
			}
		}
	}
	if _, err := db.r.ExecContext(t.Context(), `DELETE FROM projects`); err == nil {
		t.Error("the reader pool can write")
	}
}

func TestPostgresNoSchema(t *testing.T) {
	u, err := url.Parse(postgresBase(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "drover_test_does_not_exist")
	u.RawQuery = q.Encode()
	db, err := Open(t.Context(), u.String())
	if err == nil {
		db.Close()
		t.Fatal("Open with a search_path naming no schema succeeded")
	}
	if !strings.Contains(err.Error(), "search_path") || strings.Contains(err.Error(), "drover:drover@") {
		t.Errorf("Open with a search_path naming no schema: error %q, want one about search_path without the password", err)
	}
}
