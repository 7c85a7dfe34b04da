package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drover-cd/drover/store"
)

// CreateEnvironment stores e and sets its ID and Created. A taken name is an error
// wrapping store.ErrExists.
func (db *DB) CreateEnvironment(ctx context.Context, e *store.Environment) error {
	created := now()
	var id int64
	err := db.w.QueryRowContext(ctx, db.d.rebind(`INSERT INTO environments (name, strategy, track, replicas, approval, managed, idle_timeout, separation, runtime, settings, created)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`), e.Name, e.Strategy, e.Track, e.Replicas, e.Approval, e.Managed,
		int64(e.IdleTimeout), e.Separation, e.Runtime, settingsOf(e), db.d.timeArg(created)).Scan(&id)
	if db.d.isUnique(err) {
		return fmt.Errorf("store: create environment %q: %w", e.Name, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create environment %q: %w", e.Name, err)
	}
	e.ID, e.Created = id, created
	return nil
}

const environmentCols = `id, name, strategy, track, replicas, approval, managed, idle_timeout, separation, runtime, settings, created`

// envSettings is the settings column: what environments.yml says beyond the columns.
type envSettings struct {
	Swarm    *store.Swarm                     `json:"swarm,omitempty"`
	Services map[string]store.ServiceSettings `json:"services,omitempty"`
}

func settingsOf(e *store.Environment) string {
	s := envSettings{Services: e.Services}
	if e.Swarm != (store.Swarm{}) {
		s.Swarm = &e.Swarm
	}
	if s.Swarm == nil && len(s.Services) == 0 {
		return ""
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func scanEnvironment(sc scanner) (*store.Environment, error) {
	e := &store.Environment{}
	var idle int64
	var settings string
	if err := sc.Scan(&e.ID, &e.Name, &e.Strategy, &e.Track, &e.Replicas, &e.Approval, &e.Managed, &idle, &e.Separation, &e.Runtime,
		&settings, dbTime{&e.Created}); err != nil {
		return nil, err
	}
	e.IdleTimeout = time.Duration(idle)
	if settings != "" {
		var s envSettings
		if err := json.Unmarshal([]byte(settings), &s); err != nil {
			return nil, fmt.Errorf("environment %s: its settings: %w", e.Name, err)
		}
		if s.Swarm != nil {
			e.Swarm = *s.Swarm
		}
		e.Services = s.Services
	}
	return e, nil
}

// Environment returns the environment called name.
func (db *DB) Environment(ctx context.Context, name string) (*store.Environment, error) {
	return one(ctx, db, fmt.Sprintf("environment %q", name), db.d.rebind(`SELECT `+environmentCols+` FROM environments WHERE name = ?`), []any{name}, scanEnvironment)
}

// Environments returns every environment, by name.
func (db *DB) Environments(ctx context.Context) ([]*store.Environment, error) {
	return list(ctx, db, "list environments", `SELECT `+environmentCols+` FROM environments ORDER BY name`, nil, scanEnvironment)
}

// UpdateEnvironment writes e's Strategy, Track, Replicas, Approval, Managed, IdleTimeout, Separation and Runtime.
func (db *DB) UpdateEnvironment(ctx context.Context, e *store.Environment) error {
	res, err := db.w.ExecContext(ctx, db.d.rebind(`UPDATE environments SET strategy = ?, track = ?, replicas = ?, approval = ?,
		managed = ?, idle_timeout = ?, separation = ?, runtime = ?, settings = ? WHERE name = ?`), e.Strategy, e.Track, e.Replicas, e.Approval, e.Managed,
		int64(e.IdleTimeout), e.Separation, e.Runtime, settingsOf(e), e.Name)
	if err != nil {
		return fmt.Errorf("store: update environment %q: %w", e.Name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: update environment %q: %w", e.Name, store.ErrNotFound)
	}
	return nil
}

// DeleteEnvironment removes the environment called name and its deployments.
func (db *DB) DeleteEnvironment(ctx context.Context, name string) error {
	res, err := db.w.ExecContext(ctx, db.d.rebind(`DELETE FROM environments WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("store: delete environment %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: delete environment %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// CreateDeployment stores d and sets its ID and Created. A missing environment is an
// error wrapping store.ErrNotFound.
func (db *DB) CreateDeployment(ctx context.Context, d *store.Deployment) error {
	var envID int64
	err := db.w.QueryRowContext(ctx, db.d.rebind(`SELECT id FROM environments WHERE name = ?`), d.Environment).Scan(&envID)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: create deployment: environment %q: %w", d.Environment, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: create deployment to %q: %w", d.Environment, err)
	}
	created := now()
	var id int64
	err = db.w.QueryRowContext(ctx, db.d.rebind(`INSERT INTO deployments (environment_id, service, project, digest, tag,
		run, strategy, status, reason, triggered_by, rollback_of, created, finished)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		envID, d.Service, d.Project, d.Digest, d.Tag, d.Run, d.Strategy, d.Status, d.Reason, d.Trigger, d.RollbackOf,
		db.d.timeArg(created), db.d.timeArg(d.Finished)).Scan(&id)
	if db.d.isForeignKey(err) {
		return fmt.Errorf("store: create deployment: environment %q: %w", d.Environment, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: create deployment to %q: %w", d.Environment, err)
	}
	d.ID, d.Created = id, created
	return nil
}

// UpdateDeployment writes d's Status, Reason and Finished.
func (db *DB) UpdateDeployment(ctx context.Context, d *store.Deployment) error {
	res, err := db.w.ExecContext(ctx, db.d.rebind(`UPDATE deployments SET status = ?, reason = ?, finished = ? WHERE id = ?`),
		d.Status, d.Reason, db.d.timeArg(d.Finished), d.ID)
	if err != nil {
		return fmt.Errorf("store: update deployment %d: %w", d.ID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: update deployment %d: %w", d.ID, store.ErrNotFound)
	}
	return nil
}

// Deployments lists deployments, newest first.
func (db *DB) Deployments(ctx context.Context, f store.DeploymentFilter) ([]*store.Deployment, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) { where, args = append(where, cond), append(args, arg) }
	if f.Environment != "" {
		add(`e.name = ?`, f.Environment)
	}
	if f.Service != "" {
		add(`d.service = ?`, f.Service)
	}
	if f.Project != "" {
		add(`d.project = ?`, f.Project)
	}
	if f.Run > 0 {
		add(`d.run = ?`, f.Run)
	}
	if len(f.Status) > 0 {
		where = append(where, `d.status IN (`+placeholders(len(f.Status))+`)`)
		for _, s := range f.Status {
			args = append(args, s)
		}
	}
	q := `SELECT d.id, e.name, d.service, d.project, d.digest, d.tag, d.run, d.strategy, d.status, d.reason,
		d.triggered_by, d.rollback_of, d.created, d.finished
		FROM deployments d JOIN environments e ON e.id = d.environment_id`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	q += ` ORDER BY d.id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.r.QueryContext(ctx, db.d.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list deployments: %w", err)
	}
	defer rows.Close()
	out := []*store.Deployment{}
	for rows.Next() {
		d := &store.Deployment{}
		if err := rows.Scan(&d.ID, &d.Environment, &d.Service, &d.Project, &d.Digest, &d.Tag, &d.Run, &d.Strategy,
			&d.Status, &d.Reason, &d.Trigger, &d.RollbackOf, dbTime{&d.Created}, dbTime{&d.Finished}); err != nil {
			return nil, fmt.Errorf("store: list deployments: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list deployments: %w", err)
	}
	return out, nil
}
