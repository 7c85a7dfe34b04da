// Package sqlstore is the store.Store of Drover over database/sql, for SQLite (the
// embedded default, through the pure Go modernc.org/sqlite) and PostgreSQL (through
// pgx). One implementation serves both; a small dialect value holds what differs.
//
// Open connects and migrates the schema to the version this binary knows, so a store it
// returns is ready to use. Times are kept in UTC to the microsecond (PostgreSQL's
// precision, applied to SQLite too, so that what is written is what is read); the zero
// time is stored as NULL. Empty Step.Needs, Reports and Artifacts, and empty
// Agent.Labels, are read back as nil.
//
// SQLite runs in WAL mode with two connection pools: one connection writes, in
// IMMEDIATE transactions, so that writers queue in the process instead of failing with
// SQLITE_BUSY, and several read concurrently.
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
	"runtime"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/drover-cd/drover/store"
)

// DB is a store.Store kept in a SQLite or PostgreSQL database. Open makes one. It is
// safe for concurrent use.
type DB struct {
	d dialect
	w *sql.DB // writes and transactions; for SQLite, a single connection
	r *sql.DB // reads; the same pool as w on PostgreSQL
}

var _ store.Store = (*DB)(nil)

// sqlitePragmas are set on every SQLite connection. busy_timeout covers other processes
// sharing the file; within this one, writes queue for the single writer connection.
const sqlitePragmas = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"

// sqliteWriterPragmas are set on the writer connection only. The journal mode is a
// property of the file, set once by the writer, which connects first; a reader
// setting it again could meet another process's migration and fail with
// SQLITE_BUSY without waiting.
const sqliteWriterPragmas = sqlitePragmas + "&_pragma=journal_mode(WAL)&_txlock=immediate"

// Open opens the database dsn names, creating it if needed, and migrates its schema.
// dsn is a postgres:// or postgresql:// URL (any pgx connection URL, e.g. with
// sslmode= or search_path=) for PostgreSQL; anything else is the path of a SQLite
// file, optionally prefixed with "sqlite:". The folder of a SQLite file must exist.
//
// Open fails with an error wrapping store.ErrSchemaTooNew (a *SchemaTooNewError) when
// a newer drover has migrated the database, and then changes nothing.
func Open(ctx context.Context, dsn string) (*DB, error) {
	var (
		db   *DB
		err  error
		what string
	)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		what = "postgres database " + redact(dsn)
		db, err = openPostgres(ctx, dsn)
	} else {
		path := strings.TrimPrefix(dsn, "sqlite:")
		what = "sqlite database " + path
		db, err = openSQLite(ctx, path)
	}
	if err == nil {
		if err = db.migrate(ctx); err != nil {
			db.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", what, err)
	}
	return db, nil
}

// openPostgres connects to PostgreSQL.
func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	pool, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	pool.SetMaxOpenConns(16)
	pool.SetMaxIdleConns(4)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return &DB{d: postgresDialect, w: pool, r: pool}, nil
}

// openSQLite opens the SQLite file path: one writer connection and a pool of
// read-only ones.
func openSQLite(ctx context.Context, path string) (*DB, error) {
	switch {
	case path == "":
		return nil, errors.New("no file path given")
	case path == ":memory:" || strings.HasPrefix(path, "file:") || strings.Contains(path, "?"):
		return nil, errors.New("give the path of a file, without '?' (in-memory and URI databases are not supported)")
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("folder %s does not exist; create it first: %w", dir, err)
	} else if err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", dir)
	}
	w, err := sql.Open("sqlite", path+"?"+sqliteWriterPragmas)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	// The writer connects first, so the file exists and is in WAL mode before any
	// reader opens it.
	if err := pingBusy(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("connect the writer: %w", err)
	}
	r, err := sql.Open("sqlite", path+"?"+sqlitePragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, err
	}
	readers := max(4, runtime.NumCPU())
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("connect a reader: %w", err)
	}
	return &DB{d: sqliteDialect, w: w, r: r}, nil
}

// pingBusy connects, retrying for up to 5 s while the file is busy: switching a new
// file to WAL mode takes an exclusive lock that SQLite does not wait for, so several
// processes opening one new database at once can meet there.
func pingBusy(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(5 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := db.PingContext(ctx)
		if err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// redact is dsn without its password, for messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Close closes the database's connections.
func (db *DB) Close() error {
	var err error
	if db.r != db.w {
		err = db.r.Close()
	}
	return errors.Join(err, db.w.Close())
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// one runs query (already rebound) on the reader and scans its row with scan; what
// names the row in errors (`user "rita"`), and no row is an error wrapping
// store.ErrNotFound.
func one[T any](ctx context.Context, db *DB, what, query string, args []any, scan func(scanner) (T, error)) (T, error) {
	v, err := scan(db.r.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		var zero T
		return zero, fmt.Errorf("store: %s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("store: %s: %w", what, err)
	}
	return v, nil
}

// list runs query (already rebound) on the reader and scans each row with scan; what
// names the list in errors ("list users"). It returns an empty slice, never nil.
func list[T any](ctx context.Context, db *DB, what, query string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// inTx runs fn in a transaction on the writer, committing if fn succeeds.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// placeholders is n comma-separated ? placeholders.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
