package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/deploy"
	"github.com/drover-cd/drover/store"
)

// webFakePages serves, besides e's server, pages rendered from made-up data that a test
// could not otherwise set up without running deployments: /test/env and /test/pipeline.
func webFakePages(e *webEnv) *httptest.Server {
	e.t.Helper()
	w := newWeb(e.srv)
	digest := "sha256:" + strings.Repeat("0f1e2d3c", 8)
	svc := deploy.ServiceStatus{Env: "production", Service: "storefront-web", Project: "shop", Tag: "r1", Digest: digest,
		Run: 1, Release: "r1", Strategy: "blue-green", URL: "http://127.0.0.1:49152", Switched: time.Now().Add(-time.Hour),
		Instances: []deploy.InstanceStatus{
			{Name: "storefront-web-1", Addr: "127.0.0.1:49153", Pid: 4242, Health: "healthy", Started: time.Now().Add(-time.Hour)},
			{Name: "storefront-web-2", Addr: "127.0.0.1:49154", Pid: 4243, Health: "unknown", Started: time.Now().Add(-time.Hour)},
		}}
	env := envJSON{Name: "production", Strategy: "blue-green", Services: []deploy.ServiceStatus{svc},
		Deployments: []deploymentJSON{{ID: 1, Environment: "production", Service: svc.Service, Project: "shop", Tag: "r1",
			Digest: digest, Run: 1, Release: "r1", Status: "success", Trigger: "run shop #1", Created: time.Now(), DurationMS: 2100}}}
	pipeline := map[string]any{
		"Envs": []*store.Environment{{Name: "staging"}, {Name: "production"}},
		"Rows": []pipelineRow{{Project: "shop", Cells: []*deploy.ServiceStatus{&svc, &svc},
			Waiting: []waitingRun{{Number: 2, Approvals: []approvalView{{Step: "go-live", Role: "release-manager"}}}}}},
	}
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/test/env":
			w.render(rw, r, http.StatusOK, "env", "production", map[string]any{"Env": env, "ProxyHost": ":8000"})
		case "/test/pipeline":
			w.render(rw, r, http.StatusOK, "pipeline", "Pipeline", pipeline)
		default:
			e.srv.ServeHTTP(rw, r)
		}
	}))
	e.t.Cleanup(ts.Close)
	return ts
}

