package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestWebAnonymousIsSentToSignIn(t *testing.T) {
	e := newWebEnv(t, false)
	e.project("shop")
	e.run("shop", "success")
	for _, path := range []string{"/", "/p/shop", "/p/shop/runs/1", "/p/shop/runs/1/steps/test"} {
		resp, _ := e.get(path, "")
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("GET %s: status %d, want 303", path, resp.StatusCode)
			continue
		}
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/login?next=") || !strings.Contains(loc, strings.ReplaceAll(path, "/", "%2F")) {
			t.Errorf("GET %s: Location %q, want /login?next=%s", path, loc, path)
		}
	}
	// The API keeps answering JSON.
	resp, body := e.get("/api/v1/projects", "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
		t.Errorf("GET /api/v1/projects: %d %s, want a JSON 401", resp.StatusCode, body)
	}
	// So does the event stream, which browsers cannot follow to a sign-in page.
	if resp, _ := e.get("/p/shop/runs/1/events", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET events: status %d, want 401", resp.StatusCode)
	}
	// A viewer's cookie opens the pages.
	viewer := e.token(RoleViewer)
	if resp, body := e.get("/p/shop", viewer); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /p/shop as a viewer: %d\n%s", resp.StatusCode, body)
	}
	// A viewer who presses Cancel is asked for a developer's token.
	resp, _ = e.do(http.MethodPost, "/p/shop/runs/1/cancel", viewer, strings.NewReader(""))
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther ||
		loc != "/login?need=developer&next=%2Fp%2Fshop%2Fruns%2F1" {
		t.Errorf("POST cancel as a viewer: %d Location %q", resp.StatusCode, loc)
	}
	_, body = e.get("/login?need=developer&next=%2Fp%2Fshop%2Fruns%2F1", viewer)
	webContains(t, "login page", body, "needs the <strong>developer</strong> role", "viewer-user (viewer)",
		`name="next" value="/p/shop/runs/1"`)
}

func TestWebPublicShowsPagesToAnonymous(t *testing.T) {
	e := newWebEnv(t, true)
	resp, body := e.get("/", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}
	webContains(t, "empty projects page", body, "No projects yet", "git push "+e.ts.URL+"/git/NAME.git main",
		`href="/login?next=%2f"`, "Sign in")
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if resp, _ := e.get("/p/nope", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /p/nope: %d, want 404", resp.StatusCode)
	}
	if resp, _ := e.get("/nope", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: %d, want 404", resp.StatusCode)
	}
}

func TestWebProjectsAndRuns(t *testing.T) {
	e := newWebEnv(t, true)
	e.project("shop")
	e.project("idle")
	for range 34 {
		e.run("shop", "success")
	}
	e.run("shop", "failure")
	_, body := e.get("/", "")
	webContains(t, "projects page", body, `href="/p/shop"`, `class="badge st-failure"`, "failure</span>",
		`<span class="branch" title="branch">main</span>`, "#35", "no runs yet", `href="/p/idle"`)

	_, body = e.get("/p/shop", "")
	webContains(t, "runs page", body, `<tr data-run="35">`, `href="/p/shop/runs/35"`, `title="0123456789abcdef0123456789abcdef01234567">0123456</code>`,
		"Add &lt;b&gt;checkout&lt;/b&gt;", "1m 30s", `data-events="/p/shop/events"`, `href="/p/shop?before=6"`, "Older runs")
	if n := strings.Count(body, "<tr data-run="); n != webRunsPerPage {
		t.Errorf("first page has %d runs, want %d", n, webRunsPerPage)
	}
	_, body = e.get("/p/shop?before=6", "")
	webContains(t, "older runs page", body, `<tr data-run="5">`, `<tr data-run="1">`, `data-events="/p/shop/events?before=6"`, "Newest runs")
	if strings.Contains(body, `<tr data-run="6">`) || strings.Contains(body, "Older runs") {
		t.Errorf("older runs page shows run 6 or a next page:\n%s", body)
	}
	_, body = e.get("/p/idle", "")
	webContains(t, "empty runs page", body, "No runs yet", "git push "+e.ts.URL+"/git/idle.git main")
}

func TestWebCancelForm(t *testing.T) {
	e := newWebEnv(t, false)
	e.project("shop")
	run := e.run("shop", "pending")
	dev := e.token(RoleDeveloper)
	_, body := e.get("/p/shop/runs/1", dev)
	webContains(t, "run page", body, `action="/p/shop/runs/1/cancel"`, ">Cancel</button>")

	// A form posted from another site is refused.
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/p/shop/runs/1/cancel", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.AddCookie(&http.Cookie{Name: TokenCookie, Value: dev})
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site cancel: %v %v", resp.StatusCode, err)
	}

	resp, _ := e.do(http.MethodPost, "/p/shop/runs/1/cancel", dev, strings.NewReader(""))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/p/shop/runs/1" {
		t.Fatalf("POST cancel: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	got, err := e.st.RunByID(context.Background(), run.ID)
	if err != nil || got.Status != "cancelled" || got.Reason != "cancelled by developer-user" {
		t.Fatalf("after cancel: %+v %v", got, err)
	}
	_, body = e.get("/p/shop/runs/1", dev)
	webContains(t, "cancelled run page", body, "cancelled by developer-user", `action="/p/shop/runs/1/rerun"`, ">Re-run</button>")
}

func TestWebStaticAssets(t *testing.T) {
	e := newWebEnv(t, true)
	_, page := e.get("/", "")
	for _, name := range []string{"drover.css", "drover.js"} {
		a := loadAssets()[name]
		url := fmt.Sprintf("/static/%s?v=%s", name, a.hash)
		webContains(t, "layout", page, url)
		resp, body := e.get(url, "")
		if resp.StatusCode != http.StatusOK || body != string(a.data) {
			t.Errorf("GET %s: %d", url, resp.StatusCode)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("GET %s: Cache-Control %q", url, cc)
		}
		if resp, _ := e.get("/static/"+name, ""); resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("ETag") == "" {
			t.Errorf("GET unversioned %s: headers %v", name, resp.Header)
		}
	}
	if resp, _ := e.get("/static/nope.js", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /static/nope.js: %d", resp.StatusCode)
	}
}
