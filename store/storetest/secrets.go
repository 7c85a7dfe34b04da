package storetest

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/drover-cd/drover/store"
)

// putSecret stores a secret and fails the test when it cannot.
func putSecret(t *testing.T, s store.Store, sec *store.Secret) *store.Secret {
	t.Helper()
	if err := s.PutSecret(t.Context(), sec); err != nil {
		t.Fatalf("PutSecret(%s, %q, %q): %v", sec.Name, sec.Project, sec.Environment, err)
	}
	return sec
}

// secretKeys lists the secrets' keys as "NAME project env".
func secretKeys(ss []*store.Secret) []string {
	out := []string{}
	for _, sec := range ss {
		out = append(out, fmt.Sprintf("%s %s %s", sec.Name, sec.Project, sec.Environment))
	}
	return out
}

// checkSecret fails unless got equals want in every field.
func checkSecret(t *testing.T, what string, got, want *store.Secret) {
	t.Helper()
	g, w := *got, *want
	sameTimes(t, what, []string{"Updated"}, []*time.Time{&g.Updated}, []*time.Time{&w.Updated})
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func testSecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	if ss, err := s.Secrets(ctx, store.SecretFilter{All: true}); err != nil || len(ss) != 0 {
		t.Fatalf("Secrets of an empty store = %v, %v; want none", ss, err)
	}
	// The same name in four scopes is four secrets; a project's need not exist.
	db := putSecret(t, s, &store.Secret{Name: "DB", Project: "shop", Environment: "staging", Branch: "main",
		Ciphertext: []byte{0, 1, 2, 0xff}, KeyID: "k1", Actor: "rita"})
	if db.Version != 1 {
		t.Errorf("a new secret has version %d, want 1", db.Version)
	}
	checkCreated(t, "PutSecret", db.Updated)
	putSecret(t, s, &store.Secret{Name: "DB", Project: "shop", Ciphertext: []byte("b"), KeyID: "k1", Actor: "rita"})
	putSecret(t, s, &store.Secret{Name: "DB", Environment: "staging", Ciphertext: []byte("c"), KeyID: "k1", Actor: "admin"})
	putSecret(t, s, &store.Secret{Name: "DB", Ciphertext: []byte("d"), KeyID: "k1", Actor: "admin"})
	putSecret(t, s, &store.Secret{Name: "API", Project: "web", Ciphertext: []byte("e"), KeyID: "k1", Actor: "admin"})
	putSecret(t, s, &store.Secret{Name: "API", Project: "shop", Environment: "production", Ciphertext: []byte("f"), KeyID: "k1"})

	all, err := s.Secrets(ctx, store.SecretFilter{All: true, Project: "ignored"})
	if err != nil {
		t.Fatalf("Secrets(all): %v", err)
	}
	want := []string{"API shop production", "API web ", "DB  ", "DB  staging", "DB shop ", "DB shop staging"}
	if got := secretKeys(all); !slices.Equal(got, want) {
		t.Errorf("Secrets(all) = %q, want %q", got, want)
	}
	checkSecret(t, "Secrets(all): DB shop staging", all[5], db)

	for _, c := range []struct {
		f    store.SecretFilter
		want []string
	}{
		{store.SecretFilter{Project: "shop"}, []string{"API shop production", "DB shop ", "DB shop staging"}},
		{store.SecretFilter{Project: "shop", Global: true}, []string{"API shop production", "DB  ", "DB  staging", "DB shop ", "DB shop staging"}},
		{store.SecretFilter{}, []string{"DB  ", "DB  staging"}},
		{store.SecretFilter{Global: true}, []string{"DB  ", "DB  staging"}},
		{store.SecretFilter{Project: "nope"}, []string{}},
	} {
		got, err := s.Secrets(ctx, c.f)
		if err != nil || !slices.Equal(secretKeys(got), c.want) {
			t.Errorf("Secrets(%+v) = %q, %v; want %q", c.f, secretKeys(got), err, c.want)
		}
	}

	// Setting it again replaces the value and what goes with it, one version up.
	again := putSecret(t, s, &store.Secret{Name: "DB", Project: "shop", Environment: "staging", Ciphertext: []byte("new"),
		KeyID: "k2", Actor: "sam"})
	if again.Version != 2 {
		t.Errorf("a secret set again has version %d, want 2", again.Version)
	}
	got, _ := s.Secrets(ctx, store.SecretFilter{Project: "shop"})
	checkSecret(t, "DB shop staging set again", got[2], again)
	if got[1].Version != 1 || !bytes.Equal(got[1].Ciphertext, []byte("b")) {
		t.Errorf("setting DB shop staging changed DB shop: %+v", got[1])
	}

	wantErr(t, "DeleteSecret(missing)", s.DeleteSecret(ctx, "DB", "web", ""), store.ErrNotFound)
	if err := s.DeleteSecret(ctx, "DB", "shop", "staging"); err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	wantErr(t, "DeleteSecret twice", s.DeleteSecret(ctx, "DB", "shop", "staging"), store.ErrNotFound)
	got, _ = s.Secrets(ctx, store.SecretFilter{All: true})
	if want := []string{"API shop production", "API web ", "DB  ", "DB  staging", "DB shop "}; !slices.Equal(secretKeys(got), want) {
		t.Errorf("after DeleteSecret: %q, want %q", secretKeys(got), want)
	}
	// Set after removal, it starts over.
	if sec := putSecret(t, s, &store.Secret{Name: "DB", Project: "shop", Environment: "staging", Ciphertext: []byte("x"), KeyID: "k2"}); sec.Version != 1 {
		t.Errorf("a secret set after its removal has version %d, want 1", sec.Version)
	}
}

