package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/agentproto"
	"github.com/drover-cd/drover/backend/process"
	"github.com/drover-cd/drover/dispatch"
	"github.com/drover-cd/drover/store"
)

// agentsEnv is a server with build agents (fullServer) behind an httptest.Server, with
// a viewer's token.
type agentsEnv struct {
	*webEnv
	viewer string
}

func newAgentsEnv(t *testing.T) *agentsEnv {
	t.Helper()
	srv, st := fullServer(t, false)
	e := &webEnv{t: t, st: st, srv: srv}
	e.ts = httptest.NewServer(srv)
	t.Cleanup(e.ts.Close)
	return &agentsEnv{webEnv: e, viewer: e.token(RoleViewer)}
}

// poll registers an agent as its first poll does.
func (e *agentsEnv) poll(p agentproto.Poll) {
	e.t.Helper()
	if p.Wait == 0 {
		p.Wait = time.Millisecond
	}
	if _, err := e.srv.cfg.Agents.Poll(context.Background(), p, true); err != nil {
		e.t.Fatal(err)
	}
}

// agentRowHTML is the table row of agent name on the agents page.
func agentRowHTML(t *testing.T, body, name string) string {
	t.Helper()
	start := strings.Index(body, `<tr data-agent="`+name+`"`)
	if start < 0 {
		t.Fatalf("the agents page has no row for %s:\n%s", name, body)
	}
	end := strings.Index(body[start:], "</tr>")
	return body[start : start+end]
}

func TestWebAgentsPage(t *testing.T) {
	e := newAgentsEnv(t)
	ctx := context.Background()

	// No agents: the page says how to start one.
	resp, body := e.get("/agents", e.viewer)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /agents: %s\n%s", resp.Status, body)
	}
	webContains(t, "the agents page without agents", body,
		`<a href="/agents">Agents</a>`, "<h1>Agents</h1>", "No agents yet",
		"drover token create --machine agent", "drover agent run --server "+e.ts.URL+" --token TOKEN",
		"Compute steps wait until an agent connects.") // fullServer's dispatcher has no local backend
	if strings.Contains(body, "<table") {
		t.Error("the agents page without agents shows a table")
	}

	// a1 runs a step of app #1 (a lease the server took up at start), polls and is
	// online; b2 is drained and went silent; c3 went silent two hours ago.
	run := &store.Run{Project: "app", Status: "running", Branch: "main", Commit: "0123456789abcdef0123456789abcdef01234567", Event: "push"}
	if err := e.st.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, a := range []*store.Agent{
		{Name: "a1", Labels: map[string]string{"os": "linux"}, Version: "1.4.0", Capacity: 2, Seen: now},
		{Name: "b2", Labels: map[string]string{"os": "darwin", "arch": "arm64"}, Capacity: 1, Drained: true, Seen: now.Add(-time.Hour)},
		{Name: "c3", Capacity: 3, Seen: now.Add(-2 * time.Hour)},
	} {
		if err := e.st.SaveAgent(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	lease := &store.Lease{RunID: run.ID, Step: "build", Attempt: 2, Agent: "a1", Status: store.LeaseActive, Home: true}
	if err := e.st.CreateLease(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.cfg.Agents.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.poll(agentproto.Poll{Name: "a1", Labels: map[string]string{"os": "linux"}, Version: "1.4.0", Capacity: 2, Free: 1,
		Running: []int64{lease.ID}})

	resp, body = e.get("/agents", e.viewer)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /agents: %s\n%s", resp.Status, body)
	}
	if strings.Contains(body, "No agents yet") {
		t.Error("the agents page with agents says there are none")
	}
	a1 := agentRowHTML(t, body, "a1")
	webContains(t, "a1's row", a1, "<strong>a1</strong>", `<code class="label">os=linux</code>`, `data-state="online"`,
		`<span class="status-text">online</span>`, "<code>1.4.0</code>", "running 1 of 2",
		`<a href="/p/app/runs/1">app #1</a>`, `<a href="/p/app/runs/1/steps/build">build</a>`, "attempt 2", "just now")
	b2 := agentRowHTML(t, body, "b2")
	webContains(t, "b2's row", b2, `data-state="drained"`, `<span class="status-text">drained</span>`, "offline",
		`<code class="label">arch=arm64</code> <code class="label">os=darwin</code>`, "running 0 of 1", "1 h ago")
	c3 := agentRowHTML(t, body, "c3")
	webContains(t, "c3's row", c3, `data-state="offline"`, `<span class="status-text">offline</span>`, "running 0 of 3",
		"2 h ago", `<span class="meta">none</span>`, "<td>—</td>")
	if strings.Contains(c3, "<ul") {
		t.Error("c3 runs nothing, yet its row lists steps")
	}
	if i, j, k := strings.Index(body, `data-agent="a1"`), strings.Index(body, `data-agent="b2"`), strings.Index(body, `data-agent="c3"`); !(i < j && j < k) {
		t.Error("the agents are not in order of their names")
	}

	// The page is for viewers: a visitor is sent to sign in.
	resp, _ = e.get("/agents", "")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=%2Fagents") {
		t.Errorf("GET /agents without signing in: %s to %q, want 303 to the sign-in page", resp.Status, resp.Header.Get("Location"))
	}
}

