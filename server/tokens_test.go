package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-cd/drover/store"
)

// countingStore counts the writes of tokens' last use.
type countingStore struct {
	store.Store
	touches atomic.Int64
}

func (c *countingStore) TouchToken(ctx context.Context, id int64, at time.Time) error {
	c.touches.Add(1)
	return c.Store.TouchToken(ctx, id, at)
}

// tokenEnv is a full server over a store that counts last-use writes.
type tokenEnv struct {
	t  *testing.T
	st *countingStore
	ts *httptest.Server
}

func newTokenEnv(t *testing.T) *tokenEnv {
	srv, st := fullServer(t, false)
	cs := &countingStore{Store: st}
	srv.cfg.Store = cs
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &tokenEnv{t: t, st: cs, ts: ts}
}

// call sends a JSON request with token and decodes the answer into out; it returns
// the status and the body, or the error message of an error.
func (e *tokenEnv) call(token, method, path string, in, out any) (int, string) {
	e.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, e.ts.URL+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	var e2 struct{ Error string }
	if resp.StatusCode >= 300 && json.Unmarshal(b, &e2) == nil && e2.Error != "" {
		return resp.StatusCode, e2.Error
	}
	return resp.StatusCode, string(b)
}

// created is the answer to POST /api/v1/tokens.
type created struct {
	tokenJSON
	Name  string `json:"name"`
	Token string `json:"token"`
}

