package deploy

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/drover-cd/drover/store"
)

// instanceUID is the user env's instances run as: a user per environment from
// InstanceUIDs, so that instances cannot signal or write to another environment's, nor
// touch the server; 0 (the server's user) without a range. A stored environment's id
// picks it, so it stays the same across restarts; an ephemeral one, which is not stored,
// gets one by its name's hash.
func (m *Manager) instanceUID(ctx context.Context, env string) (int, error) {
	r := m.cfg.InstanceUIDs
	if r.First == 0 {
		return 0, nil
	}
	e, err := m.cfg.Store.Environment(ctx, env)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h := fnv.New32a()
		h.Write([]byte(env))
		return r.First + int(h.Sum32()%uint32(r.Len())), nil
	case err != nil:
		return 0, fmt.Errorf("the user of %s's instances: %w", env, err)
	}
	return r.First + int(e.ID%int64(r.Len())), nil
}
