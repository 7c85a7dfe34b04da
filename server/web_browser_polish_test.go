package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/drover-cd/drover/store"
)

// webChainRun stores a finished run of shop whose n steps each need the one before: the
// widest graph n steps can make.
func webChainRun(e *webEnv, n int) *store.Run {
	e.t.Helper()
	e.project("shop")
	run := e.run("shop", "success")
	prev := []string{}
	for i := range n {
		name := fmt.Sprintf("stage-%d-integration", i+1)
		e.step(&store.Step{RunID: run.ID, Name: name, Position: i, Needs: prev, Status: "success", Attempts: 1})
		prev = []string{name}
	}
	return run
}

// graphFit is where a run page's step graph sits in its scroll box.
type graphFit struct {
	Nodes      int      `json:"nodes"`
	Scrollable bool     `json:"scrollable"` // it scrolls sideways, and has something to scroll
	Fits       bool     `json:"fits"`       // everything shows without scrolling
	Clipped    []string `json:"clipped"`    // nodes that cannot be scrolled wholly into view
	Page       int      `json:"page"`       // the page's width
	Viewport   int      `json:"viewport"`
}

// Issue 16: a 7-step graph is not cut off in a 1280 px window: every node can be scrolled
// wholly into view inside the graph's box, and the page itself does not scroll sideways.
func TestWebBrowserWideGraphIsNotClipped(t *testing.T) {
	e := newWebEnv(t, true)
	ctx := newWebBrowser(t) // closed first: its event streams end before the server stops
	webChainRun(e, 7)
	browserDo(t, ctx, "open the run", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(e.ts.URL+"/p/shop/runs/1"),
		chromedp.WaitVisible(chromedp.CSS("svg.dag")))
	// The box shades the edge the graph goes on beyond: a cue that shows without scroll bars.
	browserUntil(t, ctx, "a shade on the right only", `(w => w.classList.contains('more-right') && !w.classList.contains('more-left'))(document.querySelector('.graph-wrap'))`)
	browserShot(t, ctx, webArtifactsDir(t), "run-7-steps.png")
	fit := browserEval[graphFit](t, ctx, `(() => {
		const box = document.querySelector('.graph-box');
		const out = {nodes: 0, clipped: [], page: document.documentElement.scrollWidth, viewport: window.innerWidth,
			scrollable: box.scrollWidth > box.clientWidth && /auto|scroll/.test(getComputedStyle(box).overflowX),
			fits: box.scrollWidth <= box.clientWidth && box.scrollHeight <= box.clientHeight};
		for (const n of box.querySelectorAll('a.node')) {
			out.nodes++;
			n.scrollIntoView({block: 'nearest', inline: 'nearest'});
			const r = n.querySelector('rect').getBoundingClientRect(), b = box.getBoundingClientRect();
			const left = b.left + box.clientLeft, top = b.top + box.clientTop;
			const inside = r.width > 0 && r.left >= left - 1 && r.right <= left + box.clientWidth + 1 &&
				r.top >= top - 1 && r.bottom <= top + box.clientHeight + 1 &&
				r.left - left + box.scrollLeft >= -1 && r.right - left + box.scrollLeft <= box.scrollWidth + 1;
			if (!inside) out.clipped.push(n.dataset.step);
		}
		return out;
	})()`)
	browserEval[bool](t, ctx, "(b => { b.scrollLeft = b.scrollWidth; return true; })(document.querySelector('.graph-box'))")
	browserUntil(t, ctx, "a shade on the left only, scrolled to the end", `(w => w.classList.contains('more-left') && !w.classList.contains('more-right'))(document.querySelector('.graph-wrap'))`)
	browserShot(t, ctx, webArtifactsDir(t), "run-7-steps-end.png")
	if fit.Nodes != 7 {
		t.Fatalf("the graph has %d nodes, want 7", fit.Nodes)
	}
	if len(fit.Clipped) > 0 {
		t.Errorf("nodes %v cannot be seen whole in the graph's box", fit.Clipped)
	}
	if !fit.Scrollable && !fit.Fits {
		t.Error("the graph is wider than its box, which does not scroll")
	}
	if fit.Page > fit.Viewport {
		t.Errorf("the run page is %dpx wide in a %dpx window", fit.Page, fit.Viewport)
	}
}