func TestUsersAndTheirTokens(t *testing.T) {
	e := newTokenEnv(t)
	ctx := context.Background()
	admin, err := AdminToken(ctx, e.st)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := e.call(admin, "POST", "/api/v1/users", map[string]any{"name": "rita", "role": "developer", "approvals": []string{"release-manager"}}, nil); code != 201 {
		t.Fatalf("add rita: %d %s", code, body)
	}
	for _, c := range []struct {
		in   map[string]any
		code int
		says string
	}{
		{map[string]any{"name": "rita", "role": "viewer"}, 409, "user rita exists already"},
		{map[string]any{"name": "bad name", "role": "viewer"}, 400, "use letters, digits"},
		{map[string]any{"name": "drover", "role": "viewer"}, 400, "choose another"},
		{map[string]any{"name": "bob", "role": "root"}, 400, `role "root"`},
		{map[string]any{"name": "bob", "role": "viewer", "approvals": []string{"Release Manager"}}, 400, "approval role"},
	} {
		if code, body := e.call(admin, "POST", "/api/v1/users", c.in, nil); code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("POST /api/v1/users %v: %d %s; want %d saying %q", c.in, code, body, c.code, c.says)
		}
	}

	var laptop, ci created
	if code, body := e.call(admin, "POST", "/api/v1/tokens", map[string]any{"user": "rita", "label": "laptop", "expires": "90d"}, &laptop); code != 201 {
		t.Fatalf("token for rita: %d %s", code, body)
	}
	if d := time.Until(laptop.Expires); laptop.User != "rita" || laptop.Role != "developer" || d < 89*24*time.Hour || d > 90*24*time.Hour {
		t.Errorf("rita's laptop token: %+v", laptop)
	}
	e.call(admin, "POST", "/api/v1/tokens", map[string]any{"user": "rita", "label": "ci"}, &ci)
	for _, c := range []struct {
		in   map[string]any
		code int
		says string
	}{
		{map[string]any{"user": "nobody"}, 404, "drover user add nobody"},
		{map[string]any{"user": "rita", "role": "admin"}, 400, "leave out name, role and approvals"},
		{map[string]any{"user": "rita", "expires": "1x"}, 400, `unknown unit "x"`},
		{map[string]any{"user": "rita", "expires": "-1d"}, 400, "cannot be negative"},
		{map[string]any{"user": "rita", "expires": "0"}, 400, "would expire at once"},
		{map[string]any{"user": "rita", "machine": "proxy"}, 400, "not both"},
		{map[string]any{"machine": "robot"}, 400, `machine "robot"`},
		{map[string]any{"machine": "pull"}, 400, "a pull token reads one repository"},
		{map[string]any{"machine": "proxy", "repository": "shop"}, 400, "only pull tokens"},
		{map[string]any{"machine": "pull", "repository": "shop", "expires": "25h"}, 400, "at most 24h"},
	} {
		if code, body := e.call(admin, "POST", "/api/v1/tokens", c.in, nil); code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("POST /api/v1/tokens %v: %d %s; want %d saying %q", c.in, code, body, c.code, c.says)
		}
	}
	var pull created
	e.call(admin, "POST", "/api/v1/tokens", map[string]any{"machine": "pull", "repository": "shop"}, &pull)
	if d := time.Until(pull.Expires); d < 59*time.Minute || d > time.Hour || pull.Name != fmt.Sprintf("pull token %d", pull.ID) {
		t.Errorf("a pull token lives an hour by default: %+v", pull)
	}

	// The old way makes a user of its own each time, named after the role.
	var old1, old2 created
	e.call(admin, "POST", "/api/v1/tokens", map[string]any{"role": "developer"}, &old1)
	e.call(admin, "POST", "/api/v1/tokens", map[string]any{"role": "developer", "approvals": []string{"release-manager"}}, &old2)
	if old1.Name != "developer" || old2.Name != "developer-2" || old2.Role != "developer" || len(old2.Approvals) != 1 {
		t.Errorf("tokens made the old way: %+v, %+v; want users developer and developer-2", old1, old2)
	}

	// Admins see every token, a user their own; never a secret.
	var all, mine []tokenJSON
	_, allBody := e.call(admin, "GET", "/api/v1/tokens", nil, &all)
	_, mineBody := e.call(laptop.Token, "GET", "/api/v1/tokens", nil, &mine)
	if len(all) != 6 || len(mine) != 2 || mine[0].ID != laptop.ID || mine[1].ID != ci.ID {
		t.Errorf("admin sees %d tokens (want 6), rita %v (want her 2)", len(all), mine)
	}
	for _, secret := range []string{admin, laptop.Token, ci.Token, pull.Token, old1.Token, old2.Token} {
		if strings.Contains(allBody+mineBody, secret) || strings.Contains(allBody, `"hash"`) {
			t.Errorf("GET /api/v1/tokens shows a secret or a hash:\n%s", allBody)
		}
	}
	var ritas []tokenJSON
	if e.call(admin, "GET", "/api/v1/tokens?user=rita", nil, &ritas); len(ritas) != 2 {
		t.Errorf("admin's list of rita's tokens: %v", ritas)
	}
	if code, _ := e.call(laptop.Token, "GET", "/api/v1/users", nil, nil); code != 403 {
		t.Errorf("a developer lists users: %d, want 403", code)
	}

	// A user revokes their own token, not another's; it is refused at once.
	if code, body := e.call(laptop.Token, "DELETE", fmt.Sprintf("/api/v1/tokens/%d", old1.ID), nil, nil); code != 404 || !strings.Contains(body, "of yours") {
		t.Errorf("rita revokes another's token: %d %s; want 404", code, body)
	}
	if code, body := e.call(laptop.Token, "DELETE", fmt.Sprintf("/api/v1/tokens/%d", ci.ID), nil, nil); code != 200 || !strings.Contains(body, `"state": "revoked"`) {
		t.Errorf("rita revokes her ci token: %d %s", code, body)
	}
	if code, body := e.call(ci.Token, "GET", "/api/v1/projects", nil, nil); code != 401 || !strings.Contains(body, "the token was revoked at ") ||
		!strings.Contains(body, "create a new one with drover token create") {
		t.Errorf("the revoked token: %d %s", code, body)
	}
	if code, body := e.call(admin, "DELETE", fmt.Sprintf("/api/v1/tokens/%d", ci.ID), nil, nil); code != 409 || !strings.Contains(body, "revoked at") {
		t.Errorf("revoking it again: %d %s; want 409", code, body)
	}
	if code, _ := e.call(admin, "DELETE", fmt.Sprintf("/api/v1/tokens/%d", old1.ID), nil, nil); code != 200 {
		t.Errorf("admin revokes another's token: %d", code)
	}
	if code, _ := e.call(laptop.Token, "GET", "/api/v1/projects", nil, nil); code != 200 {
		t.Errorf("rita's other token after revoking one: %d", code)
	}

	// Adding users and making and revoking tokens are audited, by user.
	entries, err := e.st.Audit(ctx, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	for _, en := range entries {
		log = append(log, en.Actor+" "+en.Action+" "+en.Message)
	}
	text := strings.Join(log, "\n")
	for _, want := range []string{
		"admin user-add rita: developer, approves release-manager",
		fmt.Sprintf(`admin token-create token %d of rita (developer), label "laptop", expires `, laptop.ID),
		fmt.Sprintf("admin token-create token %d of machine pull for shop, expires ", pull.ID),
		"admin user-add developer-2: developer (with the token made for it)",
		fmt.Sprintf(`rita token-revoke token %d of rita (developer), label "ci"`, ci.ID),
		fmt.Sprintf("admin token-revoke token %d of developer (developer)", old1.ID),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the audit log lacks %q:\n%s", want, text)
		}
	}
}

