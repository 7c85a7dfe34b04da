package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/agentproto"
	"github.com/drover-cd/drover/deploy"
	"github.com/drover-cd/drover/dispatch"
	"github.com/drover-cd/drover/edge"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/notify"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/proxy"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/secret"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/store"
)

// routeCase is who may call a route: machine tokens of jobs, or anyone when public
// (a machine token then gets what a caller without a token gets, no more).
type routeCase struct {
	public bool
	jobs   []string // machine kinds whose job the route is
	// reqs are the requests to try, "METHOD PATH"; by default the pattern's own, with
	// {p} as app, {n} as 1 and so on.
	reqs []string
}

// everyRoute says, for every route the server registers (server.go routes() and
// web.go webRoutes()), who may call it. Add each new route here: the test fails for a
// route missing from this table.
var everyRoute = map[string]routeCase{
	"GET /healthz":   {public: true},
	"GET /metrics":   {public: true},
	"GET /api/v1/ca": {public: true},

	"GET /api/v1/projects":                               {},
	"POST /api/v1/projects":                              {},
	"GET /api/v1/projects/{p}/runs":                      {},
	"POST /api/v1/projects/{p}/runs":                     {},
	"GET /api/v1/projects/{p}/runs/{n}":                  {},
	"GET /api/v1/projects/{p}/runs/{n}/steps/{step}/log": {},
	"POST /api/v1/projects/{p}/runs/{n}/cancel":          {},
	"POST /api/v1/projects/{p}/runs/{n}/rerun":           {},
	"POST /api/v1/projects/{p}/runs/{n}/approve":         {},
	"PATCH /api/v1/projects/{p}":                         {},
	"POST /api/v1/users":                                 {},
	"GET /api/v1/users":                                  {},
	"POST /api/v1/tokens":                                {},
	"GET /api/v1/tokens":                                 {},
	"DELETE /api/v1/tokens/{id}":                         {},
	"GET /api/v1/secrets":                                {},
	"PUT /api/v1/secrets/{name}":                         {},
	"DELETE /api/v1/secrets/{name}":                      {},
	"POST /api/v1/secrets/rekey":                         {},
	"/api/":                                              {public: true, reqs: []string{"GET /api/v1/nothing", "POST /api/v2/x"}}, // 404 for everyone

	// A step token fetches its own project (app), nothing else.
	"/git/": {jobs: []string{MachineStep}, reqs: []string{"GET /git/app.git/info/refs?service=git-upload-pack", "POST /git/app.git/git-upload-pack",
		"!GET /git/app.git/info/refs?service=git-receive-pack", "!POST /git/app.git/git-receive-pack",
		"!GET /git/shop.git/info/refs?service=git-upload-pack", "!POST /git/shop.git/git-upload-pack",
		"!GET /git/app.git/info/refs", "!GET /git/app.git/HEAD"}},
	"/v2/": {jobs: []string{MachinePull, MachineStep}, reqs: []string{
		// A step token reads and uploads blobs of its project's repository (app).
		"step:GET /v2/app/blobs/sha256:" + strings.Repeat("a", 64), "step:HEAD /v2/app/blobs/sha256:" + strings.Repeat("a", 64),
		"step:POST /v2/app/blobs/uploads/", "step:PATCH /v2/app/blobs/uploads/123", "step:PUT /v2/app/blobs/uploads/123?digest=sha256:" + strings.Repeat("a", 64),
		// And pushes and pulls its project's images (build:, image: self).
		// (Only the tags its own build: makes: this lease's step builds nothing.)
		"!PUT /v2/app/image/manifests/1", "step:GET /v2/app/image/manifests/1", "step:HEAD /v2/app/image/manifests/latest",
		// Never a mount, which would read blobs of any repository.
		"!POST /v2/app/blobs/uploads/?mount=sha256:" + strings.Repeat("a", 64) + "&from=shop/image",
		"!POST /v2/app/blobs/uploads/?mount=sha256:" + strings.Repeat("a", 64),
		"step:POST /v2/app/image/blobs/uploads/", "step:GET /v2/app/image/blobs/sha256:" + strings.Repeat("a", 64),
		"!PUT /v2/app/manifests/1", "!GET /v2/app/manifests/1", "!GET /v2/app/tags/list", "!DELETE /v2/app/blobs/sha256:" + strings.Repeat("a", 64),
		"!DELETE /v2/app/image/manifests/1", "!GET /v2/app/image/tags/list", "!PUT /v2/app/other/manifests/1",
		"!POST /v2/shop/image/blobs/uploads/", "!GET /v2/appx/blobs/sha256:" + strings.Repeat("a", 64),
		"GET /v2/", "HEAD /v2/", "pull:GET /v2/shop/image/tags/list", "pull:GET /v2/shop/image/manifests/1",
		"pull:HEAD /v2/shop/image/manifests/1", "pull:GET /v2/shop/image/blobs/sha256:" + strings.Repeat("a", 64),
		"pull:GET /v2/shop/image/referrers/sha256:" + strings.Repeat("a", 64),
		// Not its job: other repositories, writes, upload sessions, deletes.
		"!GET /v2/shop/other/manifests/1", "!GET /v2/shop/tags/list", "!GET /v2/shop/image/x/manifests/1",
		"!PUT /v2/shop/image/manifests/1", "!POST /v2/shop/image/blobs/uploads/",
		"!GET /v2/shop/image/blobs/uploads/123", "!DELETE /v2/shop/image/manifests/1",
		"!PATCH /v2/shop/image/blobs/uploads/123", "!GET /v2/_catalog", "!POST /v2/",
	}},
	"GET /auth/token":          {jobs: []string{MachinePull, MachineStep}},
	"POST /api/v1/registry/gc": {},

	// Agents: an agent token asks for work; a step token reports on its own lease (a
	// lease that is not its own answers 409: it reached the route, which is its job).
	"POST /api/v1/agent/poll":             {jobs: []string{MachineAgent}},
	"POST /api/v1/agent/leases/{id}/log":  {jobs: []string{MachineStep}, reqs: []string{"POST /api/v1/agent/leases/99999/log"}},
	"POST /api/v1/agent/leases/{id}/done": {jobs: []string{MachineStep}, reqs: []string{"POST /api/v1/agent/leases/99999/done"}},
	"GET /api/v1/agents":                  {},
	"POST /api/v1/agents/{name}/drain":    {},
	"DELETE /api/v1/agents/{name}/drain":  {},

	"GET /api/v1/routes":                       {jobs: []string{MachineProxy}},
	"GET /api/v1/environments":                 {},
	"GET /api/v1/environments/{env}":           {},
	"POST /api/v1/environments/{env}/deploy":   {},
	"POST /api/v1/environments/{env}/rollback": {},
	"POST /api/v1/environments/{env}/promote":  {},
	"POST /api/v1/environments/{env}/stop":     {},
	"PUT /api/v1/environments/{env}/scale":     {},
	"GET /api/v1/audit":                        {},
	"POST /api/v1/environments/plan":           {},
	"POST /api/v1/environments/{env}/up":       {},
	"DELETE /api/v1/environments/{env}":        {},
	"POST /api/v1/environments/apply":          {},

	"GET /api/v1/projects/{p}/releases":       {},
	"GET /api/v1/projects/{p}/releases/{ref}": {},
	"GET /artifacts/{p}/{ref}/{path...}":      {},

	"GET /{$}":                         {},
	"GET /p/{p}":                       {},
	"GET /p/{p}/events":                {},
	"GET /p/{p}/releases":              {},
	"GET /env":                         {},
	"GET /env/{env}":                   {},
	"GET /env/{env}/events":            {},
	"GET /audit":                       {},
	"GET /agents":                      {},
	"GET /pipeline":                    {},
	"GET /p/{p}/runs/{n}":              {},
	"GET /p/{p}/runs/{n}/events":       {},
	"GET /p/{p}/runs/{n}/steps/{step}": {},
	"POST /p/{p}/runs/{n}/cancel":      {},
	"POST /p/{p}/runs/{n}/rerun":       {},
	"POST /p/{p}/runs/{n}/approve":     {},
	"GET /login":                       {public: true},
	"POST /login":                      {public: true},
	"POST /logout":                     {public: true},
	"GET /static/{file}":               {public: true},
	"POST /hooks/{p}":                  {public: true},
}

