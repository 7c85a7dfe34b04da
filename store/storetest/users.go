package storetest

import (
	"bytes"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/drover-cd/drover/store"
)

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	if us, err := s.Users(ctx); err != nil || len(us) != 0 {
		t.Fatalf("Users of an empty store = %v, %v; want none", us, err)
	}
	rita := &store.User{Name: "rita", Role: "developer", Groups: []string{"release-manager", "dba"}}
	ann := &store.User{Name: "ann", Role: "admin"}
	for _, u := range []*store.User{rita, ann} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatalf("CreateUser(%s): %v", u.Name, err)
		}
		if u.ID == 0 {
			t.Errorf("CreateUser(%s) did not set ID", u.Name)
		}
		checkCreated(t, "CreateUser("+u.Name+")", u.Created)
	}
	if rita.ID == ann.ID {
		t.Errorf("two users have ID %d", rita.ID)
	}
	wantErr(t, "CreateUser of a taken name", s.CreateUser(ctx, &store.User{Name: "rita", Role: "viewer"}), store.ErrExists)
	// Names are compared exactly: another case is another user.
	if err := s.CreateUser(ctx, &store.User{Name: "Rita", Role: "viewer"}); err != nil {
		t.Errorf("CreateUser(Rita) after rita: %v", err)
	}

	got, err := s.User(ctx, "rita")
	if err != nil {
		t.Fatalf("User(rita): %v", err)
	}
	g, w := *got, *rita
	sameTimes(t, "User(rita)", []string{"Created"}, []*time.Time{&g.Created}, []*time.Time{&w.Created})
	if !reflect.DeepEqual(g, w) {
		t.Errorf("User(rita):\n got %+v\nwant %+v", g, w)
	}
	_, err = s.User(ctx, "nobody")
	wantErr(t, "User(nobody)", err, store.ErrNotFound)

	us, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range us {
		names = append(names, u.Name)
	}
	if !reflect.DeepEqual(names, []string{"Rita", "ann", "rita"}) {
		t.Errorf("Users = %v, want Rita, ann, rita (by name)", names)
	}
	if us[1].Groups != nil || !reflect.DeepEqual(us[2].Groups, rita.Groups) {
		t.Errorf("Users' approval roles: ann %v, rita %v", us[1].Groups, us[2].Groups)
	}
}

// hash is a token hash made of b.
func hash(b byte) []byte { return bytes.Repeat([]byte{b, 0x00, 0xff, b}, 8) }

func testTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	if n, err := s.CountTokens(ctx); err != nil || n != 0 {
		t.Fatalf("CountTokens of an empty store = %d, %v; want 0", n, err)
	}
	rita := &store.User{Name: "rita", Role: "developer", Groups: []string{"release-manager"}}
	if err := s.CreateUser(ctx, rita); err != nil {
		t.Fatal(err)
	}
	expires := t1.Add(90 * 24 * time.Hour)
	laptop := &store.Token{UserID: rita.ID, Label: "laptop", Hash: hash(0xde), Expires: expires}
	ci := &store.Token{UserID: rita.ID, Label: "ci", Hash: hash(0x01)}
	proxy := &store.Token{Machine: "proxy", Label: "edge 1", Hash: hash(0x02)}
	pull := &store.Token{Machine: "pull", Repository: "shop/image", Hash: hash(0x03), Expires: t2}
	for _, tok := range []*store.Token{laptop, ci, proxy, pull} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken(%s): %v", tok.Label, err)
		}
		if tok.ID == 0 {
			t.Errorf("CreateToken(%s) did not set ID", tok.Label)
		}
		checkCreated(t, "CreateToken("+tok.Label+")", tok.Created)
	}
	if laptop.User != "rita" || laptop.Role != "developer" || !reflect.DeepEqual(laptop.Groups, []string{"release-manager"}) {
		t.Errorf("CreateToken did not fill in the user: %+v", laptop)
	}
	if proxy.User != "" || proxy.Role != "" || proxy.Groups != nil {
		t.Errorf("a machine token has a user: %+v", proxy)
	}
	if n, err := s.CountTokens(ctx); err != nil || n != 4 {
		t.Errorf("CountTokens = %d, %v; want 4", n, err)
	}

	for _, want := range []*store.Token{laptop, ci, proxy, pull} {
		for how, read := range map[string]func() (*store.Token, error){
			"TokenByHash": func() (*store.Token, error) { return s.TokenByHash(ctx, want.Hash) },
			"Token":       func() (*store.Token, error) { return s.Token(ctx, want.ID) },
		} {
			got, err := read()
			if err != nil {
				t.Fatalf("%s(%s): %v", how, want.Label, err)
			}
			checkToken(t, how+"("+want.Label+")", got, want)
		}
	}
	// A prefix of a hash is not the hash.
	_, err := s.TokenByHash(ctx, laptop.Hash[:16])
	wantErr(t, "TokenByHash(prefix)", err, store.ErrNotFound)
	_, err = s.Token(ctx, pull.ID+100)
	wantErr(t, "Token(missing)", err, store.ErrNotFound)

	dup := &store.Token{UserID: rita.ID, Hash: laptop.Hash}
	wantErr(t, "CreateToken of a stored hash", s.CreateToken(ctx, dup), store.ErrExists)
	orphan := &store.Token{UserID: rita.ID + 100, Hash: hash(0x04)}
	wantErr(t, "CreateToken for a missing user", s.CreateToken(ctx, orphan), store.ErrNotFound)
	if n, err := s.CountTokens(ctx); err != nil || n != 4 {
		t.Errorf("CountTokens after refused tokens = %d, %v; want 4", n, err)
	}

	all, err := s.Tokens(ctx, store.TokenFilter{})
	if err != nil || len(all) != 4 {
		t.Fatalf("Tokens = %d, %v; want 4", len(all), err)
	}
	for i, want := range []*store.Token{laptop, ci, proxy, pull} {
		checkToken(t, "Tokens()["+want.Label+"]", all[i], want)
	}
	mine, err := s.Tokens(ctx, store.TokenFilter{UserID: rita.ID})
	if err != nil || len(mine) != 2 || mine[0].ID != laptop.ID || mine[1].ID != ci.ID {
		t.Errorf("Tokens(rita) = %v, %v; want laptop and ci", mine, err)
	}
}

