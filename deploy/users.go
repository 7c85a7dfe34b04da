package deploy

import (
	"context"
	"fmt"

	"github.com/drover-cd/drover/sandbox"
)

// instanceUID is the user env's instances run as: with InstanceUIDs, a user no other
// environment's instances run as, so that instances cannot signal, trace or write to
// another environment's, nor touch the server; 0 (the server's user) without a range.
// An environment keeps its user while it has services; once it has none, the user is
// free again, and whatever still runs as it is stopped before another environment gets
// it.
func (m *Manager) instanceUID(_ context.Context, env string) (int, error) {
	r := m.cfg.InstanceUIDs
	if r.First == 0 {
		return 0, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if uid, ok := m.uids[env]; ok {
		return uid, nil
	}
	live := map[string]bool{}
	for _, s := range m.services {
		live[s.env] = true
	}
	used := map[int]bool{}
	for e, uid := range m.uids {
		if live[e] {
			used[uid] = true
			continue
		}
		delete(m.uids, e)
		sandbox.KillAll(uid)
	}
	for uid := r.First; uid <= r.Last; uid++ {
		if !used[uid] {
			m.uids[env] = uid
			return uid, nil
		}
	}
	return 0, fmt.Errorf("no uid left in --service-uids %s for the instances of %s: every one runs another environment; widen the range", r, env)
}
