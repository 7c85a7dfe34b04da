package secret

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/drover-cd/drover/store"
)

// rekeyNames are the secrets the rekey tests set, each to "value-of-NAME".
var rekeyNames = []string{"A_KEY", "B_KEY", "C_KEY", "D_KEY"}

func setRekeyValues(t *testing.T, v *testVault) {
	for i, name := range rekeyNames {
		k := Key{Name: name, Project: "shop"}
		if i%2 == 1 {
			k.Environment = "staging"
		}
		v.set(t, k, "value-of-"+name, "")
	}
}

// checkReadable fails unless every value resolves and is under key id.
func checkReadable(t *testing.T, v *testVault, id string) {
	t.Helper()
	got := values(t, v, Request{Names: rekeyNames, Project: "shop", Environment: "staging", Branch: "main", DefaultBranch: "main"})
	var want []string
	for _, name := range rekeyNames {
		want = append(want, name+"=value-of-"+name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("values: %q, want %q", got, want)
	}
	ss, err := v.st.Secrets(t.Context(), store.SecretFilter{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.KeyID != id {
			t.Errorf("%s is under key %s, want %s", s.Name, s.KeyID, id)
		}
	}
}

// keyFiles lists the folder's files but the database's.
func keyFiles(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "drover.db") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestRekeyMovesEveryValueToANewKey(t *testing.T) {
	v := newTestVault(t)
	setRekeyValues(t, v)
	before, _ := os.ReadFile(v.keyPath)
	old := v.Keyring().ID()
	n, err := v.Rekey(t.Context(), "admin")
	if err != nil || n != len(rekeyNames) {
		t.Fatalf("Rekey = %d, %v; want %d", n, err, len(rekeyNames))
	}
	id := v.Keyring().ID()
	if id == old {
		t.Fatal("the key did not change")
	}
	checkReadable(t, v, id)
	after, _ := os.ReadFile(v.keyPath)
	if string(after) == string(before) {
		t.Error("the key file did not change")
	}
	if fi, _ := os.Stat(v.keyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("the new key file has mode %04o", fi.Mode().Perm())
	}
	if files := keyFiles(t, v.dir); !slices.Equal(files, []string{"secret.key"}) {
		t.Errorf("after a rekey the folder holds %q", files)
	}
	// The old key is gone from memory too, and a reopened keyring is the new key.
	if _, ok := v.keys.keys[old]; ok {
		t.Error("the keyring still holds the old key")
	}
	if again := openTestVault(t, v.st, v.dir); again.Keyring().ID() != id {
		t.Errorf("reopened: key %s, want %s", again.Keyring().ID(), id)
	}
	es := v.audit(t)
	last := es[len(es)-1]
	if last.Action != "secret-rekey" || last.Actor != "admin" || !strings.Contains(last.Message, fmt.Sprintf("re-encrypted %s under key %s (was %s)", countValues(n), id, old)) {
		t.Errorf("the audit log's last entry: %+v", last)
	}
	// Values set after it are under the new key, from version 2 on.
	m := v.set(t, Key{Name: "A_KEY", Project: "shop"}, "value-of-A_KEY", "")
	if m.Version != 2 {
		t.Errorf("set after a rekey: version %d", m.Version)
	}
	checkReadable(t, v, id)
}

// crashMidRekey starts a rekey and moves only the first value, as a server killed
// then would have, and returns the new key's ID.
func crashMidRekey(t *testing.T, v *testVault) string {
	t.Helper()
	if err := v.keys.beginRekey(); err != nil {
		t.Fatal(err)
	}
	ss, _ := v.st.Secrets(t.Context(), store.SecretFilter{All: true})
	s := ss[0]
	k := Key{Name: s.Name, Project: s.Project, Environment: s.Environment}
	value, err := v.keys.decrypt(k, s.Ciphertext, s.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	ct, id, _ := v.keys.encrypt(k, value)
	if err := v.st.ReplaceSecretCiphertext(t.Context(), s.Name, s.Project, s.Environment, s.Version, ct, id); err != nil {
		t.Fatal(err)
	}
	if files := keyFiles(t, v.dir); !slices.Equal(files, []string{"secret.key", "secret.key.new"}) {
		t.Fatalf("mid-rekey the folder holds %q", files)
	}
	return id
}

// A rekey cut short after writing PATH.new is finished at the next start: meanwhile
// every value opens, under whichever key holds it.
func TestRekeyCutShortIsFinishedAtTheNextStart(t *testing.T) {
	v := newTestVault(t)
	setRekeyValues(t, v)
	old := v.Keyring().ID()
	next := crashMidRekey(t, v)

	// The next start: both keys, values of both open.
	v2 := openTestVault(t, v.st, v.dir)
	if !v2.keys.pending() || v2.Keyring().ID() != next {
		t.Fatalf("reopened mid-rekey: pending %v, key %s; want pending, %s", v2.keys.pending(), v2.Keyring().ID(), next)
	}
	got := values(t, v2, Request{Names: rekeyNames, Project: "shop", Environment: "staging", Branch: "main"})
	if len(got) != len(rekeyNames) {
		t.Fatalf("mid-rekey values: %q", got)
	}
	// A value set now goes under the new key.
	v2.set(t, Key{Name: "E_KEY", Project: "shop"}, "value-of-E_KEY", "")

	n, err := v2.FinishRekey(t.Context())
	if err != nil || n != len(rekeyNames)-1 {
		t.Fatalf("FinishRekey = %d, %v; want %d", n, err, len(rekeyNames)-1)
	}
	checkReadable(t, v2, next)
	if files := keyFiles(t, v.dir); !slices.Equal(files, []string{"secret.key"}) {
		t.Errorf("after finishing, the folder holds %q", files)
	}
	if _, ok := v2.keys.keys[old]; ok || v2.keys.pending() {
		t.Error("the keyring still holds the old key")
	}
	if again := openTestVault(t, v.st, v.dir); again.Keyring().ID() != next || again.keys.pending() {
		t.Errorf("reopened after finishing: key %s", again.Keyring().ID())
	}
	es := v2.audit(t)
	if last := es[len(es)-1]; last.Action != "secret-rekey" || last.Actor != "drover" || !strings.Contains(last.Message, "cut short") {
		t.Errorf("the audit log's last entry: %+v", last)
	}
	// Nothing pending: nothing to do.
	if n, err := v2.FinishRekey(t.Context()); n != 0 || err != nil {
		t.Errorf("FinishRekey with nothing pending = %d, %v", n, err)
	}
}

// The next rekey finishes one cut short, then moves everything to a key of its own.
func TestRekeyFinishesOneCutShortFirst(t *testing.T) {
	v := newTestVault(t)
	setRekeyValues(t, v)
	next := crashMidRekey(t, v)
	v2 := openTestVault(t, v.st, v.dir)
	n, err := v2.Rekey(t.Context(), "admin")
	if err != nil {
		t.Fatalf("Rekey: %v", err)
	}
	if n != len(rekeyNames)-1+len(rekeyNames) {
		t.Errorf("Rekey re-encrypted %d values, want %d", n, 2*len(rekeyNames)-1)
	}
	id := v2.Keyring().ID()
	if id == next {
		t.Error("the rekey kept the key of the one cut short")
	}
	checkReadable(t, v2, id)
	if files := keyFiles(t, v.dir); !slices.Equal(files, []string{"secret.key"}) {
		t.Errorf("after the rekey, the folder holds %q", files)
	}
	var actions []string
	for _, e := range v2.audit(t) {
		actions = append(actions, e.Actor+" "+e.Action)
	}
	if want := []string{"admin secret-rekey", "admin secret-rekey"}; !slices.Equal(actions[len(actions)-2:], want) {
		t.Errorf("audit: %q", actions)
	}
}

// A value under a key the keyring does not hold stops a rekey before the old key
// goes, saying which secret and what to do.
func TestRekeyStopsAtAValueNoKeyOpens(t *testing.T) {
	v := newTestVault(t)
	setRekeyValues(t, v)
	if err := v.st.PutSecret(t.Context(), &store.Secret{Name: "LOST", Project: "shop", Ciphertext: []byte("0123456789abcdefghijklmnopqrstuvwxyz"), KeyID: "deadbeef"}); err != nil {
		t.Fatal(err)
	}
	_, err := v.Rekey(t.Context(), "admin")
	if err == nil || !strings.Contains(err.Error(), "LOST") || !strings.Contains(err.Error(), "deadbeef") || !strings.Contains(err.Error(), "set the secret again") {
		t.Fatalf("Rekey with a value no key opens: %v", err)
	}
	// Both keys stay; everything else opens.
	if !v.keys.pending() {
		t.Error("the rekey was completed")
	}
	if got := values(t, v, Request{Names: rekeyNames, Project: "shop", Environment: "staging", Branch: "main"}); len(got) != len(rekeyNames) {
		t.Errorf("values: %q", got)
	}
	// Removing it lets the rekey finish.
	if err := v.Remove(t.Context(), Key{Name: "LOST", Project: "shop"}, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.FinishRekey(t.Context()); err != nil {
		t.Fatalf("FinishRekey: %v", err)
	}
	checkReadable(t, v, v.Keyring().ID())
}
