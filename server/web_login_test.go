package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestWebLogin(t *testing.T) {
	e := newWebEnv(t, false)
	resp, body := e.get("/login?next=%2Fp%2Fshop", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /login: %d", resp.StatusCode)
	}
	webContains(t, "login page", body, `<form method="post" action="/login"`, `name="token"`, `name="next" value="/p/shop"`)

	post := func(form url.Values, origin string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		return e.send(req)
	}
	if resp, _ := post(url.Values{"token": {"drover_wrong"}, "next": {"/p/shop"}}, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := post(url.Values{"token": {""}}, ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no token: %d, want 400", resp.StatusCode)
	}
	tok := e.token(RoleViewer)
	if resp, _ := post(url.Values{"token": {tok}}, "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a sign-in posted by another site: %d, want 403", resp.StatusCode)
	}

	resp, _ = post(url.Values{"token": {" " + tok + "\n"}, "next": {"/p/shop"}}, e.ts.URL)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/p/shop" {
		t.Fatalf("sign in: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if c.Name != TokenCookie || c.Value != tok || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge <= 0 {
		t.Errorf("cookie %+v", c)
	}
	_, body = e.get("/", tok)
	webContains(t, "projects page signed in", body, "viewer-user <small>(viewer)</small>", `action="/logout"`)

	// Only local paths are followed after signing in.
	for _, next := range []string{"//evil.example/x", "https://evil.example", "/\\evil.example", ""} {
		resp, _ := post(url.Values{"token": {tok}, "next": {next}}, "")
		if loc := resp.Header.Get("Location"); loc != "/" {
			t.Errorf("next %q: Location %q, want /", next, loc)
		}
	}

	resp, _ = e.do(http.MethodPost, "/logout", tok, strings.NewReader(""))
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Errorf("sign out: %d cookies %v", resp.StatusCode, resp.Cookies())
	}
}