// webFetch is the body of a GET of url, which must answer 200.
func webFetch(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// Issue 16: the pipeline page's cells (#1 r1 2×) say what each part means, in titles and
// in a legend under the table.
func TestWebPipelineCellsHaveALegend(t *testing.T) {
	e := newWebEnv(t, true)
	body := webFetch(t, webFakePages(e).URL+"/test/pipeline")
	webContains(t, "pipeline page", body,
		`#1</a> <code>r1</code>`, // the cell itself, as the CLI's tests read it
		`title="run #1, image sha256:0f1e2d3c`, `title="2 instances running">2×</span>`,
		`data-legend>In each environment: <strong>#12</strong> the run deployed there · <code>r12</code> its release, once that run passed every step · <strong>2×</strong> how many instances run.</p>`)
	if i, j := strings.Index(body, "</table>"), strings.Index(body, "data-legend"); j < i {
		t.Error("the legend is not under the table")
	}
}

// Issue 16: status icons are inline SVG, named after their status, drawn from symbols
// every page defines; no page shows the old Unicode symbols, which some fonts lack.
func TestWebStatusIconsAreSVG(t *testing.T) {
	for _, status := range append(iconStatuses(), "deploying") {
		icon := string(statusIcon(status))
		want := iconID(status)
		if status == "deploying" {
			want = "i-none"
		}
		for _, part := range []string{`<svg class="glyph"`, `role="img"`, `aria-label="` + status + `"`, `<title>` + status + `</title>`,
			`<use href="#` + want + `"/>`} {
			if !strings.Contains(icon, part) {
				t.Errorf("statusIcon(%q) = %s, lacks %s", status, icon, part)
			}
		}
		if !strings.Contains(string(iconSprite()), `<symbol id="`+want+`"`) {
			t.Errorf("the sprite has no symbol %s", want)
		}
	}
	if got := statusIcon(`<b>`); strings.Contains(string(got), "<b>") {
		t.Errorf("statusIcon does not escape its status: %s", got)
	}

	e := newWebEnv(t, true)
	webDiamondRun(e)
	w := webFakePages(e)
	_, run := e.get("/p/shop/runs/1", "")
	_, project := e.get("/p/shop", "")
	pages := map[string]string{"run page": run, "project page": project}
	for _, path := range []string{"/test/env", "/test/pipeline"} {
		pages[path] = webFetch(t, w.URL+path)
	}
	oldGlyphs := regexp.MustCompile(`[✓✗▶○⏸⊘↷]`) // what the pages drew before
	uses := regexp.MustCompile(`<use href="#(i-[a-z]+)"`)
	for name, body := range pages {
		if g := oldGlyphs.FindString(body); g != "" {
			t.Errorf("the %s shows the symbol %s", name, g)
		}
		found := uses.FindAllStringSubmatch(body, -1)
		if len(found) == 0 && name != "/test/pipeline" { // the pipeline page shows no status
			t.Errorf("the %s has no icon", name)
		}
		for _, m := range found {
			if !strings.Contains(body, `<symbol id="`+m[1]+`"`) {
				t.Errorf("the %s uses icon %s, which it does not define", name, m[1])
			}
		}
	}
	webContains(t, "run page", run, `<span class="badge st-failure" data-status><span aria-hidden="true" class="icon"><svg class="glyph"`,
		`<use href="#i-failure"/></svg></span> <span class="status-text">failure</span>`,
		`<svg class="icon" x="`, `<use href="#i-success"/>`)
}

// webWaitingRun stores a run of shop that ran for a minute, 90 s ago, and waits since
// for the approval of its step go-live.
func webWaitingRun(e *webEnv) (*store.Run, time.Time) {
	e.t.Helper()
	e.project("shop")
	run := e.run("shop", "waiting")
	start := time.Now().Add(-90 * time.Second).Truncate(time.Second)
	stopped := start.Add(time.Minute)
	run.Started = start
	if err := e.st.UpdateRun(context.Background(), run); err != nil {
		e.t.Fatal(err)
	}
	e.step(&store.Step{RunID: run.ID, Name: "build", Position: 0, Status: "success", Attempts: 1, Started: start, Finished: stopped})
	e.step(&store.Step{RunID: run.ID, Name: "go-live", Position: 1, Needs: []string{"build"}, Status: "waiting", Attempts: 1,
		Started: stopped, Finished: stopped})
	e.step(&store.Step{RunID: run.ID, Name: "deploy", Position: 2, Needs: []string{"go-live"}, Status: "pending"})
	return run, stopped
}

// Issue 16: a run waiting for an approval shows how long it ran before it stopped and
// since when it waits; its duration has no start time for drover.js to tick from.
func TestWebWaitingRunShowsHowLongItRan(t *testing.T) {
	e := newWebEnv(t, true)
	_, stopped := webWaitingRun(e)
	since := `waiting since <time datetime="` + stopped.UTC().Format(time.RFC3339) + `"`
	_, run := e.get("/p/shop/runs/1", "")
	webContains(t, "run page", run, `<dd id="run-dur"><span class="dur">1m 00s</span><span class="wait-since"> · `+since,
		`>`+clockTime(stopped, time.Now())+`</time>`)
	_, project := e.get("/p/shop", "")
	webContains(t, "project page", project, `<td><span class="dur">1m 00s</span><span class="wait-since"> · `+since)
	for name, body := range map[string]string{"run page": run, "project page": project} {
		if strings.Contains(body, `class="dur" data-started`) {
			t.Errorf("the %s ticks a duration of the waiting run", name)
		}
	}
}

func TestWaitOf(t *testing.T) {
	start := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := start.Add(d); return &t }
	steps := []stepJSON{{Name: "build", Status: "success", Started: at(0), Finished: at(50 * time.Second)},
		{Name: "lint", Status: "success", Started: at(0), Finished: at(70 * time.Second)},
		{Name: "go-live", Status: "waiting", Started: at(50 * time.Second), Finished: at(50 * time.Second)},
		{Name: "deploy", Status: "pending"}}
	w := waitOf(runJSON{Status: "waiting", Started: at(0), Steps: steps})
	if w == nil || w.RanMS != 70_000 || !w.Since.Equal(*at(70 * time.Second)) {
		t.Errorf("waitOf = %+v, want 70 s, stopped when lint ended", w)
	}
	for _, run := range []runJSON{{Status: "running", Started: at(0), Steps: steps}, {Status: "waiting", Started: at(0)},
		{Status: "waiting", Steps: steps}} {
		if w := waitOf(run); w != nil {
			t.Errorf("waitOf(%s run, %d steps) = %+v, want nil", run.Status, len(run.Steps), w)
		}
	}
	now := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	if got := clockTime(start, now); got != "10:00 UTC" {
		t.Errorf("clockTime today = %q", got)
	}
	if got := clockTime(start, now.AddDate(0, 0, 1)); got != "Mar 1, 10:00 UTC" {
		t.Errorf("clockTime yesterday = %q", got)
	}
}
