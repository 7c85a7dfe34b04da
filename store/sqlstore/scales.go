package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/drover-cd/drover/store"
)

// SetScale stores s, replacing the scale of its environment and project, and sets
// Updated. A missing environment is an error wrapping store.ErrNotFound.
func (db *DB) SetScale(ctx context.Context, s *store.Scale) error {
	var envID int64
	err := db.w.QueryRowContext(ctx, db.d.rebind(`SELECT id FROM environments WHERE name = ?`), s.Environment).Scan(&envID)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: scale %s in %s: environment %q: %w", s.Project, s.Environment, s.Environment, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: scale %s in %s: %w", s.Project, s.Environment, err)
	}
	updated := now()
	_, err = db.w.ExecContext(ctx, db.d.rebind(`INSERT INTO scales (environment_id, project, replicas, actor, updated)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (environment_id, project) DO UPDATE SET replicas = excluded.replicas, actor = excluded.actor,
		updated = excluded.updated`), envID, s.Project, s.Replicas, s.Actor, db.d.timeArg(updated))
	if db.d.isForeignKey(err) {
		return fmt.Errorf("store: scale %s in %s: environment %q: %w", s.Project, s.Environment, s.Environment, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: scale %s in %s: %w", s.Project, s.Environment, err)
	}
	s.Updated = updated
	return nil
}

// Scales returns the scales set in env, by project.
func (db *DB) Scales(ctx context.Context, env string) ([]*store.Scale, error) {
	return list(ctx, db, "scales of "+env, db.d.rebind(`SELECT e.name, s.project, s.replicas, s.actor, s.updated
		FROM scales s JOIN environments e ON e.id = s.environment_id WHERE e.name = ? ORDER BY s.project`), []any{env},
		func(sc scanner) (*store.Scale, error) {
			s := &store.Scale{}
			err := sc.Scan(&s.Environment, &s.Project, &s.Replicas, &s.Actor, dbTime{&s.Updated})
			return s, err
		})
}

// DeleteScale removes the scale of project in env; store.ErrNotFound when none is set.
func (db *DB) DeleteScale(ctx context.Context, env, project string) error {
	res, err := db.w.ExecContext(ctx, db.d.rebind(`DELETE FROM scales WHERE project = ? AND environment_id =
		(SELECT id FROM environments WHERE name = ?)`), project, env)
	if err != nil {
		return fmt.Errorf("store: remove the scale of %s in %s: %w", project, env, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: no scale of %s in %s: %w", project, env, store.ErrNotFound)
	}
	return nil
}
