package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/drover-cd/drover/store"
)

// selectRuns reads runs with their project's name, in the order scanRun expects.
const selectRuns = `SELECT r.id, r.project_id, p.name, r.number, r.status, r.reason, r.branch,
	r.commit_sha, r.message, r.event, r.triggered_by, r.rerun_of, r.from_step, r.artifact,
	r.created, r.started, r.finished
	FROM runs r JOIN projects p ON p.id = r.project_id`

// defaultLimit is how many runs Runs returns when the filter does not say.
const defaultLimit = 50

// scanRun reads a row of selectRuns.
func scanRun(sc scanner) (*store.Run, error) {
	r := &store.Run{}
	err := sc.Scan(&r.ID, &r.ProjectID, &r.Project, &r.Number, &r.Status, &r.Reason, &r.Branch,
		&r.Commit, &r.Message, &r.Event, &r.Trigger, &r.RerunOf, &r.FromStep, &r.Artifact,
		dbTime{&r.Created}, dbTime{&r.Started}, dbTime{&r.Finished})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// CreateRun stores r as its project's next run and sets its ID, Number and Created.
// The project is r.ProjectID, or when that is 0 the project named r.Project; CreateRun
// fills in the other. A missing project is an error wrapping store.ErrNotFound.
//
// The number is read and used in one writer transaction, with the project's row
// locked on PostgreSQL, so concurrent CreateRuns of a project take numbers in turn.
func (db *DB) CreateRun(ctx context.Context, r *store.Run) error {
	var (
		id, projectID int64
		name          string
		number        int
		created       = now()
	)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		q, arg := `SELECT id, name FROM projects WHERE id = ?`, any(r.ProjectID)
		if r.ProjectID == 0 {
			q, arg = `SELECT id, name FROM projects WHERE name = ?`, r.Project
		}
		err := tx.QueryRowContext(ctx, db.d.rebind(q+db.d.forUpdate), arg).Scan(&projectID, &name)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("project %v: %w", arg, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("lock project: %w", err)
		}
		err = tx.QueryRowContext(ctx, db.d.rebind(`SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE project_id = ?`),
			projectID).Scan(&number)
		if err != nil {
			return fmt.Errorf("next number: %w", err)
		}
		return tx.QueryRowContext(ctx, db.d.rebind(`INSERT INTO runs (project_id, number, status, reason, branch,
			commit_sha, message, event, triggered_by, rerun_of, from_step, artifact, created, started, finished)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			projectID, number, r.Status, r.Reason, r.Branch, r.Commit, r.Message, r.Event, r.Trigger,
			r.RerunOf, r.FromStep, r.Artifact, db.d.timeArg(created), db.d.timeArg(r.Started),
			db.d.timeArg(r.Finished)).Scan(&id)
	})
	if err != nil {
		return fmt.Errorf("store: create run: %w", err)
	}
	r.ID, r.ProjectID, r.Project, r.Number, r.Created = id, projectID, name, number, created
	return nil
}

// Run returns run number of project.
func (db *DB) Run(ctx context.Context, project string, number int) (*store.Run, error) {
	row := db.r.QueryRowContext(ctx, db.d.rebind(selectRuns+` WHERE p.name = ? AND r.number = ?`), project, number)
	r, err := scanRun(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: run %s #%d: %w", project, number, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: run %s #%d: %w", project, number, err)
	}
	return r, nil
}

// RunByID returns the run whose ID is id.
func (db *DB) RunByID(ctx context.Context, id int64) (*store.Run, error) {
	r, err := scanRun(db.r.QueryRowContext(ctx, db.d.rebind(selectRuns+` WHERE r.id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: run id %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: run id %d: %w", id, err)
	}
	return r, nil
}

// Runs returns the runs f selects, newest first: by number within a project, by
// creation across projects. Before applies to numbers whether or not f names a
// project, though it is only meaningful with one. A project that does not exist has
// no runs.
func (db *DB) Runs(ctx context.Context, f store.RunFilter) ([]*store.Run, error) {
	var (
		where []string
		args  []any
	)
	if f.Project != "" {
		where, args = append(where, `p.name = ?`), append(args, f.Project)
	}
	if f.Branch != "" {
		where, args = append(where, `r.branch = ?`), append(args, f.Branch)
	}
	if len(f.Status) > 0 {
		where = append(where, `r.status IN (`+placeholders(len(f.Status))+`)`)
		for _, s := range f.Status {
			args = append(args, s)
		}
	}
	if f.Before > 0 {
		where, args = append(where, `r.number < ?`), append(args, f.Before)
	}
	q := selectRuns
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	order := "DESC"
	if f.Oldest {
		order = "ASC"
	}
	if f.Project != "" {
		q += ` ORDER BY r.number ` + order
	} else {
		q += ` ORDER BY r.id ` + order
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	q += ` LIMIT ?`
	args = append(args, limit)

	return list(ctx, db, "list runs", db.d.rebind(q), args, scanRun)
}

// UpdateRun writes r's Status, Reason, Commit, Message, Artifact, Started and Finished.
func (db *DB) UpdateRun(ctx context.Context, r *store.Run) error {
	res, err := db.w.ExecContext(ctx, db.d.rebind(`UPDATE runs SET status = ?, reason = ?, commit_sha = ?,
		message = ?, artifact = ?, started = ?, finished = ? WHERE id = ?`),
		r.Status, r.Reason, r.Commit, r.Message, r.Artifact, db.d.timeArg(r.Started), db.d.timeArg(r.Finished), r.ID)
	if err != nil {
		return fmt.Errorf("store: update run id %d: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: update run id %d: %w", r.ID, err)
	} else if n == 0 {
		return fmt.Errorf("store: update run id %d: %w", r.ID, store.ErrNotFound)
	}
	return nil
}

// TransitionRun sets run id's status to to, and its reason to reason, in one
// conditional UPDATE that only changes a run whose status is one of from. It reports
// whether it did; a run that does not exist is an error wrapping store.ErrNotFound.
func (db *DB) TransitionRun(ctx context.Context, id int64, from []string, to string, reason string) (bool, error) {
	if len(from) > 0 {
		args := []any{to, reason, id}
		for _, s := range from {
			args = append(args, s)
		}
		res, err := db.w.ExecContext(ctx, db.d.rebind(`UPDATE runs SET status = ?, reason = ?
			WHERE id = ? AND status IN (`+placeholders(len(from))+`)`), args...)
		if err != nil {
			return false, fmt.Errorf("store: transition run id %d to %s: %w", id, to, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, fmt.Errorf("store: transition run id %d to %s: %w", id, to, err)
		}
		if n > 0 {
			return true, nil
		}
	}
	// Nothing changed: tell a run in another status from a missing one.
	var one int
	err := db.r.QueryRowContext(ctx, db.d.rebind(`SELECT 1 FROM runs WHERE id = ?`), id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("store: transition run id %d to %s: %w", id, to, store.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("store: transition run id %d to %s: %w", id, to, err)
	}
	return false, nil
}

// CountRuns returns how many runs there are in each status that has any.
func (db *DB) CountRuns(ctx context.Context) (map[string]int, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT status, COUNT(*) FROM runs GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("store: count runs: %w", err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var (
			status string
			n      int
		)
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("store: count runs: %w", err)
		}
		counts[status] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: count runs: %w", err)
	}
	return counts, nil
}
