package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/drover-cd/drover/store"
)

// labelsArg is an agent's labels as stored: a JSON object, {} when there are none.
func labelsArg(labels map[string]string) (string, error) {
	if len(labels) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(labels)
	return string(b), err
}

// SaveAgent records a: it inserts it, setting a.Created, or replaces every field of
// the agent called a.Name but Created, which it sets to the stored one.
func (db *DB) SaveAgent(ctx context.Context, a *store.Agent) error {
	labels, err := labelsArg(a.Labels)
	if err != nil {
		return fmt.Errorf("store: save agent %q: labels: %w", a.Name, err)
	}
	created := now()
	err = db.w.QueryRowContext(ctx, db.d.rebind(`INSERT INTO agents (name, labels, version, capacity, drained, created, seen)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, version = excluded.version,
		capacity = excluded.capacity, drained = excluded.drained, seen = excluded.seen
		RETURNING created`), a.Name, labels, a.Version, a.Capacity, a.Drained, db.d.timeArg(created),
		db.d.timeArg(a.Seen)).Scan(dbTime{&created})
	if err != nil {
		return fmt.Errorf("store: save agent %q: %w", a.Name, err)
	}
	a.Created = created
	return nil
}

const agentCols = `name, labels, version, capacity, drained, created, seen`

// scanAgent reads a row of agentCols. Labels are nil when there are none.
func scanAgent(sc scanner) (*store.Agent, error) {
	a := &store.Agent{}
	var labels string
	if err := sc.Scan(&a.Name, &labels, &a.Version, &a.Capacity, &a.Drained, dbTime{&a.Created}, dbTime{&a.Seen}); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(labels), &a.Labels); err != nil {
		return nil, fmt.Errorf("agent %s: its labels: %w", a.Name, err)
	}
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	return a, nil
}

// Agent returns the agent called name.
func (db *DB) Agent(ctx context.Context, name string) (*store.Agent, error) {
	return one(ctx, db, fmt.Sprintf("agent %q", name), db.d.rebind(`SELECT `+agentCols+` FROM agents WHERE name = ?`), []any{name}, scanAgent)
}

// Agents returns every agent, by name.
func (db *DB) Agents(ctx context.Context) ([]*store.Agent, error) {
	return list(ctx, db, "list agents", `SELECT `+agentCols+` FROM agents ORDER BY name`, nil, scanAgent)
}

// DeleteAgent forgets the agent called name; store.ErrNotFound when there is none. Its
// leases stay.
func (db *DB) DeleteAgent(ctx context.Context, name string) error {
	res, err := db.w.ExecContext(ctx, db.d.rebind(`DELETE FROM agents WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("store: delete agent %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: delete agent %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// CreateLease records l and sets its ID, Created and Updated. A run that does not
// exist is an error wrapping store.ErrNotFound.
func (db *DB) CreateLease(ctx context.Context, l *store.Lease) error {
	created := now()
	var id int64
	err := db.w.QueryRowContext(ctx, db.d.rebind(`INSERT INTO leases (run_id, step, attempt, agent, token_hash, status,
		reason, home, created, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		l.RunID, l.Step, l.Attempt, l.Agent, blobArg(l.TokenHash), l.Status, l.Reason, l.Home,
		db.d.timeArg(created), db.d.timeArg(created)).Scan(&id)
	if db.d.isForeignKey(err) {
		return fmt.Errorf("store: create lease of step %q: run id %d: %w", l.Step, l.RunID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: create lease of step %q of run id %d: %w", l.Step, l.RunID, err)
	}
	l.ID, l.Created, l.Updated = id, created, created
	return nil
}

// EndLease moves lease id from store.LeaseActive to status, with reason, in one
// conditional UPDATE, and sets its Updated. It reports whether it did, so that of
// several callers ending one lease only one wins; a lease that does not exist is an
// error wrapping store.ErrNotFound.
func (db *DB) EndLease(ctx context.Context, id int64, status, reason string) (bool, error) {
	res, err := db.w.ExecContext(ctx, db.d.rebind(`UPDATE leases SET status = ?, reason = ?, updated = ?
		WHERE id = ? AND status = ?`), status, reason, db.d.timeArg(now()), id, store.LeaseActive)
	if err != nil {
		return false, fmt.Errorf("store: end lease %d as %s: %w", id, status, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: end lease %d as %s: %w", id, status, err)
	}
	if n > 0 {
		return true, nil
	}
	// Nothing changed: tell a lease that ended already from a missing one.
	var one int
	err = db.r.QueryRowContext(ctx, db.d.rebind(`SELECT 1 FROM leases WHERE id = ?`), id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("store: end lease %d as %s: %w", id, status, store.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("store: end lease %d as %s: %w", id, status, err)
	}
	return false, nil
}

const leaseCols = `id, run_id, step, attempt, agent, token_hash, status, reason, home, created, updated`

// scanLease reads a row of leaseCols.
func scanLease(sc scanner) (*store.Lease, error) {
	l := &store.Lease{}
	err := sc.Scan(&l.ID, &l.RunID, &l.Step, &l.Attempt, &l.Agent, &l.TokenHash, &l.Status, &l.Reason, &l.Home,
		dbTime{&l.Created}, dbTime{&l.Updated})
	return l, err
}

// Lease returns lease id.
func (db *DB) Lease(ctx context.Context, id int64) (*store.Lease, error) {
	return one(ctx, db, fmt.Sprintf("lease %d", id), db.d.rebind(`SELECT `+leaseCols+` FROM leases WHERE id = ?`), []any{id}, scanLease)
}

// Leases returns the leases f selects, by ID.
func (db *DB) Leases(ctx context.Context, f store.LeaseFilter) ([]*store.Lease, error) {
	var (
		where []string
		args  []any
	)
	if f.RunID != 0 {
		where, args = append(where, `run_id = ?`), append(args, f.RunID)
	}
	if f.Agent != "" {
		where, args = append(where, `agent = ?`), append(args, f.Agent)
	}
	if len(f.Status) > 0 {
		where = append(where, `status IN (`+placeholders(len(f.Status))+`)`)
		for _, s := range f.Status {
			args = append(args, s)
		}
	}
	q := `SELECT ` + leaseCols + ` FROM leases`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY id`
	return list(ctx, db, "list leases", db.d.rebind(q), args, scanLease)
}
