package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestWebBrowserLiveRun drives Chromium through the web UI while a pushed pipeline runs:
// signing in, the run's graph turning green without a reload, a step's log streaming in,
// log search, the project page picking up a re-run, and pages that fit a phone.
func TestWebBrowserLiveRun(t *testing.T) {
	ctx := newWebBrowser(t)
	srv := startWebLiveServer(t)
	shots := webArtifactsDir(t)
	release := t.TempDir()
	release1, release2 := filepath.Join(release, "go1"), filepath.Join(release, "go2")
	tok, err := CreateToken(context.Background(), srv.st, "dev", RoleDeveloper)
	if err != nil {
		t.Fatal(err)
	}
	webGitPush(t, strings.Replace(srv.url, "http://", "http://dev:"+tok+"@", 1)+"/git/demo.git",
		map[string]string{"drover.yml": webPipelineYAML(release1, release2)})
	webWaitFor(t, "step wait to run", 30*time.Second, func() bool { return webStepStatus(srv.st, "demo", 1, "wait") == "running" })

	// Sign in on the way to the run's page.
	browserDo(t, ctx, "sign in", chromedp.Navigate(srv.url+"/p/demo/runs/1"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), tok), chromedp.Click(chromedp.CSS("form.login button")),
		chromedp.WaitVisible(chromedp.CSS("svg.dag")))
	if loc := browserEval[string](t, ctx, "location.pathname"); loc != "/p/demo/runs/1" {
		t.Fatalf("signed in at %s, want the run page", loc)
	}
	browserEval[bool](t, ctx, "window.sameDocument = true")
	node := `document.querySelector('a.node[data-step="wait"]')`
	if cls := browserEval[string](t, ctx, node+".getAttribute('class')"); cls != "node st-running" {
		t.Errorf("node wait has class %q before its release, want node st-running", cls)
	}
	browserShot(t, ctx, shots, "run-running.png")

	// Release the step: its node turns green, live.
	if err := os.WriteFile(release1, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	browserUntil(t, ctx, "node wait to succeed", node+".classList.contains('st-success') && "+
		node+".querySelector('.status-text').textContent === 'success'")
	browserUntil(t, ctx, "node print to run", `document.querySelector('a.node[data-step="print"]').classList.contains('st-running')`)
	if !browserEval[bool](t, ctx, "window.sameDocument === true") {
		t.Fatal("the run page reloaded")
	}

	// The step's log streams in while it runs.
	browserDo(t, ctx, "open the log", chromedp.Navigate(srv.url+"/p/demo/runs/1/steps/print"), chromedp.WaitVisible(chromedp.CSS("#log")))
	browserUntil(t, ctx, "the early lines", "!!document.getElementById('L4')")
	browserEval[bool](t, ctx, "window.sameDocument = true")
	if f := browserEval[string](t, ctx, "document.getElementById('log').dataset.follow || ''"); !strings.HasSuffix(f, "/log?follow=1") {
		t.Errorf("the log page of a running step does not follow its log: data-follow %q", f)
	}
	if err := os.WriteFile(release2, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	browserUntil(t, ctx, "the last line, coloured", `(() => { const l = document.querySelector('#L25 .fg-31'); return !!l && l.textContent === 'done'; })()`)
	browserUntil(t, ctx, "the end of the log", `document.getElementById('log-state').textContent.includes('finished')`)
	// The badge follows the step's state, which may land a moment after the log's end.
	browserUntil(t, ctx, "the step's badge to turn to success", `document.querySelector('.run-head .status-text').textContent === 'success'`)
	checks := map[string]string{
		"window.sameDocument === true":                                      "the log page reloaded",
		"document.querySelector('#L1 .fg-32.b').textContent === 'starting'": "line 1 lost its colour",
		"document.querySelector('#L12 .txt').textContent === 'late line 8'": "line 12 is wrong",
		"document.querySelectorAll('#log .line').length === 25":             "the log has not 25 lines",
	}
	for expr, msg := range checks {
		if !browserEval[bool](t, ctx, expr) {
			t.Error(msg)
		}
	}

	// Search highlights matching lines and can hide the others.
	browserDo(t, ctx, "search", chromedp.SendKeys(chromedp.CSS("#log-search"), "late line 1"))
	browserUntil(t, ctx, "11 hits", `document.getElementById('log-count').textContent === '11 matching lines'`)
	browserDo(t, ctx, "only matching lines", chromedp.Click(chromedp.CSS("#log-only")))
	browserUntil(t, ctx, "other lines hidden", `[...document.querySelectorAll('#log .line')].filter(l => l.offsetParent !== null).length === 11`)
	browserShot(t, ctx, shots, "step-log-search.png")
	browserDo(t, ctx, "open line 3", chromedp.Navigate("about:blank"), chromedp.Navigate(srv.url+"/p/demo/runs/1/steps/print#L3"), chromedp.WaitVisible(chromedp.CSS("#L3")))
	if !browserEval[bool](t, ctx, "document.querySelector(':target').id === 'L3'") {
		t.Error("#L3 does not target line 3")
	}
	browserShot(t, ctx, shots, "step-log.png")

	// drover.js renders streamed lines as the server renders the page.
	for _, tc := range ansiCases {
		in, _ := json.Marshal(tc.in)
		got := browserEval[[]struct {
			Cls  string `json:"cls"`
			Text string `json:"text"`
		}](t, ctx, "window.drover.ansiSpans("+string(in)+")")
		var spans []ansiSpan
		for _, g := range got {
			spans = append(spans, ansiSpan{Class: g.Cls, Text: g.Text})
		}
		if !reflect.DeepEqual(spans, tc.want) {
			t.Errorf("drover.js ansiSpans(%q) = %#v, want %#v", tc.in, spans, tc.want)
		}
	}
	for _, ms := range []int64{0, 50, 400, 12345, 125000, 3725000} {
		if got := browserEval[string](t, ctx, "window.drover.formatDuration("+jsonInt(ms)+")"); got != formatDuration(ms) {
			t.Errorf("drover.js formatDuration(%d) = %q, want %q", ms, got, formatDuration(ms))
		}
	}

	// The finished run, and a re-run that the project page, open in another tab, picks up live.
	browserDo(t, ctx, "open the run", chromedp.Navigate(srv.url+"/p/demo/runs/1"))
	browserUntil(t, ctx, "the run to succeed", `document.querySelector('#run-status .badge').classList.contains('st-success')`)
	browserShot(t, ctx, shots, "run.png")
	tab, closeTab := chromedp.NewContext(ctx)
	defer closeTab()
	if err := chromedp.Do(tab); err != nil { // open the tab, with no timeout: it lives as long as this context
		t.Fatal(err)
	}
	browserDo(t, tab, "open the project", chromedp.Navigate(srv.url+"/p/demo"), chromedp.WaitVisible(chromedp.CSS(`tr[data-run="1"]`)))
	browserEval[bool](t, tab, "window.sameDocument = true")
	browserDo(t, ctx, "re-run", chromedp.Click(chromedp.CSS(".actions button.primary")))
	browserUntil(t, ctx, "the re-run's page", `location.pathname === '/p/demo/runs/2'`)
	browserUntil(t, ctx, "the re-run to succeed", `document.querySelector('#run-status .badge').classList.contains('st-success')`)
	browserUntil(t, tab, "the re-run listed, finished", `!!document.querySelector('tr[data-run="2"] .badge.st-success') && window.sameDocument === true`)

	// A phone: no sideways scrolling of the page.
	browserDo(t, ctx, "phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Navigate(srv.url+"/p/demo/runs/1"),
		chromedp.WaitVisible(chromedp.CSS("svg.dag")))
	if w := browserEval[[]int](t, ctx, "[document.documentElement.scrollWidth, window.innerWidth]"); w[0] > w[1] {
		t.Errorf("the run page is %dpx wide on a %dpx phone", w[0], w[1])
	}
	browserShot(t, ctx, shots, "run-phone.png")
	browserDo(t, ctx, "phone log", chromedp.Navigate(srv.url+"/p/demo/runs/1/steps/print"), chromedp.WaitVisible(chromedp.CSS("#log")))
	if w := browserEval[[]int](t, ctx, "[document.documentElement.scrollWidth, window.innerWidth]"); w[0] > w[1] {
		t.Errorf("the log page is %dpx wide on a %dpx phone", w[0], w[1])
	}
	browserShot(t, ctx, shots, "step-phone.png")
}

func jsonInt(i int64) string { b, _ := json.Marshal(i); return string(b) }
