// Package browsertest drives headless Chromium (chromedp) for the web UI's tests: it
// starts the browser, or skips the test where none is installed (and fails it when CI is
// set, so a broken install cannot pass silently), and wraps the usual actions.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// New starts headless Chromium, or skips the test without it.
func New(t *testing.T) context.Context {
	t.Helper()
	chrome, err := exec.LookPath("chromium")
	if err != nil && os.Getenv("CI") != "" {
		// CI installs Chromium: a skip there would hide a broken install.
		t.Fatal("CI is set but chromium is not on PATH: .ci/run must install it")
	}
	if err != nil {
		t.Skip("the browser test needs Chromium: apt-get install chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.Headless,
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel) // before the server stops: closing the tab ends its streams
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Shot saves a full-page PNG of the browser's page.
func Shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// Until waits in the page, without reloading it, for a JavaScript condition. It keeps
// asking across navigations the page makes itself.
func Until(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	check := chromedp.Evaluate[bool]("(() => { try { return !!(" + expr + "); } catch (e) { return false; } })()")
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(cctx, check)
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s (%v)", what, err)
		}
	}
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Do runs actions, failing the test with what when they fail.
func Do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