// fullServer is a Server with every part, so that it registers every route.
func fullServer(t *testing.T, public bool) (*Server, store.Store) {
	t.Helper()
	ctx := context.Background()
	dir, st, logs, reg := testParts(t)
	hub := &notify.Hub{}
	cat := &release.Catalog{Registry: reg}
	mctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	deps := deploy.New(mctx, deploy.Config{Store: st, Registry: reg, Releases: cat, Proxy: proxy.New(nil), Dir: filepath.Join(dir, "deploy"),
		Repos: func(string) string { return "" }})
	run := runner.New(runner.Config{Store: st, Logs: logs, Hub: hub, Repos: func(string) string { return "" }})
	hosting := &source.Hosting{Root: filepath.Join(dir, "git")}
	keys, err := secret.OpenKeyring(filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	agents := dispatch.New(dispatch.Config{Store: st, GitURL: GitPath})
	srv := New(Config{Store: st, Runner: run, Logs: logs, Hub: hub, Hosting: hosting, Registry: reg, Releases: cat, Deploys: deps,
		Secrets: secret.NewVault(st, keys), Public: public, Started: time.Now(), Agents: agents})
	hosting.OnPush, hosting.AllowCreate = srv.OnPush, srv.AllowCreate
	for _, name := range []string{"app", "shop"} {
		if err := st.CreateProject(ctx, &store.Project{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	return srv, st
}

// fill makes a request path of a pattern's path.
func fill(path string) string {
	return strings.NewReplacer("{$}", "", "{p}", "app", "{n}", "1", "{step}", "build", "{env}", "staging", "{ref}", "r1",
		"{path...}", "dist/app", "{file}", "drover.css", "{id}", "1", "{name}", "DB_PASSWORD").Replace(path)
}

// stepToken leases a step of a run of project app to an agent and returns the lease's
// token, valid until the test ends.
func stepToken(t *testing.T, st store.Store, agents *dispatch.Dispatcher) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	run := &store.Run{Project: "app", Status: "running", Branch: "main", Commit: "abc"}
	if err := st.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	b := agents.Backend(dispatch.Run{ID: run.ID, Project: "app", Commit: "abc", Repository: "app"})
	go b.Exec(ctx, &engine.Spec{Name: "build", Step: &pipeline.Step{Name: "build"}, Attempt: 1, Run: "app-1"}, io.Discard)
	for range 100 {
		reply, err := agents.Poll(ctx, agentproto.Poll{Name: "a1", Capacity: 1, Free: 1, Wait: 50 * time.Millisecond}, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(reply.Leases) > 0 {
			return reply.Leases[0].Token
		}
	}
	t.Fatal("no lease")
	return ""
}

// machineToken makes a token of machine kind.
func machineToken(t *testing.T, st store.Store, kind string, agents ...*dispatch.Dispatcher) string {
	t.Helper()
	if kind == MachineStep {
		return stepToken(t, st, agents[0])
	}
	tok := &store.Token{Machine: kind, Label: "test"}
	if kind == MachinePull {
		tok.Repository = "shop/image"
	}
	secret, err := IssueToken(context.Background(), st, tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// Issue 14: each machine token can do its job and nothing else. It is tried on every
// route the server registers.
func TestEveryRouteRefusesMachineTokens(t *testing.T) {
	for _, public := range []bool{false, true} {
		srv, st := fullServer(t, public)
		ts := httptest.NewServer(srv)
		t.Cleanup(ts.Close)

		for _, p := range srv.patterns {
			if _, ok := everyRoute[p]; !ok {
				t.Errorf("route %q is not in everyRoute: add it, with who may call it", p)
			}
		}
		for p := range everyRoute {
			if !slices.Contains(srv.patterns, p) {
				t.Errorf("everyRoute has %q, which the server does not register", p)
			}
		}

		tokens := map[string]string{}
		kinds := append(slices.Clone(machines), MachineStep)
		for _, kind := range kinds {
			tokens[kind] = machineToken(t, st, kind, srv.cfg.Agents)
		}
		send := func(req, token string) (int, string) {
			t.Helper()
			method, target, _ := strings.Cut(req, " ")
			r, err := http.NewRequest(method, ts.URL+target, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := c.Do(r)
			if err != nil {
				t.Fatalf("%s: %v", req, err)
			}
			defer resp.Body.Close()
			if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				return resp.StatusCode, "(an event stream)" // which would not end
			}
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		for pattern, rc := range everyRoute {
			reqs := rc.reqs
			if reqs == nil {
				method, path, _ := strings.Cut(pattern, " ")
				reqs = []string{method + " " + fill(path)}
			}
			for _, req := range reqs {
				notJob := strings.HasPrefix(req, "!")
				req = strings.TrimPrefix(req, "!")
				only, rest, found := strings.Cut(req, ":") // "step:GET ...": that kind's job only
				if !found || strings.Contains(only, " ") {
					only = ""
				} else {
					req = rest
				}
				anonymous, _ := send(req, "")
				for _, kind := range kinds {
					code, body := send(req, tokens[kind])
					job := slices.Contains(rc.jobs, kind) && !notJob && (only == "" || only == kind)
					switch {
					case job && (code == http.StatusUnauthorized || code == http.StatusForbidden):
						t.Errorf("public=%v: %s with a %s token: %d, but it is its job\n%s", public, req, kind, code, body)
					case !job && rc.public && code != anonymous:
						t.Errorf("public=%v: %s with a %s token: %d; without a token %d: it must add nothing\n%s", public, req, kind, code, anonymous, body)
					case !job && !rc.public && code != http.StatusUnauthorized && code != http.StatusForbidden:
						t.Errorf("public=%v: %s with a %s token: %d, want 401 or 403\n%s", public, req, kind, code, body)
					}
				}
			}
		}

		// The proxy token's job answers the route table; admins read it too, others not.
		admin, err := CreateToken(context.Background(), st, "root", RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		dev, err := CreateToken(context.Background(), st, "dev", RoleDeveloper)
		if err != nil {
			t.Fatal(err)
		}
		for who, want := range map[string]int{tokens[MachineProxy]: 200, admin: 200, dev: 403, "": 401} {
			code, body := send("GET /api/v1/routes", who)
			if code != want {
				t.Errorf("GET /api/v1/routes: %d, want %d\n%s", code, want, body)
			}
			if code == 200 {
				var out struct{ Routes []routeJSON }
				if err := json.Unmarshal([]byte(body), &out); err != nil || out.Routes == nil {
					t.Errorf("GET /api/v1/routes: %v %s", err, body)
				}
			}
		}
		// Refusals say what the token is for.
		if _, body := send("GET /api/v1/projects", tokens[MachineProxy]); !strings.Contains(body, "a proxy token only reads the route table: GET /api/v1/routes") {
			t.Errorf("a proxy token's refusal: %s", body)
		}
		if _, body := send("GET /v2/shop/other/manifests/1", tokens[MachinePull]); !strings.Contains(body, "only pulls shop/image") {
			t.Errorf("a pull token's refusal: %s", body)
		}
		// The token flow hands a pull token back to itself.
		if code, body := send("GET /auth/token?scope=repository:shop/image:pull", tokens[MachinePull]); code != 200 || !strings.Contains(body, tokens[MachinePull]) {
			t.Errorf("GET /auth/token with a pull token: %d %s", code, body)
		}
	}
}

// Issue 17: a standalone proxy follows the route table with ?wait=VERSION&proxy=NAME: a
// long poll that answers at once when its table is old, else after the wait, and that
// records which version the proxy serves. The query opens nothing else to its token.
func TestRoutesFollowRequests(t *testing.T) {
	srv, st := fullServer(t, false)
	tracker := &edge.Tracker{}
	srv.cfg.Proxies = tracker
	srv.routesWait = 300 * time.Millisecond
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	tok := machineToken(t, st, MachineProxy)
	get := func(ctx context.Context, target string) (int, edge.Table, string) {
		t.Helper()
		r, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+target, nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return 0, edge.Table{}, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var tbl edge.Table
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(body, &tbl); err != nil {
				t.Fatalf("%s: %v %s", target, err, body)
			}
		}
		return resp.StatusCode, tbl, string(body)
	}

	// Without wait: the table and its version at once, as before.
	code, first, body := get(context.Background(), "/api/v1/routes")
	if code != 200 || first.Version == "" || first.Routes == nil {
		t.Fatalf("GET /api/v1/routes: %d %s", code, body)
	}
	// A proxy serving another version gets the table at once, and is recorded.
	started := time.Now()
	code, tbl, body := get(context.Background(), "/api/v1/routes?wait=1.0&proxy=edge-a")
	if code != 200 || tbl.Version != first.Version || time.Since(started) > 200*time.Millisecond {
		t.Fatalf("an old version: %d after %s: %s", code, time.Since(started), body)
	}
	if ps := tracker.Proxies(); len(ps) != 1 || ps[0].Name != "edge-a" || ps[0].Version != "1.0" {
		t.Errorf("tracked after the first follow request: %+v", ps)
	}
	// One serving the current version waits for a change, then gets the same table.
	started = time.Now()
	code, tbl, body = get(context.Background(), "/api/v1/routes?wait="+first.Version+"&proxy=edge-a")
	if waited := time.Since(started); code != 200 || tbl.Version != first.Version || waited < 250*time.Millisecond {
		t.Fatalf("the current version: %d after %s: %s", code, waited, body)
	}
	if err := tracker.Wait(context.Background(), first.Version); err != nil {
		t.Errorf("edge-a acknowledged %s: %v", first.Version, err)
	}
	// A notification that changes nothing does not end the wait.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		get(ctx, "/api/v1/routes?wait="+first.Version+"&proxy=edge-b")
	}()
	for len(tracker.Proxies()) < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	srv.cfg.Hub.Notify(RoutesKey)
	// A proxy that hangs up is not waited for.
	cancel()
	<-done
	deadline := time.Now().Add(2 * time.Second)
	for len(tracker.Proxies()) != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if ps := tracker.Proxies(); len(ps) != 1 || ps[0].Name != "edge-a" {
		t.Errorf("after edge-b hung up: %+v", ps)
	}
	// The query opens no other route to a proxy token.
	if code, _, body := get(context.Background(), "/api/v1/environments?wait=1.0&proxy=edge-a"); code != http.StatusForbidden {
		t.Errorf("GET /api/v1/environments?wait=...&proxy=... with a proxy token: %d %s", code, body)
	}
}