// checkToken fails unless got equals want in every field.
func checkToken(t *testing.T, what string, got, want *store.Token) {
	t.Helper()
	g, w := *got, *want
	sameTimes(t, what, []string{"Created", "Expires", "Revoked", "LastUsed"},
		[]*time.Time{&g.Created, &g.Expires, &g.Revoked, &g.LastUsed}, []*time.Time{&w.Created, &w.Expires, &w.Revoked, &w.LastUsed})
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func testRevokeAndTouchTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := &store.User{Name: "dev", Role: "developer"}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	tok := &store.Token{UserID: u.ID, Hash: hash(0x10)}
	other := &store.Token{UserID: u.ID, Hash: hash(0x11)}
	for _, x := range []*store.Token{tok, other} {
		if err := s.CreateToken(ctx, x); err != nil {
			t.Fatal(err)
		}
	}

	if err := s.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	got, err := s.TokenByHash(ctx, tok.Hash)
	if err != nil {
		t.Fatalf("TokenByHash of a revoked token: %v (it is still read, so the caller can say why it is refused)", err)
	}
	checkCreated(t, "Revoked", got.Revoked)
	first := got.Revoked
	time.Sleep(2 * time.Millisecond)
	if err := s.RevokeToken(ctx, tok.ID); err != nil {
		t.Errorf("RevokeToken again: %v", err)
	}
	if again, err := s.Token(ctx, tok.ID); err != nil || !again.Revoked.Equal(first) {
		t.Errorf("revoking again changed the time: %v, %v; want %v", again.Revoked, err, first)
	}
	if o, err := s.Token(ctx, other.ID); err != nil || !o.Revoked.IsZero() {
		t.Errorf("revoking one token revoked another: %+v, %v", o, err)
	}
	wantErr(t, "RevokeToken(missing)", s.RevokeToken(ctx, other.ID+100), store.ErrNotFound)

	// Last use only moves forward, as concurrent requests may note it out of order.
	if err := s.TouchToken(ctx, other.ID, t2); err != nil {
		t.Fatalf("TouchToken: %v", err)
	}
	if err := s.TouchToken(ctx, other.ID, t1); err != nil {
		t.Errorf("TouchToken with an earlier time: %v", err)
	}
	if o, err := s.Token(ctx, other.ID); err != nil || !o.LastUsed.Equal(t2) || o.LastUsed.Location() != time.UTC {
		t.Errorf("LastUsed = %v, %v; want %v in UTC", o.LastUsed, err, t2)
	}
	wantErr(t, "TouchToken(missing)", s.TouchToken(ctx, other.ID+100, t2), store.ErrNotFound)

	// Many requests at once note their use without failing.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.TouchToken(ctx, other.ID, t2.Add(time.Duration(i)*time.Minute)) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent TouchToken: %v", err)
		}
	}
	if o, err := s.Token(ctx, other.ID); err != nil || !o.LastUsed.Equal(t2.Add(7*time.Minute)) {
		t.Errorf("LastUsed after concurrent notes = %v, %v; want the latest", o.LastUsed, err)
	}
}
