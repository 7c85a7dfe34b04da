package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/drover-cd/drover/agentproto"
	"github.com/drover-cd/drover/store"
)

// TestWebBrowserAgents drives Chromium to the agents page from the site's navigation:
// what each agent's row says, that an agent's hostile name stays text, that the list
// follows a change without a reload, and, following
// a running step's link, the run page naming the agent of each step and showing a lost
// step in its own colour.
func TestWebBrowserAgents(t *testing.T) {
	e := newAgentsEnv(t)
	ctx := newWebBrowser(t) // after the server: its tab closes first, ending the run page's event stream
	shots := webArtifactsDir(t)
	bg := context.Background()

	run := e.run("app", "running")
	e.step(&store.Step{RunID: run.ID, Name: "build", Position: 0, Status: "success", Attempts: 1, Agent: "a1"})
	e.step(&store.Step{RunID: run.ID, Name: "lint", Position: 1, Status: "failure", ExitCode: 1, Attempts: 1})
	e.step(&store.Step{RunID: run.ID, Name: "test", Position: 2, Needs: []string{"build"}, Status: "lost", Attempts: 1,
		Reason: "lost: agent b2 stopped answering", Agent: "b2"})
	e.step(&store.Step{RunID: run.ID, Name: "package", Position: 3, Needs: []string{"build"}, Status: "running", Attempts: 1})
	if err := e.st.SaveAgent(bg, &store.Agent{Name: "a1", Labels: map[string]string{"os": "linux"}, Capacity: 2, Seen: time.Now()}); err != nil {
		t.Fatal(err)
	}
	lease := &store.Lease{RunID: run.ID, Step: "package", Attempt: 1, Agent: "a1", Status: store.LeaseActive, Home: true}
	if err := e.st.CreateLease(bg, lease); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.cfg.Agents.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.poll(agentproto.Poll{Name: "a1", Labels: map[string]string{"os": "linux"}, Version: "1.4.0", Capacity: 2, Free: 1, Running: []int64{lease.ID}})
	e.poll(agentproto.Poll{Name: "b2", Labels: map[string]string{"os": "darwin"}, Capacity: 1, Free: 1})
	if err := e.srv.cfg.Agents.Drain(bg, "b2", true); err != nil {
		t.Fatal(err)
	}
	e.poll(agentproto.Poll{Name: `<img src=x onerror="window.pwned=1">`, Labels: map[string]string{"<b>gpu</b>": "yes"}, Capacity: 1, Free: 1})

	// Sign in, then follow the navigation to the agents page.
	browserDo(t, ctx, "sign in", chromedp.Navigate(e.ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), e.viewer), chromedp.Click(chromedp.CSS("form.login button")),
		chromedp.WaitVisible(chromedp.CSS(`header nav a[href="/agents"]`)))
	browserDo(t, ctx, "open the agents page", chromedp.Click(chromedp.CSS(`header nav a[href="/agents"]`)),
		chromedp.WaitVisible(chromedp.CSS("table.agents")))
	if title := browserEval[string](t, ctx, "document.title"); title != "Agents · Drover" {
		t.Errorf("the agents page's title is %q", title)
	}
	rows := browserEval[[]string](t, ctx, `[...document.querySelectorAll('table.agents tbody tr')].map(r => r.innerText.replace(/\s+/g, ' ').trim())`)
	if len(rows) != 3 {
		t.Fatalf("the agents page shows %d agents, want 3: %q", len(rows), rows)
	}
	// Rows are in order of the agents' names: "<img…" sorts before "a1".
	wants := [][]string{
		{`<img src=x onerror="window.pwned=1">`, "online", "<b>gpu</b>=yes", "running 0 of 1", "just now"},
		{"a1", "online", "os=linux", "1.4.0", "running 1 of 2", "app #1 · package", "just now"},
		{"b2", "drained", "os=darwin", "running 0 of 1"},
	}
	for i, want := range wants {
		for _, w := range want {
			if !strings.Contains(rows[i], w) {
				t.Errorf("row %d reads %q, which lacks %q", i+1, rows[i], w)
			}
		}
	}
	if browserEval[bool](t, ctx, "window.pwned === 1") {
		t.Error("an agent's name ran as HTML")
	}
	if n := browserEval[int](t, ctx, `document.querySelectorAll('table.agents img, table.agents b').length`); n != 0 {
		t.Errorf("an agent's name or label became %d elements", n)
	}
	// Each state has its own colour.
	colours := browserEval[[]string](t, ctx, `['a1', 'b2'].map(n => getComputedStyle(document.querySelector('tr[data-agent="' + n + '"] .badge')).backgroundColor)`)
	if colours[0] == colours[1] {
		t.Errorf("online and drained badges are both %s", colours[0])
	}
	browserShot(t, ctx, shots, "agents.png")

	// The page follows the agents without a reload: draining a1 shows within a poll.
	browserEval[bool](t, ctx, "window.sameDocument = true")
	if err := e.srv.cfg.Agents.Drain(bg, "a1", true); err != nil {
		t.Fatal(err)
	}
	browserUntil(t, ctx, "a1 to show as drained", `document.querySelector('tr[data-agent="a1"] .status-text').textContent === 'drained'`)
	if !browserEval[bool](t, ctx, "window.sameDocument === true") {
		t.Error("the agents page reloaded")
	}

	// The running step's link leads to its run, whose page names the agents.
	browserDo(t, ctx, "open the running step's run", chromedp.Click(chromedp.CSS(`tr[data-agent="a1"] .running a`)),
		chromedp.WaitVisible(chromedp.CSS("table.steps")))
	if loc := browserEval[string](t, ctx, "location.pathname"); loc != "/p/app/runs/1" {
		t.Fatalf("the running step's link led to %s", loc)
	}
	cells := browserEval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('table.steps tbody tr')].map(r => [r.dataset.step, r.innerText.replace(/\s+/g, ' ').trim()]))`)
	for step, want := range map[string]string{"build": "on agent a1", "test": "on agent b2"} {
		if !strings.Contains(cells[step], want) {
			t.Errorf("step %s's row reads %q, which lacks %q", step, cells[step], want)
		}
	}
	if strings.Contains(cells["lint"], "on agent") {
		t.Errorf("step lint ran on the server, yet its row reads %q", cells["lint"])
	}
	// A lost step is amber: neither failure's red nor the grey of other states.
	badge := func(step string) string {
		return browserEval[string](t, ctx, `getComputedStyle(document.querySelector('tr[data-step="`+step+`"] .badge')).backgroundColor`)
	}
	lost, failed, ok := badge("test"), badge("lint"), badge("build")
	if lost != "rgb(255, 243, 214)" || lost == failed || lost == ok {
		t.Errorf("the lost badge is %s (failure %s, success %s), want the amber rgb(255, 243, 214)", lost, failed, ok)
	}
	if icon := browserEval[string](t, ctx, `document.querySelector('tr[data-step="test"] .badge use').getAttribute('href')`); icon != "#i-lost" {
		t.Errorf("the lost badge's icon is %s", icon)
	}
	if node := browserEval[string](t, ctx, `getComputedStyle(document.querySelector('a.node[data-step="test"] rect')).stroke`); node == browserEval[string](t, ctx,
		`getComputedStyle(document.querySelector('a.node[data-step="lint"] rect')).stroke`) {
		t.Errorf("the graph draws a lost step like a failed one (%s)", node)
	}
	browserShot(t, ctx, shots, "run-agents.png")
}
