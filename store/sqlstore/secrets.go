package sqlstore

import (
	"context"
	"fmt"

	"github.com/drover-cd/drover/store"
)

// secretName names a secret's key in errors.
func secretName(name, project, env string) string {
	return fmt.Sprintf("secret %s (project %q, environment %q)", name, project, env)
}

// PutSecret inserts s at version 1, or replaces the value of the secret with its key at
// that secret's version plus one, in one statement: two setters at once get two
// versions, never one.
func (db *DB) PutSecret(ctx context.Context, s *store.Secret) error {
	updated := now()
	var version int
	err := db.w.QueryRowContext(ctx, db.d.rebind(`INSERT INTO secrets (name, project, environment, branch, version,
		ciphertext, key_id, actor, updated) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)
		ON CONFLICT (name, project, environment) DO UPDATE SET branch = excluded.branch,
			version = secrets.version + 1, ciphertext = excluded.ciphertext, key_id = excluded.key_id,
			actor = excluded.actor, updated = excluded.updated
		RETURNING version`),
		s.Name, s.Project, s.Environment, s.Branch, s.Ciphertext, s.KeyID, s.Actor, db.d.timeArg(updated)).Scan(&version)
	if err != nil {
		return fmt.Errorf("store: put %s: %w", secretName(s.Name, s.Project, s.Environment), err)
	}
	s.Version, s.Updated = version, updated
	return nil
}

const secretCols = `name, project, environment, branch, version, ciphertext, key_id, actor, updated`

func scanSecret(sc scanner) (*store.Secret, error) {
	s := &store.Secret{}
	if err := sc.Scan(&s.Name, &s.Project, &s.Environment, &s.Branch, &s.Version, &s.Ciphertext, &s.KeyID, &s.Actor,
		dbTime{&s.Updated}); err != nil {
		return nil, err
	}
	return s, nil
}

// Secrets lists the secrets f selects, by name, project and environment.
func (db *DB) Secrets(ctx context.Context, f store.SecretFilter) ([]*store.Secret, error) {
	q, args := `SELECT `+secretCols+` FROM secrets`, []any{}
	switch {
	case f.All:
	case f.Global && f.Project != "":
		q, args = q+` WHERE project = ? OR project = ''`, append(args, f.Project)
	default:
		q, args = q+` WHERE project = ?`, append(args, f.Project)
	}
	return list(ctx, db, "list secrets", db.d.rebind(q+` ORDER BY name, project, environment`), args, scanSecret)
}

// DeleteSecret removes the secret with the key name, project, env.
func (db *DB) DeleteSecret(ctx context.Context, name, project, env string) error {
	res, err := db.w.ExecContext(ctx, db.d.rebind(`DELETE FROM secrets WHERE name = ? AND project = ? AND environment = ?`),
		name, project, env)
	if err != nil {
		return fmt.Errorf("store: delete %s: %w", secretName(name, project, env), err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: delete %s: %w", secretName(name, project, env), store.ErrNotFound)
	}
	return nil
}

// ReplaceSecretCiphertext writes a secret's ciphertext and key ID if it is still at
// version.
func (db *DB) ReplaceSecretCiphertext(ctx context.Context, name, project, env string, version int, ciphertext []byte, keyID string) error {
	res, err := db.w.ExecContext(ctx, db.d.rebind(`UPDATE secrets SET ciphertext = ?, key_id = ?
		WHERE name = ? AND project = ? AND environment = ? AND version = ?`), ciphertext, keyID, name, project, env, version)
	what := fmt.Sprintf("%s at version %d", secretName(name, project, env), version)
	if err != nil {
		return fmt.Errorf("store: re-encrypt %s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: re-encrypt %s: %w", what, store.ErrNotFound)
	}
	return nil
}
