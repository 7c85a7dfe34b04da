package deploy

import (
	"context"
	"testing"

	"github.com/drover-cd/drover/sandbox"
)

// Each environment's instances run as a user no other environment's run as, whatever
// their names or ids (a hash or an id modulo the range collided; found in review); a user
// goes back to the pool once its environment has no services; without a range,
// instances run as the server's user.
func TestInstanceUID(t *testing.T) {
	m := &Manager{services: map[string]*service{}, uids: map[string]int{}}
	ctx := context.Background()
	if uid, err := m.instanceUID(ctx, "staging"); uid != 0 || err != nil {
		t.Errorf("without a range: %d, %v; want 0", uid, err)
	}
	m.cfg.InstanceUIDs = sandbox.Range{First: 21000, Last: 21002}
	got := map[int]string{}
	for _, env := range []string{"staging", "production", "eph-x893-1"} {
		m.services["web."+env] = &service{env: env}
		uid, err := m.instanceUID(ctx, env)
		if err != nil || uid < 21000 || uid > 21002 || got[uid] != "" {
			t.Fatalf("%s: uid %d, %v; taken by %q", env, uid, err, got[uid])
		}
		got[uid] = env
		if again, _ := m.instanceUID(ctx, env); again != uid {
			t.Errorf("%s asked again: %d, want %d", env, again, uid)
		}
	}
	if uid, err := m.instanceUID(ctx, "eph-other-1"); err == nil {
		t.Errorf("a fourth environment in a range of three got uid %d", uid)
	}
	delete(m.services, "web.eph-x893-1") // its environment went down
	if uid, err := m.instanceUID(ctx, "eph-other-1"); err != nil || got[uid] != "eph-x893-1" {
		t.Errorf("after an environment went down: %d, %v; want its user", uid, err)
	}
}
