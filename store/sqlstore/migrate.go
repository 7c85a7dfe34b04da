package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/drover-cd/drover/store"
)

// migration is one step of the schema; the schema's version after it is its index in
// migrations plus one. Never edit or reorder a released migration: append a new one.
type migration struct {
	name string
	// stmts run in order, with ${id}, ${blob} and ${time} replaced by the dialect's
	// types. sqlite or postgres, when not nil, replace stmts on that engine.
	stmts, sqlite, postgres []string
	// fn, when not nil, runs after stmts in the same transaction: for changes of data
	// that SQL alone says badly.
	fn func(ctx context.Context, tx *sql.Tx, d dialect) error
}

// migrations is the schema's history, oldest first.
var migrations = []migration{
	{name: "projects, runs, steps and tokens", stmts: []string{
		`CREATE TABLE projects (
			id ${id},
			name TEXT NOT NULL UNIQUE,
			url TEXT NOT NULL DEFAULT '',
			poll_interval BIGINT NOT NULL DEFAULT 0,
			webhook_secret TEXT NOT NULL DEFAULT '',
			created ${time} NOT NULL
		)`,
		`CREATE TABLE runs (
			id ${id},
			project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
			number INTEGER NOT NULL,
			status TEXT NOT NULL,
			reason TEXT NOT NULL DEFAULT '',
			branch TEXT NOT NULL DEFAULT '',
			commit_sha TEXT NOT NULL DEFAULT '',
			message TEXT NOT NULL DEFAULT '',
			event TEXT NOT NULL DEFAULT '',
			triggered_by TEXT NOT NULL DEFAULT '',
			rerun_of INTEGER NOT NULL DEFAULT 0,
			from_step TEXT NOT NULL DEFAULT '',
			artifact TEXT NOT NULL DEFAULT '',
			created ${time} NOT NULL,
			started ${time},
			finished ${time},
			UNIQUE (project_id, number)
		)`,
		// Listing by project, newest first, uses the unique index above; listing by
		// status (the queue, /metrics) uses this one.
		`CREATE INDEX runs_status ON runs (status, id)`,
		`CREATE TABLE steps (
			run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
			name TEXT NOT NULL,
			position INTEGER NOT NULL,
			needs TEXT NOT NULL DEFAULT '[]',
			status TEXT NOT NULL,
			allowed BOOLEAN NOT NULL DEFAULT FALSE,
			reason TEXT NOT NULL DEFAULT '',
			exit_code INTEGER NOT NULL DEFAULT 0,
			attempts INTEGER NOT NULL DEFAULT 0,
			started ${time},
			finished ${time},
			reports ${blob},
			artifacts ${blob},
			PRIMARY KEY (run_id, name)
		)`,
		`CREATE TABLE tokens (
			id ${id},
			name TEXT NOT NULL,
			role TEXT NOT NULL,
			hash ${blob} NOT NULL UNIQUE,
			created ${time} NOT NULL
		)`,
	}},
	{name: "per-project retention of published artifacts", stmts: []string{
		`ALTER TABLE projects ADD COLUMN keep_runs INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE projects ADD COLUMN keep_for BIGINT NOT NULL DEFAULT 0`,
	}},
	{name: "environments and deployments", stmts: []string{
		`CREATE TABLE environments (
			id ${id},
			name TEXT NOT NULL UNIQUE,
			strategy TEXT NOT NULL,
			created ${time} NOT NULL
		)`,
		`CREATE TABLE deployments (
			id ${id},
			environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
			service TEXT NOT NULL,
			project TEXT NOT NULL,
			digest TEXT NOT NULL,
			tag TEXT NOT NULL DEFAULT '',
			run INTEGER NOT NULL DEFAULT 0,
			strategy TEXT NOT NULL,
			status TEXT NOT NULL,
			reason TEXT NOT NULL DEFAULT '',
			triggered_by TEXT NOT NULL DEFAULT '',
			rollback_of BIGINT NOT NULL DEFAULT 0,
			created ${time} NOT NULL,
			finished ${time}
		)`,
		`CREATE INDEX deployments_env ON deployments (environment_id, service, id)`,
		`CREATE INDEX deployments_project ON deployments (project, run)`,
	}},
	{name: "audit log", stmts: []string{
		`CREATE TABLE audit (
			id ${id},
			at ${time} NOT NULL,
			actor TEXT NOT NULL,
			action TEXT NOT NULL,
			environment TEXT NOT NULL DEFAULT '',
			project TEXT NOT NULL DEFAULT '',
			digest TEXT NOT NULL DEFAULT '',
			run INTEGER NOT NULL DEFAULT 0,
			deployment BIGINT NOT NULL DEFAULT 0,
			result TEXT NOT NULL DEFAULT '',
			message TEXT NOT NULL DEFAULT ''
		)`,
	}},
	{name: "approvals and approval roles of tokens", stmts: []string{
		`CREATE TABLE approvals (
			run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
			step TEXT NOT NULL,
			role TEXT NOT NULL,
			deadline ${time},
			decision TEXT NOT NULL,
			actor TEXT NOT NULL DEFAULT '',
			message TEXT NOT NULL DEFAULT '',
			created ${time} NOT NULL,
			decided ${time},
			PRIMARY KEY (run_id, step)
		)`,
		`ALTER TABLE tokens ADD COLUMN approval_roles TEXT NOT NULL DEFAULT ''`,
	}},
	{name: "environments as code", stmts: []string{
		`ALTER TABLE environments ADD COLUMN track TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE environments ADD COLUMN replicas INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE environments ADD COLUMN approval TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE environments ADD COLUMN managed BOOLEAN NOT NULL DEFAULT FALSE`,
	}},
	{name: "developer environments' idle timeout, separation of duties", stmts: []string{
		`ALTER TABLE environments ADD COLUMN idle_timeout BIGINT NOT NULL DEFAULT 0`,
		`ALTER TABLE environments ADD COLUMN separation BOOLEAN NOT NULL DEFAULT FALSE`,
	}},
	{name: "environments' runtime", stmts: []string{
		`ALTER TABLE environments ADD COLUMN runtime TEXT NOT NULL DEFAULT ''`,
	}},
	// Issue 14: people are users, not token names. Each token becomes its own user;
	// machine tokens have none.
	{name: "users; tokens expire, are revoked and note their last use", stmts: []string{
		`CREATE TABLE users (
			id ${id},
			name TEXT NOT NULL UNIQUE,
			role TEXT NOT NULL,
			approval_roles TEXT NOT NULL DEFAULT '',
			created ${time} NOT NULL
		)`,
		`ALTER TABLE tokens ADD COLUMN user_id BIGINT REFERENCES users (id)`,
		`ALTER TABLE tokens ADD COLUMN machine TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE tokens ADD COLUMN repository TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE tokens ADD COLUMN expires ${time}`,
		`ALTER TABLE tokens ADD COLUMN revoked ${time}`,
		`ALTER TABLE tokens ADD COLUMN last_used ${time}`,
	}, fn: usersFromTokens},
	{name: "tokens' names become labels; roles belong to users", stmts: []string{
		`ALTER TABLE tokens RENAME COLUMN name TO label`,
		`ALTER TABLE tokens DROP COLUMN role`,
		`ALTER TABLE tokens DROP COLUMN approval_roles`,
		`CREATE INDEX tokens_user ON tokens (user_id)`,
	}},
	// Issue 15: secrets, encrypted by the server (package secret); "" is no project
	// (global) and no environment, so the key is unique without NULLs.
	{name: "secrets; projects' default branch and branch secrets", stmts: []string{
		`CREATE TABLE secrets (
			id ${id},
			name TEXT NOT NULL,
			project TEXT NOT NULL DEFAULT '',
			environment TEXT NOT NULL DEFAULT '',
			branch TEXT NOT NULL DEFAULT '',
			version INTEGER NOT NULL,
			ciphertext ${blob} NOT NULL,
			key_id TEXT NOT NULL,
			actor TEXT NOT NULL DEFAULT '',
			updated ${time} NOT NULL,
			UNIQUE (name, project, environment)
		)`,
		`ALTER TABLE projects ADD COLUMN default_branch TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE projects ADD COLUMN branch_secrets BOOLEAN NOT NULL DEFAULT FALSE`,
	}},
	// 12: replica counts people set (drover scale), per environment and project: they
	// outrank environments.yml's replicas and drover.yml's.
	{name: "scales", stmts: []string{
		`CREATE TABLE scales (
			environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
			project TEXT NOT NULL,
			replicas INTEGER NOT NULL,
			actor TEXT NOT NULL DEFAULT '',
			updated ${time} NOT NULL,
			PRIMARY KEY (environment_id, project)
		)`,
	}},
	// 13: what environments.yml says of an environment beyond the columns, as JSON: the
	// Swarm cluster of runtime: swarm, and per-service sizes and placements.
	{name: "environments' settings", stmts: []string{
		`ALTER TABLE environments ADD COLUMN settings TEXT NOT NULL DEFAULT ''`,
	}},
	// 14: agents and the leases of steps they run: machines that ask the server for
	// steps, and each attempt of a step handed to one, whose status says whether it is
	// still running there. A step notes the agent that ran its last attempt ("" for the
	// server itself); an agent's labels are a JSON object.
	{name: "agents and the leases of steps they run", stmts: []string{
		`ALTER TABLE steps ADD COLUMN agent TEXT NOT NULL DEFAULT ''`,
		`CREATE TABLE agents (
			name TEXT PRIMARY KEY,
			labels TEXT NOT NULL DEFAULT '{}',
			version TEXT NOT NULL DEFAULT '',
			capacity INTEGER NOT NULL DEFAULT 0,
			drained BOOLEAN NOT NULL DEFAULT FALSE,
			created ${time} NOT NULL,
			seen ${time}
		)`,
		`CREATE TABLE leases (
			id ${id},
			run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
			step TEXT NOT NULL,
			attempt INTEGER NOT NULL DEFAULT 0,
			agent TEXT NOT NULL,
			token_hash ${blob},
			status TEXT NOT NULL,
			reason TEXT NOT NULL DEFAULT '',
			home BOOLEAN NOT NULL DEFAULT FALSE,
			created ${time} NOT NULL,
			updated ${time} NOT NULL
		)`,
		// The active leases (the server's sweep for lost agents) and a run's leases.
		`CREATE INDEX leases_status ON leases (status, id)`,
		`CREATE INDEX leases_run ON leases (run_id)`,
	}},
}

