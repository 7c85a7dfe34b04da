package secret

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover-cd/drover/store"
	"github.com/drover-cd/drover/store/sqlstore"
)

// testVault is a Vault over a fresh SQLite store, with its key file in dir.
type testVault struct {
	*Vault
	st      store.Store
	dir     string
	keyPath string
}

func newTestVault(t *testing.T) *testVault {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.Open(t.Context(), filepath.Join(dir, "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return openTestVault(t, st, dir)
}

// openTestVault is a Vault over st with the key file in dir, opened afresh.
func openTestVault(t *testing.T, st store.Store, dir string) *testVault {
	t.Helper()
	path := filepath.Join(dir, "secret.key")
	return &testVault{Vault: NewVault(st, openKeyring(t, path)), st: st, dir: dir, keyPath: path}
}

// set sets a secret and fails the test when it cannot.
func (v *testVault) set(t *testing.T, k Key, value, branch string) Meta {
	t.Helper()
	m, err := v.Set(t.Context(), k, []byte(value), branch, "rita")
	if err != nil {
		t.Fatalf("Set(%s): %v", k, err)
	}
	return m
}

// audit is the audit log, oldest first.
func (v *testVault) audit(t *testing.T) []*store.AuditEntry {
	t.Helper()
	es, err := v.st.Audit(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(es)
	return es
}

func TestSetRefusesWhatCannotBeASecret(t *testing.T) {
	v := newTestVault(t)
	ok := Key{Name: "DB_PASSWORD", Project: "shop"}
	for _, c := range []struct {
		what          string
		k             Key
		value, branch string
		want          string
	}{
		{"a lower-case name", Key{Name: "db_password"}, "long enough", "", "environment variable's name"},
		{"a name with a dash", Key{Name: "DB-PASSWORD"}, "long enough", "", "environment variable's name"},
		{"a name starting with a digit", Key{Name: "1DB"}, "long enough", "", "environment variable's name"},
		{"no name", Key{}, "long enough", "", "environment variable's name"},
		{"a bad environment", Key{Name: "X", Environment: "Prod env"}, "long enough", "", "environment's name"},
		{"a project with a slash", Key{Name: "X", Project: "a/b"}, "long enough", "", "not a project's name"},
		{"a 3-byte value", ok, "abc", "", "could not be masked"},
		{"an empty value", ok, "", "", "could not be masked"},
		{"a NUL", ok, "abc\x00def", "", "NUL"},
		{"a value over 64 KiB", ok, strings.Repeat("x", 64<<10+1), "", "64 KiB"},
		{"a bad glob", ok, "long enough", "release/[", "branch glob"},
		{"a glob with a space", ok, "long enough", "a b", "branch glob"},
	} {
		_, err := v.Set(t.Context(), c.k, []byte(c.value), c.branch, "rita")
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Set with %s: %v; want ErrInvalid saying %q", c.what, err, c.want)
		}
	}
	if ms, _ := v.List(t.Context(), "", true); len(ms) != 0 {
		t.Errorf("refused values were stored: %+v", ms)
	}
	if es := v.audit(t); len(es) != 0 {
		t.Errorf("refused values were audited: %+v", es)
	}
	// The limits themselves are fine.
	v.set(t, ok, "abcd", "")
	v.set(t, ok, strings.Repeat("x", 64<<10), "release/*")
}

func TestSetListRemoveAndTheAuditLog(t *testing.T) {
	v := newTestVault(t)
	ctx := t.Context()
	staging := Key{Name: "DB_PASSWORD", Project: "shop", Environment: "staging"}
	m := v.set(t, staging, "first-value-1", "")
	if m.Version != 1 || m.Key != staging || m.Actor != "rita" || m.Updated.IsZero() {
		t.Errorf("Set = %+v", m)
	}
	if m = v.set(t, staging, "second-value-2", "main"); m.Version != 2 || m.Branch != "main" {
		t.Errorf("Set again = %+v, want version 2 for main", m)
	}
	v.set(t, Key{Name: "SENTRY_DSN"}, "global-value-3", "")
	v.set(t, Key{Name: "API_KEY", Project: "web"}, "web-value-4", "")

	ms, err := v.List(ctx, "shop", false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Key.String())
	}
	if want := []string{"DB_PASSWORD (project shop, environment staging)", "SENTRY_DSN (global)"}; !slices.Equal(got, want) {
		t.Errorf("List(shop) = %q, want %q", got, want)
	}
	if all, _ := v.List(ctx, "", true); len(all) != 3 {
		t.Errorf("List(all) = %d secrets, want 3", len(all))
	}
	if global, _ := v.List(ctx, "", false); len(global) != 1 || global[0].Name != "SENTRY_DSN" {
		t.Errorf("List(global) = %+v", global)
	}

	if err := v.Remove(ctx, Key{Name: "DB_PASSWORD", Project: "shop"}, "sam"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Remove of a scope that has none: %v", err)
	}
	if err := v.Remove(ctx, staging, "sam"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := v.Remove(ctx, staging, "sam"); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "drover secret ls") {
		t.Errorf("Remove twice: %v", err)
	}

	var lines []string
	for _, e := range v.audit(t) {
		lines = append(lines, e.Actor+" "+e.Action+" ["+e.Project+"/"+e.Environment+"] "+e.Message)
		for _, value := range []string{"first-value", "second-value", "global-value", "web-value"} {
			if strings.Contains(e.Message, value) {
				t.Errorf("the audit log holds a value: %+v", e)
			}
		}
	}
	want := []string{
		`rita secret-set [shop/staging] DB_PASSWORD (project shop, environment staging): version 1`,
		`rita secret-set [shop/staging] DB_PASSWORD (project shop, environment staging): version 2, branches "main"`,
		`rita secret-set [/] SENTRY_DSN (global): version 1`,
		`rita secret-set [web/] API_KEY (project web): version 1`,
		`sam secret-rm [shop/staging] DB_PASSWORD (project shop, environment staging): removed at version 2`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
