package secret

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/store"
)

// MaxValue is the longest value a secret may have.
const MaxValue = 64 << 10

// Vault keeps secrets in the store, encrypted with a Keyring. It is safe for
// concurrent use.
type Vault struct {
	store store.Store
	keys  *Keyring

	// writing is held by Set, Remove and Rekey: a rekey sees every value set.
	writing sync.Mutex
	// swapping is held for reading while values are read and decrypted, and for
	// writing while a rekey retires the old key, so no read finds its key gone.
	swapping sync.RWMutex
}

// NewVault returns a Vault over st, encrypting with keys. A rekey that was cut short
// stays pending until FinishRekey or Rekey; values open meanwhile.
func NewVault(st store.Store, keys *Keyring) *Vault { return &Vault{store: st, keys: keys} }

// Keyring is the vault's keyring.
func (v *Vault) Keyring() *Keyring { return v.keys }

// Set encrypts value and stores it as the secret k (a new version when k has one
// already), going to the branches branch matches (a path.Match glob; "" for all), as
// actor did, and notes it in the audit log (never the value). It refuses, with an error
// wrapping ErrInvalid, a bad key, a value shorter than mask.MinLength (it could not be
// masked), longer than MaxValue or holding a NUL, and a bad glob.
func (v *Vault) Set(ctx context.Context, k Key, value []byte, branch, actor string) (Meta, error) {
	if err := CheckKey(k); err != nil {
		return Meta{}, err
	}
	if err := checkValue(value); err != nil {
		return Meta{}, err
	}
	if err := checkBranch(branch); err != nil {
		return Meta{}, err
	}
	v.writing.Lock()
	defer v.writing.Unlock()
	ciphertext, id, err := v.keys.encrypt(k, value)
	if err != nil {
		return Meta{}, err
	}
	s := &store.Secret{Name: k.Name, Project: k.Project, Environment: k.Environment, Branch: branch,
		Ciphertext: ciphertext, KeyID: id, Actor: actor}
	if err := v.store.PutSecret(ctx, s); err != nil {
		return Meta{}, fmt.Errorf("set %s: %w", k, err)
	}
	m := metaOf(s)
	msg := fmt.Sprintf("%s: version %d", k, s.Version)
	if branch != "" {
		msg += fmt.Sprintf(", branches %q", branch)
	}
	return m, v.audit(ctx, "secret-set", actor, k, msg)
}

// checkValue says why value cannot be a secret's, or returns nil.
func checkValue(value []byte) error {
	// A value printed with its line ending cut is masked as the rest: that must be long enough.
	trimmed := bytes.TrimRight(value, "\r\n")
	switch {
	case len(trimmed) < mask.MinLength:
		return invalidf("the value is %d bytes without its line ending: a secret must be %d bytes or more, or it could not be masked in logs "+
			"(it would hide ordinary text); use a longer value", len(trimmed), mask.MinLength)
	case len(value) > MaxValue:
		return invalidf("the value is %d bytes: a secret is at most %d KiB; keep larger files elsewhere and a key to them here",
			len(value), MaxValue>>10)
	case bytes.IndexByte(value, 0) >= 0:
		return invalidf("the value holds a NUL byte, which no environment variable can; encode it (base64, say) first")
	}
	return nil
}

// checkBranch says why glob cannot filter branches, or returns nil.
func checkBranch(glob string) error {
	if _, err := path.Match(glob, "main"); err != nil || len(glob) > 200 || strings.ContainsFunc(glob, func(r rune) bool { return r <= ' ' }) {
		return invalidf("branch glob %q: write a branch name or a pattern like release/* (path.Match syntax: *, ?, [a-z]; * stops at /)", glob)
	}
	return nil
}

// metaOf is what may be known of s.
func metaOf(s *store.Secret) Meta {
	return Meta{Key: Key{Name: s.Name, Project: s.Project, Environment: s.Environment}, Branch: s.Branch,
		Version: s.Version, Actor: s.Actor, Updated: s.Updated}
}

// audit appends what actor did to the secret k to the audit log.
func (v *Vault) audit(ctx context.Context, action, actor string, k Key, msg string) error {
	e := &store.AuditEntry{Actor: actor, Action: action, Project: k.Project, Environment: k.Environment, Result: "success", Message: msg}
	if err := v.store.AppendAudit(ctx, e); err != nil {
		return fmt.Errorf("%s, but the audit log did not take it: %w", msg, err)
	}
	return nil
}

// List returns what may be known of the secrets of project and the global ones, or of
// every secret when all is set, by name, project and environment: never a value.
func (v *Vault) List(ctx context.Context, project string, all bool) ([]Meta, error) {
	ss, err := v.store.Secrets(ctx, store.SecretFilter{Project: project, Global: true, All: all})
	if err != nil {
		return nil, err
	}
	out := make([]Meta, 0, len(ss))
	for _, s := range ss {
		out = append(out, metaOf(s))
	}
	return out, nil
}

// Remove removes the secret k, as actor did, and notes it in the audit log. A secret
// that is not there is an error wrapping store.ErrNotFound.
func (v *Vault) Remove(ctx context.Context, k Key, actor string) error {
	if err := CheckKey(k); err != nil {
		return err
	}
	v.writing.Lock()
	defer v.writing.Unlock()
	version := 0
	ss, err := v.store.Secrets(ctx, store.SecretFilter{Project: k.Project})
	if err != nil {
		return err
	}
	for _, s := range ss {
		if s.Name == k.Name && s.Environment == k.Environment {
			version = s.Version
		}
	}
	if version != 0 {
		err = v.store.DeleteSecret(ctx, k.Name, k.Project, k.Environment)
	}
	if version == 0 || errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no secret %s: drover secret ls --all lists them: %w", k, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", k, err)
	}
	return v.audit(ctx, "secret-rm", actor, k, fmt.Sprintf("%s: removed at version %d", k, version))
}
