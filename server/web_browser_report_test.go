package server

import (
	"context"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// TestWebBrowserRunReport shows a failed run's tests, coverage and artifacts and the
// project's pages in Chromium on a laptop, on a phone and in dark mode, and checks that
// the pages never scroll sideways.
func TestWebBrowserRunReport(t *testing.T) {
	e := newWebEnv(t, true)
	ctx := newWebBrowser(t) // closed first: its event streams end before the server stops
	webDiamondRun(e)
	shots := webArtifactsDir(t)
	for _, look := range []struct {
		name          string
		width, height int64
		scheme        string
	}{{"laptop", 1280, 900, "light"}, {"phone", 390, 844, "light"}, {"dark", 1280, 900, "dark"}} {
		browserDo(t, ctx, "set up the "+look.name, chromedp.EmulateViewport(look.width, look.height),
			chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: look.scheme}}})
				return err
			}))
		for _, page := range []struct{ name, path, ready, check string }{
			{"run-report", "/p/shop/runs/1", "svg.dag", `document.querySelector('.failures').textContent.includes('total = 3, want <4>')`},
			{"project", "/p/shop", "table.runs", `document.querySelector('tr[data-run="1"] .status-text').textContent === 'failure'`},
			{"projects", "/", ".cards", `document.querySelector('.card-title').textContent === 'shop'`},
		} {
			browserDo(t, ctx, "open "+page.path+" on the "+look.name, chromedp.Navigate(e.ts.URL+page.path),
				chromedp.WaitVisible(chromedp.CSS(page.ready)))
			if w := browserEval[[]int](t, ctx, "[document.documentElement.scrollWidth, window.innerWidth]"); w[0] > w[1] {
				t.Errorf("%s is %dpx wide on the %dpx %s", page.path, w[0], w[1], look.name)
			}
			if !browserEval[bool](t, ctx, page.check) {
				t.Errorf("%s on the %s: %s does not hold", page.path, look.name, page.check)
			}
			browserShot(t, ctx, shots, page.name+"-"+look.name+".png")
		}
	}
}
