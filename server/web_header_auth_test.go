package server

import (
	"net/http"
	"strings"
	"testing"
)

// Issue 16: a client that sends an Authorization header to a page (curl, a script, a
// monitor) is authenticated as the API would: the page for a token with the role, the
// API's 401 or 403 otherwise, never a redirect to the sign-in form.
func TestWebPagesAuthenticateAuthorizationHeader(t *testing.T) {
	e := newWebEnv(t, false)
	e.project("shop")
	e.run("shop", "pending")
	viewer, developer := e.token(RoleViewer), e.token(RoleDeveloper)
	proxyTok := machineToken(t, e.st, MachineProxy)

	send := func(method, path string, auth func(*http.Request)) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, e.ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		auth(req)
		return e.send(req)
	}
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	basic := func(user, tok string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, tok) }
	}

	for _, tc := range []struct {
		name, method, path string
		auth               func(*http.Request)
		status             int
		body               string // what the answer contains
	}{
		{"bearer viewer", "GET", "/", bearer(viewer), http.StatusOK, "viewer-user <small>(viewer)</small>"},
		{"basic viewer", "GET", "/p/shop", basic("viewer-user", viewer), http.StatusOK, "viewer-user <small>(viewer)</small>"},
		{"bearer invalid", "GET", "/p/shop", bearer("drover_wrong"), http.StatusUnauthorized, `"error": "the token is not valid"`},
		{"basic invalid", "GET", "/", basic("x", "drover_wrong"), http.StatusUnauthorized, `"error": "the token is not valid"`},
		{"basic without token", "GET", "/", basic("x", ""), http.StatusUnauthorized, `"error": "sign in with a token`},
		{"bearer viewer cancels", "POST", "/p/shop/runs/1/cancel", bearer(viewer), http.StatusForbidden,
			`"error": "/p/shop/runs/1/cancel needs the developer role; viewer-user has viewer"`},
		{"bearer machine", "GET", "/", bearer(proxyTok), http.StatusForbidden, `"error"`},
		{"bearer developer cancels", "POST", "/p/shop/runs/1/cancel", bearer(developer), http.StatusSeeOther, ""},
	} {
		resp, body := send(tc.method, tc.path, tc.auth)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %s %s: %d %q, want %d with %q", tc.name, tc.method, tc.path, resp.StatusCode, body, tc.status, tc.body)
		}
		if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "/login") {
			t.Errorf("%s: %s %s: redirected to %s", tc.name, tc.method, tc.path, loc)
		}
		if tc.status >= 400 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: Content-Type %q, want the API's JSON", tc.name, resp.Header.Get("Content-Type"))
		}
	}

	// Without the header a browser is still sent to sign in.
	if resp, _ := e.get("/p/shop/runs/1", ""); resp.StatusCode != http.StatusSeeOther ||
		!strings.HasPrefix(resp.Header.Get("Location"), "/login?") {
		t.Errorf("anonymous GET: %d Location %q, want a redirect to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Issue 16: the sign-in page names the CLI command that makes a token.
func TestWebLoginNamesTokenCommand(t *testing.T) {
	e := newWebEnv(t, false)
	_, body := e.get("/login", "")
	webContains(t, "login page", body, "drover token create --user NAME")
	if strings.Contains(body, "/api/v1/tokens") {
		t.Error("the login page still names POST /api/v1/tokens")
	}
}
