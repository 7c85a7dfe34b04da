package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/drover-cd/drover/store"
)

const projectCols = `id, name, url, poll_interval, webhook_secret, keep_runs, keep_for, default_branch, branch_secrets, created`

// scanProject reads a row of projectCols.
func scanProject(sc scanner) (*store.Project, error) {
	p := &store.Project{}
	var poll, keepFor int64
	if err := sc.Scan(&p.ID, &p.Name, &p.URL, &poll, &p.WebhookSecret, &p.KeepRuns, &keepFor, &p.DefaultBranch, &p.BranchSecrets,
		dbTime{&p.Created}); err != nil {
		return nil, err
	}
	p.PollInterval, p.KeepFor = time.Duration(poll), time.Duration(keepFor)
	return p, nil
}

// CreateProject stores p and sets its ID and Created. A taken name is an error
// wrapping store.ErrExists.
func (db *DB) CreateProject(ctx context.Context, p *store.Project) error {
	created := now()
	var id int64
	err := db.w.QueryRowContext(ctx, db.d.rebind(`INSERT INTO projects (name, url, poll_interval, webhook_secret, keep_runs, keep_for,
		default_branch, branch_secrets, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		p.Name, p.URL, int64(p.PollInterval), p.WebhookSecret, p.KeepRuns, int64(p.KeepFor), p.DefaultBranch, p.BranchSecrets,
		db.d.timeArg(created)).Scan(&id)
	if db.d.isUnique(err) {
		return fmt.Errorf("store: create project %q: %w", p.Name, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create project %q: %w", p.Name, err)
	}
	p.ID, p.Created = id, created
	return nil
}

// Project returns the project called name.
func (db *DB) Project(ctx context.Context, name string) (*store.Project, error) {
	return one(ctx, db, fmt.Sprintf("project %q", name), db.d.rebind(`SELECT `+projectCols+` FROM projects WHERE name = ?`), []any{name}, scanProject)
}

// ProjectFold returns the oldest project whose name equals name regardless of case.
func (db *DB) ProjectFold(ctx context.Context, name string) (*store.Project, error) {
	return one(ctx, db, fmt.Sprintf("project %q in any case", name),
		db.d.rebind(`SELECT `+projectCols+` FROM projects WHERE lower(name) = lower(?) ORDER BY id LIMIT 1`), []any{name}, scanProject)
}

// UpdateProject writes p's URL, PollInterval, WebhookSecret, KeepRuns, KeepFor,
// DefaultBranch and BranchSecrets.
func (db *DB) UpdateProject(ctx context.Context, p *store.Project) error {
	res, err := db.w.ExecContext(ctx, db.d.rebind(`UPDATE projects SET url = ?, poll_interval = ?, webhook_secret = ?,
		keep_runs = ?, keep_for = ?, default_branch = ?, branch_secrets = ? WHERE name = ?`),
		p.URL, int64(p.PollInterval), p.WebhookSecret, p.KeepRuns, int64(p.KeepFor), p.DefaultBranch, p.BranchSecrets, p.Name)
	if err != nil {
		return fmt.Errorf("store: update project %q: %w", p.Name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: update project %q: %w", p.Name, store.ErrNotFound)
	}
	return nil
}

// Projects returns every project, by name.
func (db *DB) Projects(ctx context.Context) ([]*store.Project, error) {
	return list(ctx, db, "list projects", `SELECT `+projectCols+` FROM projects ORDER BY name`, nil, scanProject)
}
