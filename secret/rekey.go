package secret

import (
	"context"
	"errors"
	"fmt"

	"github.com/drover-cd/drover/store"
)

// A rekey moves every value to a new key without a moment where a value cannot be
// read, and survives being cut short at any point:
//
//  1. the new key is written to PATH.new (atomically, mode 0600) beside PATH;
//  2. every value is re-encrypted under it, each only if it was not set meanwhile
//     (store.ReplaceSecretCiphertext), again until none is left under another key;
//  3. PATH.new is renamed over PATH, and the old key is forgotten.
//
// Each value records the ID of the key that sealed it, and while PATH.new exists the
// keyring holds both keys, so every value opens at every step. A server that stops
// between 1 and 3 finds PATH.new at its next start (OpenKeyring) and finishes the rekey
// there (FinishRekey); a Rekey finishes it first too.

// Rekey finishes a rekey that was cut short, if any, then moves every value to a new
// key as described above, as actor did, and notes it in the audit log. It returns how
// many values it re-encrypted.
func (v *Vault) Rekey(ctx context.Context, actor string) (int, error) {
	v.writing.Lock()
	defer v.writing.Unlock()
	finished, err := v.finishRekey(ctx, actor)
	if err != nil {
		return finished, err
	}
	from := v.keys.ID()
	if err := v.keys.beginRekey(); err != nil {
		return finished, err
	}
	n, err := v.moveAll(ctx)
	if err != nil {
		return finished + n, fmt.Errorf("rekey (cut short; the next start or rekey finishes it): %w", err)
	}
	if err := v.retire(); err != nil {
		return finished + n, err
	}
	msg := fmt.Sprintf("re-encrypted %s under key %s (was %s)", countValues(n), v.keys.ID(), from)
	return finished + n, v.audit(ctx, "secret-rekey", actor, Key{}, msg)
}

// FinishRekey completes a rekey that was cut short (OpenKeyring found PATH.new), as
// the server ("drover" in the audit log); the server calls it when it starts. It
// returns how many values it re-encrypted; 0 and nil when no rekey was pending.
func (v *Vault) FinishRekey(ctx context.Context) (int, error) {
	v.writing.Lock()
	defer v.writing.Unlock()
	return v.finishRekey(ctx, "drover")
}

// finishRekey is FinishRekey with v.writing held.
func (v *Vault) finishRekey(ctx context.Context, actor string) (int, error) {
	if !v.keys.pending() {
		return 0, nil
	}
	n, err := v.moveAll(ctx)
	if err != nil {
		return n, fmt.Errorf("finish the rekey that was cut short (%s is still there; both keys stay until it is done): %w",
			newPath(v.keys.path), err)
	}
	if err := v.retire(); err != nil {
		return n, err
	}
	return n, v.audit(ctx, "secret-rekey", actor, Key{},
		fmt.Sprintf("finished a rekey that was cut short: re-encrypted %s under key %s", countValues(n), v.keys.ID()))
}

// retire puts the new key in place of the old one, once no read is under way.
func (v *Vault) retire() error {
	v.swapping.Lock()
	defer v.swapping.Unlock()
	return v.keys.commitRekey()
}

// moveAll re-encrypts every value not under the keyring's current key with it, and
// returns how many it did. A value set meanwhile (by another server on the database)
// is looked at again; after a few rounds that still find some, it gives up.
func (v *Vault) moveAll(ctx context.Context) (int, error) {
	moved := 0
	for range 5 {
		ss, err := v.store.Secrets(ctx, store.SecretFilter{All: true})
		if err != nil {
			return moved, err
		}
		current, raced := v.keys.ID(), false
		for _, s := range ss {
			if s.KeyID == current {
				continue
			}
			k := Key{Name: s.Name, Project: s.Project, Environment: s.Environment}
			value, err := v.keys.decrypt(k, s.Ciphertext, s.KeyID)
			if err != nil {
				return moved, err
			}
			ciphertext, id, err := v.keys.encrypt(k, value)
			clear(value)
			if err != nil {
				return moved, err
			}
			err = v.store.ReplaceSecretCiphertext(ctx, s.Name, s.Project, s.Environment, s.Version, ciphertext, id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				raced = true // set again or removed meanwhile: look again
			case err != nil:
				return moved, err
			default:
				moved++
			}
		}
		if !raced {
			return moved, nil
		}
	}
	return moved, errors.New("secrets kept changing while they were re-encrypted; try again")
}

// countValues is "1 value" or "N values".
func countValues(n int) string {
	if n == 1 {
		return "1 value"
	}
	return fmt.Sprintf("%d values", n)
}