func TestExpiredTokensAreRefusedAtEveryDoor(t *testing.T) {
	e := newTokenEnv(t)
	ctx := context.Background()
	u := &store.User{Name: "ed", Role: RoleDeveloper}
	if err := AddUser(ctx, e.st, u); err != nil {
		t.Fatal(err)
	}
	tok := &store.Token{UserID: u.ID, Expires: time.Now().Add(time.Second)}
	secret, err := IssueToken(ctx, e.st, tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := e.call(secret, "GET", "/api/v1/projects", nil, nil); code != 200 {
		t.Fatalf("before it expires: %d", code)
	}
	time.Sleep(time.Until(tok.Expires) + 10*time.Millisecond)
	want := "the token expired at " + tok.Expires.UTC().Format(time.RFC3339) + "; create a new one with drover token create"
	for _, c := range []struct {
		what, path, header string
		basic              bool
	}{
		{"the API", "/api/v1/projects", "", false},
		{"git", "/git/app.git/info/refs?service=git-upload-pack", `Basic realm="drover"`, true},
		{"the registry", "/v2/app/tags/list", `Bearer realm=`, true},
		{"the registry's token endpoint", "/auth/token", `Bearer realm=`, true},
	} {
		req, _ := http.NewRequest("GET", e.ts.URL+c.path, nil)
		if c.basic {
			req.SetBasicAuth("ed", secret)
		} else {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), want) || !strings.Contains(resp.Header.Get("WWW-Authenticate"), c.header) {
			t.Errorf("%s with an expired token: %d %q %s; want 401 saying %q", c.what, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body, want)
		}
	}
	// The web UI forgets the sign-in and asks for a new one.
	req, _ := http.NewRequest("GET", e.ts.URL+"/p/app", nil)
	req.AddCookie(&http.Cookie{Name: TokenCookie, Value: secret})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") ||
		!strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("a page with an expired sign-in: %d %v", resp.StatusCode, resp.Header)
	}
}

// Recording last use must not add a database write per request: at most one a minute
// per token.
func TestLastUseIsWrittenAtMostOnceAMinute(t *testing.T) {
	e := newTokenEnv(t)
	ctx := context.Background()
	a, err := CreateToken(ctx, e.st, "a", RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := CreateToken(ctx, e.st, "b", RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		e.call(a, "GET", "/api/v1/projects", nil, nil)
		e.call(b, "GET", "/api/v1/projects", nil, nil)
	}
	if n := e.st.touches.Load(); n != 2 {
		t.Errorf("40 requests with 2 tokens wrote last use %d times; want 2", n)
	}
	ts, err := e.st.Tokens(ctx, store.TokenFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range ts {
		if time.Since(tok.LastUsed) > time.Minute {
			t.Errorf("token %d (%s): LastUsed %v", tok.ID, tok.User, tok.LastUsed)
		}
	}
	// A stored use younger than a minute (a restarted server) counts as noted.
	fresh := &usage{}
	fresh.note(ctx, e.st, ts[0], nil)
	if n := e.st.touches.Load(); n != 2 {
		t.Errorf("a new note of a token used just now wrote again: %d writes", n)
	}
	old := *ts[0]
	old.LastUsed = time.Now().Add(-2 * usageEvery)
	fresh.note(ctx, e.st, &old, nil)
	if n := e.st.touches.Load(); n != 3 {
		t.Errorf("a token last used two minutes ago was not noted: %d writes", n)
	}
}

func TestMachineTokensCannotSignInToTheWebUI(t *testing.T) {
	srv, st := fullServer(t, false)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	for _, kind := range machines {
		secret := machineToken(t, st, kind)
		resp, err := http.PostForm(ts.URL+"/login", map[string][]string{"token": {secret}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), "belongs to a machine") || resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("sign in with a %s token: %d %v\n%s", kind, resp.StatusCode, resp.Header, body)
		}
	}
}
