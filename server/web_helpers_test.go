package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/notify"
	"github.com/drover-cd/drover/registry"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/report"
	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/steplog"
	"github.com/drover-cd/drover/store"
	"github.com/drover-cd/drover/store/sqlstore"
)

// webEnv is a Server over a fresh SQLite store, with a runner that never starts, for page
// tests.
type webEnv struct {
	t    *testing.T
	st   store.Store
	hub  *notify.Hub
	logs *steplog.Store
	srv  *Server
	ts   *httptest.Server
	reg  *registry.Registry
}

// newTestRegistry is the registry in dir/registry, release tags immutable, as the server
// wires it.
func newTestRegistry(t *testing.T, dir string) *registry.Registry {
	t.Helper()
	reg, err := registry.New(filepath.Join(dir, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	reg.Immutable = release.Immutable
	return reg
}

// testParts makes what a test's Server stands on, in a folder of the test's: the store,
// step logs and a registry.
func testParts(t *testing.T) (dir string, st store.Store, logs *steplog.Store, reg *registry.Registry) {
	t.Helper()
	dir = t.TempDir()
	st, err := sqlstore.Open(context.Background(), filepath.Join(dir, "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if logs, err = steplog.New(filepath.Join(dir, "logs")); err != nil {
		t.Fatal(err)
	}
	return dir, st, logs, newTestRegistry(t, dir)
}

func newWebEnv(t *testing.T, public bool) *webEnv {
	t.Helper()
	_, st, logs, reg := testParts(t)
	e := &webEnv{t: t, st: st, hub: &notify.Hub{}, logs: logs, reg: reg}
	// The runner is never started: it serves Cancel of queued runs.
	run := runner.New(runner.Config{Store: st, Logs: logs, Hub: e.hub, Repos: func(string) string { return "" }})
	e.srv = New(Config{Store: st, Runner: run, Logs: logs, Hub: e.hub, Public: public, Started: time.Now(),
		Registry: reg, Releases: &release.Catalog{Registry: reg}})
	e.ts = httptest.NewServer(e.srv)
	t.Cleanup(e.ts.Close)
	return e
}

func (e *webEnv) project(name string) *store.Project {
	e.t.Helper()
	p := &store.Project{Name: name}
	if err := e.st.CreateProject(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *webEnv) run(project, status string) *store.Run {
	e.t.Helper()
	r := &store.Run{Project: project, Status: status, Branch: "main", Commit: "0123456789abcdef0123456789abcdef01234567",
		Message: "Add <b>checkout</b>", Event: "push", Trigger: "push"}
	if err := e.st.CreateRun(context.Background(), r); err != nil {
		e.t.Fatal(err)
	}
	if status != "pending" {
		r.Started = time.Now().Add(-90 * time.Second)
		if !activeStatus(status) {
			r.Finished = time.Now()
		}
		if err := e.st.UpdateRun(context.Background(), r); err != nil {
			e.t.Fatal(err)
		}
	}
	return r
}

func (e *webEnv) step(s *store.Step) {
	e.t.Helper()
	if s.Status != "pending" && s.Started.IsZero() {
		s.Started = time.Now().Add(-time.Minute)
		if !activeStatus(s.Status) {
			s.Finished = time.Now()
		}
	}
	if err := e.st.SaveStep(context.Background(), s); err != nil {
		e.t.Fatal(err)
	}
}

// webReports is a step's stored report summary.
func webReports(t *testing.T, sum report.Summary) []byte {
	t.Helper()
	b, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *webEnv) token(role string) string {
	e.t.Helper()
	tok, err := CreateToken(context.Background(), e.st, role+"-user", role)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// do sends a request with the token as the web UI's cookie, without following redirects.
func (e *webEnv) do(method, path, token string, body io.Reader) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: TokenCookie, Value: token})
	}
	return e.send(req)
}

// send sends req without following redirects and returns the answer and its body.
func (e *webEnv) send(req *http.Request) (*http.Response, string) {
	e.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(b)
}

func (e *webEnv) get(path, token string) (*http.Response, string) {
	e.t.Helper()
	return e.do(http.MethodGet, path, token, nil)
}

// webContains fails the test for each want that body lacks.
func webContains(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
	if t.Failed() {
		t.Logf("%s:\n%s", what, body)
	}
}