// Setters at once each get a version of their own.
func testSecretVersionsConcurrent(t *testing.T, s store.Store) {
	const n = 12
	var wg sync.WaitGroup
	versions := make(chan int, n)
	for i := range n {
		wg.Go(func() {
			sec := &store.Secret{Name: "RACE", Project: "app", Ciphertext: []byte{byte(i)}, KeyID: "k"}
			if err := s.PutSecret(t.Context(), sec); err != nil {
				t.Errorf("PutSecret: %v", err)
				return
			}
			versions <- sec.Version
		})
	}
	wg.Wait()
	close(versions)
	var got []int
	for v := range versions {
		got = append(got, v)
	}
	slices.Sort(got)
	want := []int{}
	for v := 1; v <= n; v++ {
		want = append(want, v)
	}
	if !slices.Equal(got, want) {
		t.Errorf("versions of concurrent sets = %v, want %v", got, want)
	}
}

// A rekey re-encrypts a secret only at the version it read.
func testReplaceSecretCiphertext(t *testing.T, s store.Store) {
	ctx := t.Context()
	sec := putSecret(t, s, &store.Secret{Name: "K", Project: "app", Environment: "staging", Branch: "release/*",
		Ciphertext: []byte("old"), KeyID: "k1", Actor: "rita"})
	if err := s.ReplaceSecretCiphertext(ctx, "K", "app", "staging", 1, []byte("rekeyed"), "k2"); err != nil {
		t.Fatalf("ReplaceSecretCiphertext: %v", err)
	}
	got, err := s.Secrets(ctx, store.SecretFilter{Project: "app"})
	if err != nil || len(got) != 1 {
		t.Fatalf("Secrets = %v, %v", got, err)
	}
	want := *sec
	want.Ciphertext, want.KeyID = []byte("rekeyed"), "k2"
	checkSecret(t, "after ReplaceSecretCiphertext", got[0], &want)

	// Set meanwhile: the rekey's write is refused and the new value stays.
	putSecret(t, s, &store.Secret{Name: "K", Project: "app", Environment: "staging", Ciphertext: []byte("v2"), KeyID: "k2"})
	wantErr(t, "ReplaceSecretCiphertext of an old version",
		s.ReplaceSecretCiphertext(ctx, "K", "app", "staging", 1, []byte("stale"), "k3"), store.ErrNotFound)
	wantErr(t, "ReplaceSecretCiphertext of a missing secret",
		s.ReplaceSecretCiphertext(ctx, "K", "app", "", 1, []byte("x"), "k3"), store.ErrNotFound)
	got, _ = s.Secrets(ctx, store.SecretFilter{Project: "app"})
	if got[0].Version != 2 || string(got[0].Ciphertext) != "v2" || got[0].KeyID != "k2" {
		t.Errorf("a refused re-encryption changed the secret: %+v", got[0])
	}
}
