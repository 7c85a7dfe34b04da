package sqlstore

import (
	"context"
	"fmt"

	"github.com/drover-cd/drover/store"
)

// AppendAudit adds e to the audit log and sets its ID and Time.
func (db *DB) AppendAudit(ctx context.Context, e *store.AuditEntry) error {
	at := now()
	var id int64
	err := db.w.QueryRowContext(ctx, db.d.rebind(`INSERT INTO audit (at, actor, action, environment, project, digest,
		run, deployment, result, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		db.d.timeArg(at), e.Actor, e.Action, e.Environment, e.Project, e.Digest, e.Run, e.Deployment, e.Result, e.Message).Scan(&id)
	if err != nil {
		return fmt.Errorf("store: append to the audit log: %w", err)
	}
	e.ID, e.Time = id, at
	return nil
}

// Audit returns audit entries, newest first: at most limit (0 means 50), with IDs below
// before when it is positive.
func (db *DB) Audit(ctx context.Context, before int64, limit int) ([]*store.AuditEntry, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	q, args := `SELECT id, at, actor, action, environment, project, digest, run, deployment, result, message FROM audit`, []any{}
	if before > 0 {
		q, args = q+` WHERE id < ?`, append(args, before)
	}
	rows, err := db.r.QueryContext(ctx, db.d.rebind(q+` ORDER BY id DESC LIMIT ?`), append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: read the audit log: %w", err)
	}
	defer rows.Close()
	out := []*store.AuditEntry{}
	for rows.Next() {
		e := &store.AuditEntry{}
		if err := rows.Scan(&e.ID, dbTime{&e.Time}, &e.Actor, &e.Action, &e.Environment, &e.Project, &e.Digest, &e.Run,
			&e.Deployment, &e.Result, &e.Message); err != nil {
			return nil, fmt.Errorf("store: read the audit log: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read the audit log: %w", err)
	}
	return out, nil
}
