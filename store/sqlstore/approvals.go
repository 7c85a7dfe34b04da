package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/drover-cd/drover/store"
)

const approvalCols = `run_id, step, role, deadline, decision, actor, message, created, decided`

func scanApproval(sc scanner) (*store.Approval, error) {
	a := &store.Approval{}
	err := sc.Scan(&a.RunID, &a.Step, &a.Role, dbTime{&a.Deadline}, &a.Decision, &a.Actor, &a.Message,
		dbTime{&a.Created}, dbTime{&a.Decided})
	return a, err
}

// RequestApproval stores a pending approval unless (RunID, Step) has one already, and
// returns the stored one.
func (db *DB) RequestApproval(ctx context.Context, a *store.Approval) (*store.Approval, error) {
	var out *store.Approval
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		got, err := scanApproval(tx.QueryRowContext(ctx, db.d.rebind(`SELECT `+approvalCols+` FROM approvals WHERE run_id = ? AND step = ?`),
			a.RunID, a.Step))
		if err == nil {
			out = got
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		created := now()
		_, err = tx.ExecContext(ctx, db.d.rebind(`INSERT INTO approvals (run_id, step, role, deadline, decision, created)
			VALUES (?, ?, ?, ?, 'pending', ?)`), a.RunID, a.Step, a.Role, db.d.timeArg(a.Deadline), db.d.timeArg(created))
		if db.d.isForeignKey(err) {
			return fmt.Errorf("run %d: %w", a.RunID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		c := *a
		c.Decision, c.Created = "pending", created
		out = &c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: request approval of %q: %w", a.Step, err)
	}
	return out, nil
}

// DecideApproval records the decision of a pending approval.
func (db *DB) DecideApproval(ctx context.Context, a *store.Approval) error {
	decided := now()
	res, err := db.w.ExecContext(ctx, db.d.rebind(`UPDATE approvals SET decision = ?, actor = ?, message = ?, decided = ?
		WHERE run_id = ? AND step = ? AND decision = 'pending'`), a.Decision, a.Actor, a.Message, db.d.timeArg(decided), a.RunID, a.Step)
	if err != nil {
		return fmt.Errorf("store: decide approval of %q: %w", a.Step, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		var decision string
		err := db.w.QueryRowContext(ctx, db.d.rebind(`SELECT decision FROM approvals WHERE run_id = ? AND step = ?`), a.RunID, a.Step).Scan(&decision)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: decide approval of %q: nothing asks for it: %w", a.Step, store.ErrNotFound)
		}
		return fmt.Errorf("store: decide approval of %q: already %s: %w", a.Step, decision, store.ErrExists)
	}
	a.Decided = decided
	return nil
}

// Approvals returns the approvals of a run, by step.
func (db *DB) Approvals(ctx context.Context, runID int64) ([]*store.Approval, error) {
	return db.approvals(ctx, `SELECT `+approvalCols+` FROM approvals WHERE run_id = ? ORDER BY step`, runID)
}

// PendingApprovals returns every undecided approval, oldest first.
func (db *DB) PendingApprovals(ctx context.Context) ([]*store.Approval, error) {
	return db.approvals(ctx, `SELECT `+approvalCols+` FROM approvals WHERE decision = 'pending' ORDER BY created`)
}

func (db *DB) approvals(ctx context.Context, q string, args ...any) ([]*store.Approval, error) {
	return list(ctx, db, "list approvals", db.d.rebind(q), args, scanApproval)
}