// usersFromTokens makes each token its own user, with the token's role and approval
// roles, named after the token: runs, approvals and the audit log name people by the
// name of the token they used, so that name goes on naming them. Where several tokens
// share a name, the oldest keeps it and each other gets "-ID" added (its token's ID),
// again while that is taken too: three tokens 1, 2 and 3 named developer become the
// users developer, developer-2 and developer-3.
func usersFromTokens(ctx context.Context, tx *sql.Tx, d dialect) error {
	type old struct {
		id                int64
		name, role, roles string
		created           time.Time
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, name, role, approval_roles, created FROM tokens ORDER BY id`)
	if err != nil {
		return err
	}
	var tokens []old
	for rows.Next() {
		var t old
		if err := rows.Scan(&t.id, &t.name, &t.role, &t.roles, dbTime{&t.created}); err != nil {
			rows.Close()
			return err
		}
		tokens = append(tokens, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	taken := map[string]bool{}
	for _, t := range tokens {
		name := t.name
		if name == "" {
			name = fmt.Sprintf("token-%d", t.id)
		}
		for taken[name] {
			name = fmt.Sprintf("%s-%d", name, t.id)
		}
		taken[name] = true
		var uid int64
		if err := tx.QueryRowContext(ctx, d.rebind(`INSERT INTO users (name, role, approval_roles, created) VALUES (?, ?, ?, ?) RETURNING id`),
			name, t.role, t.roles, d.timeArg(t.created)).Scan(&uid); err != nil {
			return fmt.Errorf("make user %q of token %d: %w", name, t.id, err)
		}
		if _, err := tx.ExecContext(ctx, d.rebind(`UPDATE tokens SET user_id = ? WHERE id = ?`), uid, t.id); err != nil {
			return fmt.Errorf("give token %d to user %q: %w", t.id, name, err)
		}
	}
	return nil
}

// SchemaVersion is the schema version this binary creates and understands.
func SchemaVersion() int { return len(migrations) }

// SchemaTooNewError is Open's error for a database a newer drover has migrated. It
// wraps store.ErrSchemaTooNew.
type SchemaTooNewError struct {
	Database int // the database's schema version
	Binary   int // the newest version this binary knows
}

// Error implements error.
func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this drover binary supports (%d); upgrade drover",
		e.Database, e.Binary)
}

// Unwrap returns store.ErrSchemaTooNew.
func (e *SchemaTooNewError) Unwrap() error { return store.ErrSchemaTooNew }

// migrate brings the schema up to date in one transaction, which concurrent Opens of
// the same database take in turn: SQLite's writer transactions are IMMEDIATE, and on
// PostgreSQL an advisory lock keyed by the schema serializes them. A database newer
// than the binary is left as it is.
func (db *DB) migrate(ctx context.Context) error { return db.migrateTo(ctx, len(migrations)) }

// migrateTo is migrate up to version target only, as an older drover would: tests of
// migrations start there.
func (db *DB) migrateTo(ctx context.Context, target int) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	if db.d.name == "postgres" {
		if err := lockSchema(ctx, tx); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, db.d.types.Replace(`CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied ${time} NOT NULL
	)`)); err != nil {
		return fmt.Errorf("migrate: create schema_version: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if current > len(migrations) {
		return &SchemaTooNewError{Database: current, Binary: len(migrations)}
	}
	for v := current + 1; v <= target; v++ {
		if err := db.apply(ctx, tx, v); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// lockSchema takes a PostgreSQL advisory lock, held until tx ends, on the schema the
// tables are created in. The lock is keyed by the schema's name, so that stores in
// different schemas of a database migrate independently.
func lockSchema(ctx context.Context, tx *sql.Tx) error {
	var schema sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("current schema: %w", err)
	}
	if !schema.Valid {
		return errors.New("no schema to create tables in: check search_path")
	}
	h := fnv.New64a()
	h.Write([]byte("drover schema " + schema.String))
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
		return fmt.Errorf("lock schema %s: %w", schema.String, err)
	}
	return nil
}

// apply runs migration version v in tx and records it.
func (db *DB) apply(ctx context.Context, tx *sql.Tx, v int) error {
	m := migrations[v-1]
	stmts := m.stmts
	switch {
	case db.d.name == "sqlite" && m.sqlite != nil:
		stmts = m.sqlite
	case db.d.name == "postgres" && m.postgres != nil:
		stmts = m.postgres
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, db.d.types.Replace(s)); err != nil {
			return fmt.Errorf("migrate to version %d (%s): %w", v, m.name, err)
		}
	}
	if m.fn != nil {
		if err := m.fn(ctx, tx, db.d); err != nil {
			return fmt.Errorf("migrate to version %d (%s): %w", v, m.name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, db.d.rebind(`INSERT INTO schema_version (version, name, applied) VALUES (?, ?, ?)`),
		v, m.name, db.d.timeArg(now())); err != nil {
		return fmt.Errorf("migrate to version %d: record it: %w", v, err)
	}
	return nil
}