// Issue 16: digests, addresses and hashes never break inside: on a laptop and on a phone,
// each shows on one line, and one cut short by an ellipsis holds its whole text in a title.
func TestWebBrowserCodeNeverBreaksMidWord(t *testing.T) {
	e := newWebEnv(t, true)
	ctx := newWebBrowser(t)
	webDiamondRun(e)
	webPublish(e, "shop", "success", map[string]string{"app": "v2"})
	fake := webFakePages(e)
	for _, look := range []struct {
		name          string
		width, height int64
	}{{"laptop", 1280, 900}, {"phone", 390, 844}} {
		browserDo(t, ctx, "set up the "+look.name, chromedp.EmulateViewport(look.width, look.height))
		for _, page := range []struct{ path, ready string }{
			{"/p/shop/runs/1", "table.artifacts"}, {"/p/shop/runs/2", "table.files"}, {"/p/shop/releases", "table.releases"},
			{"/test/env", "table.instances"}, {"/test/pipeline", "table.pipeline"},
		} {
			browserDo(t, ctx, "open "+page.path+" on the "+look.name, chromedp.Navigate(fake.URL+page.path),
				chromedp.WaitVisible(chromedp.CSS(page.ready)))
			bad := browserEval[[]string](t, ctx, `(() => {
				const bad = [];
				for (const el of document.querySelectorAll('main code, main .addr, main .digest')) {
					const rects = el.getClientRects();
					if (rects.length === 0) continue; // hidden, in a closed <details>
					const cs = getComputedStyle(el);
					const line = parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.5;
					if (rects.length > 1 || rects[0].height > line * 1.5) bad.push('broken: ' + el.textContent);
					else if (el.scrollWidth > el.clientWidth + 1 && (el.closest('[title]') || {}).title !== el.textContent) bad.push('cut, no title: ' + el.textContent);
				}
				return bad;
			})()`)
			for _, b := range bad {
				t.Errorf("%s on the %s: %s", page.path, look.name, b)
			}
			if w := browserEval[[]int](t, ctx, "[document.documentElement.scrollWidth, window.innerWidth]"); w[0] > w[1] {
				t.Errorf("%s is %dpx wide on the %dpx %s", page.path, w[0], w[1], look.name)
			}
			browserShot(t, ctx, webArtifactsDir(t), strings.ReplaceAll(strings.Trim(page.path, "/"), "/", "-")+"-"+look.name+".png")
		}
	}
}

// Issue 16: a run waiting for an approval shows how long it ran, and its duration does not
// tick in the browser, on its page or in the project's list.
func TestWebBrowserWaitingRunDoesNotTick(t *testing.T) {
	e := newWebEnv(t, true)
	ctx := newWebBrowser(t)
	webWaitingRun(e)
	for _, page := range []struct{ path, dur string }{
		{"/p/shop/runs/1", "#run-dur"}, {"/p/shop", `tr[data-run="1"]`},
	} {
		browserDo(t, ctx, "open "+page.path, chromedp.Navigate(e.ts.URL+page.path), chromedp.WaitVisible(chromedp.CSS(page.dur+" .wait-since")))
		read := "document.querySelector('" + page.dur + " .dur').textContent + document.querySelector('" + page.dur + " .wait-since').textContent"
		first := browserEval[string](t, ctx, read)
		time.Sleep(2500 * time.Millisecond) // drover.js ticks every second, and its event stream has sent the run
		if later := browserEval[string](t, ctx, read); later != first || !strings.HasPrefix(first, "1m 00s · waiting since ") {
			t.Errorf("%s: the waiting run's duration reads %q, then %q; want 1m 00s · waiting since …, unchanged", page.path, first, later)
		}
		if browserEval[bool](t, ctx, "!!document.querySelector('"+page.dur+" [data-started]')") {
			t.Errorf("%s: the waiting run's duration has a start to tick from", page.path)
		}
	}
}