// Agents' names, labels and versions come from the agents: the page escapes them.
func TestWebAgentsPageEscapes(t *testing.T) {
	e := newAgentsEnv(t)
	e.poll(agentproto.Poll{Name: `<script>alert("name")</script>`, Labels: map[string]string{`<img src=x onerror=alert(1)>`: `"><script>alert(2)</script>`},
		Version: `<b>v</b>`, Capacity: 1, Free: 1})
	_, body := e.get("/agents", e.viewer)
	for _, bad := range []string{`<script>alert`, `<img src=x`, `<b>v</b>`} {
		if strings.Contains(body, bad) {
			t.Errorf("the agents page has %s unescaped", bad)
		}
	}
	webContains(t, "the agents page", body, `&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;`,
		`&lt;img src=x onerror=alert(1)&gt;=&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;`, `&lt;b&gt;v&lt;/b&gt;`)
	if t.Failed() {
		t.Log(body)
	}
}

// A step an agent ran says so on the run's page and on its own; one the server ran
// does not. A lost step has its own badge and may be run again.
func TestWebAgentRunPageShowsAgent(t *testing.T) {
	e := newAgentsEnv(t)
	dev := e.token(RoleDeveloper)
	run := e.run("app", "error")
	e.step(&store.Step{RunID: run.ID, Name: "checkout", Position: 0, Status: "success", Attempts: 1})
	e.step(&store.Step{RunID: run.ID, Name: "build", Position: 1, Needs: []string{"checkout"}, Status: "success", Attempts: 1, Agent: "a1"})
	e.step(&store.Step{RunID: run.ID, Name: "test", Position: 2, Needs: []string{"build"}, Status: "lost", Attempts: 2,
		Reason: "lost: agent <b>b2</b> stopped answering", Agent: `<script>x</script>`})

	_, body := e.get("/p/app/runs/1", dev)
	rows := map[string]string{}
	for _, name := range []string{"checkout", "build", "test"} {
		start := strings.Index(body, `<tr data-step="`+name+`"`)
		if start < 0 {
			t.Fatalf("the run page has no row for step %s:\n%s", name, body)
		}
		rows[name] = body[start : start+strings.Index(body[start:], "</tr>")]
	}
	webContains(t, "build's row", rows["build"], `data-agent="a1"`, `on agent <a href="/agents">a1</a>`)
	if strings.Contains(rows["checkout"], "on agent") {
		t.Errorf("step checkout ran on the server, yet its row names an agent: %s", rows["checkout"])
	}
	webContains(t, "test's row", rows["test"], `class="st-lost"`, `<span class="badge st-lost" data-status>`, `<use href="#i-lost"/>`,
		`<span class="status-text">lost</span>`, `on agent <a href="/agents">&lt;script&gt;x&lt;/script&gt;</a>`,
		`lost: agent &lt;b&gt;b2&lt;/b&gt; stopped answering`, `Re-run from this step`)
	webContains(t, "the run page", body, `<symbol id="i-lost"`, `<a class="node st-lost" data-step="test"`)
	if strings.Contains(body, "<script>x") {
		t.Error("the run page has an agent's name unescaped")
	}

	_, step := e.get("/p/app/runs/1/steps/build", dev)
	webContains(t, "build's page", step, `<span class="on-agent meta" data-agent="a1">on agent <a href="/agents">a1</a></span>`)
	_, step = e.get("/p/app/runs/1/steps/checkout", dev)
	if strings.Contains(step, "on agent") {
		t.Error("the page of a step the server ran names an agent")
	}
	_, step = e.get("/p/app/runs/1/steps/test", dev)
	webContains(t, "test's page", step, `<span class="badge st-lost" data-status>`, "Re-run from this step")

	_, project := e.get("/p/app", dev)
	webContains(t, "the project page", project, `<symbol id="i-lost"`, `<a href="/agents">Agents</a>`)
}

// A server without agents neither serves nor links the agents page; its steps name no
// agent.
func TestWebAgentsPageNeedsAgents(t *testing.T) {
	e := newWebEnv(t, true)
	e.project("shop")
	run := e.run("shop", "success")
	e.step(&store.Step{RunID: run.ID, Name: "build", Status: "success", Attempts: 1, Agent: "old-agent"})
	resp, body := e.get("/agents", "")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /agents on a server without agents: %s, want 404", resp.Status)
	}
	_, body = e.get("/", "")
	if strings.Contains(body, `href="/agents"`) {
		t.Error("a server without agents links the agents page")
	}
	// A step an agent ran before the server stopped using agents still says where it
	// ran, without a link to a page that is not there.
	_, body = e.get("/p/shop/runs/1", "")
	webContains(t, "the run page", body, `<span class="on-agent meta small" data-agent="old-agent">on agent old-agent</span>`)
	if regexp.MustCompile(`href="/agents"`).MatchString(body) {
		t.Error("the run page links the agents page of a server without agents")
	}
}

// A server that runs compute steps itself until an agent connects says so.
func TestWebAgentsPageLocalSteps(t *testing.T) {
	e := newAgentsEnv(t)
	e.srv.cfg.Agents = dispatch.New(dispatch.Config{Store: e.st, Local: &process.Backend{}, GitURL: GitPath})
	_, body := e.get("/agents", e.viewer)
	webContains(t, "the agents page", body, "Until an agent connects, the server runs compute steps itself.", "drover token create --machine agent")
}

// Machine tokens, the agent's own among them, do not read the agents page (what
// TestEveryRouteRefusesMachineTokens checks of every route once its table lists it).
func TestWebAgentsPageRefusesMachineTokens(t *testing.T) {
	e := newAgentsEnv(t)
	for _, kind := range append(slices.Clone(machines), MachineStep) {
		req, err := http.NewRequest(http.MethodGet, e.ts.URL+"/agents", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+machineToken(t, e.st, kind, e.srv.cfg.Agents))
		if resp, body := e.send(req); resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET /agents with a %s token: %s, want 401 or 403\n%s", kind, resp.Status, body)
		}
	}
}
