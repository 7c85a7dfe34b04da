package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/drover-cd/drover/store"
)

// SaveStep inserts the step (s.RunID, s.Name) or replaces every field of it. A run
// that does not exist is an error wrapping store.ErrNotFound.
func (db *DB) SaveStep(ctx context.Context, s *store.Step) error {
	needs := []byte("[]")
	if len(s.Needs) > 0 {
		var err error
		if needs, err = json.Marshal(s.Needs); err != nil {
			return fmt.Errorf("store: save step %q of run id %d: needs: %w", s.Name, s.RunID, err)
		}
	}
	_, err := db.w.ExecContext(ctx, db.d.rebind(`INSERT INTO steps (run_id, name, position, needs, status, allowed,
		reason, exit_code, attempts, started, finished, reports, artifacts, agent)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, name) DO UPDATE SET position = excluded.position, needs = excluded.needs,
		status = excluded.status, allowed = excluded.allowed, reason = excluded.reason,
		exit_code = excluded.exit_code, attempts = excluded.attempts, started = excluded.started,
		finished = excluded.finished, reports = excluded.reports, artifacts = excluded.artifacts,
		agent = excluded.agent`),
		s.RunID, s.Name, s.Position, string(needs), s.Status, s.Allowed, s.Reason, s.ExitCode, s.Attempts,
		db.d.timeArg(s.Started), db.d.timeArg(s.Finished), blobArg(s.Reports), blobArg(s.Artifacts), s.Agent)
	if db.d.isForeignKey(err) {
		return fmt.Errorf("store: save step %q: run id %d: %w", s.Name, s.RunID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: save step %q of run id %d: %w", s.Name, s.RunID, err)
	}
	return nil
}

// Steps returns the steps of run runID by Position (then name); none for a run that
// does not exist.
func (db *DB) Steps(ctx context.Context, runID int64) ([]*store.Step, error) {
	rows, err := db.r.QueryContext(ctx, db.d.rebind(`SELECT run_id, name, position, needs, status, allowed,
		reason, exit_code, attempts, started, finished, reports, artifacts, agent
		FROM steps WHERE run_id = ? ORDER BY position, name`), runID)
	if err != nil {
		return nil, fmt.Errorf("store: steps of run id %d: %w", runID, err)
	}
	defer rows.Close()
	steps := []*store.Step{}
	for rows.Next() {
		s := &store.Step{}
		var needs string
		err := rows.Scan(&s.RunID, &s.Name, &s.Position, &needs, &s.Status, &s.Allowed,
			&s.Reason, &s.ExitCode, &s.Attempts, dbTime{&s.Started}, dbTime{&s.Finished}, &s.Reports, &s.Artifacts,
			&s.Agent)
		if err != nil {
			return nil, fmt.Errorf("store: steps of run id %d: %w", runID, err)
		}
		if err := json.Unmarshal([]byte(needs), &s.Needs); err != nil {
			return nil, fmt.Errorf("store: steps of run id %d: needs of %q: %w", runID, s.Name, err)
		}
		if len(s.Needs) == 0 {
			s.Needs = nil
		}
		steps = append(steps, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: steps of run id %d: %w", runID, err)
	}
	return steps, nil
}
