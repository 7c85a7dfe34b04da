package deploy

import (
	"context"
	"testing"

	"github.com/drover-cd/drover/sandbox"
	"github.com/drover-cd/drover/store"
)

// Each environment's instances run as a user of the range: a stored one by its id, an
// ephemeral one (never stored) by its name; without a range, as the server's user.
func TestInstanceUID(t *testing.T) {
	m := &Manager{}
	st := withStore(t, m)
	ctx := context.Background()
	if uid, err := m.instanceUID(ctx, "staging"); uid != 0 || err != nil {
		t.Errorf("without a range: %d, %v; want 0", uid, err)
	}
	m.cfg.InstanceUIDs = sandbox.Range{First: 21000, Last: 21009}
	staging, production := &store.Environment{Name: "staging"}, &store.Environment{Name: "production"}
	for _, e := range []*store.Environment{staging, production} {
		if err := st.CreateEnvironment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	s, err1 := m.instanceUID(ctx, "staging")
	p, err2 := m.instanceUID(ctx, "production")
	if err1 != nil || err2 != nil || s == p || s != 21000+int(staging.ID%10) || p != 21000+int(production.ID%10) {
		t.Errorf("staging %d (%v), production %d (%v): want distinct users by id", s, err1, p, err2)
	}
	e1, err1 := m.instanceUID(ctx, "eph-web-1")
	e2, err2 := m.instanceUID(ctx, "eph-web-1")
	if err1 != nil || err2 != nil || e1 != e2 || e1 < 21000 || e1 > 21009 {
		t.Errorf("an ephemeral environment: %d, %d (%v, %v); want one user of the range, the same each time", e1, e2, err1, err2)
	}
}
