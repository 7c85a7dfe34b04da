package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/report"
	"github.com/drover-cd/drover/store"
)

// webDiamondRun stores a failed run whose steps form a diamond: build, then test and lint,
// then package. test failed with two failed tests; package made an artifact.
func webDiamondRun(e *webEnv) *store.Run {
	e.project("shop")
	run := e.run("shop", "failure")
	run.Reason = "step test failed"
	run.Artifact = "sha256:" + strings.Repeat("ab", 32)
	if err := e.st.UpdateRun(context.Background(), run); err != nil {
		e.t.Fatal(err)
	}
	tests := &report.Tests{Passed: 40, Failed: 2, Skipped: 1, Failures: []report.Failure{
		{Suite: "shop", Class: "cart", Name: "TestTotal", Message: "total = 3, want <4>", Detail: "cart_test.go:12: total = 3"},
		{Suite: "shop", Class: "cart", Name: "TestEmpty", Message: "panic: nil map"},
	}}
	arts, err := json.Marshal([]ocispec.Descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
		Digest: digest.Digest("sha256:" + strings.Repeat("cd", 32)), Size: 1536,
		Annotations: map[string]string{ocispec.AnnotationTitle: "dist/"}}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.step(&store.Step{RunID: run.ID, Name: "build", Position: 0, Status: "success", Attempts: 1})
	e.step(&store.Step{RunID: run.ID, Name: "test", Position: 1, Needs: []string{"build"}, Status: "failure", ExitCode: 1, Attempts: 1,
		Reports: webReports(e.t, report.Summary{Tests: tests, Coverage: &report.Coverage{Covered: 5, Total: 6}})})
	e.step(&store.Step{RunID: run.ID, Name: "lint", Position: 2, Needs: []string{"build"}, Status: "success", Attempts: 1})
	e.step(&store.Step{RunID: run.ID, Name: "package", Position: 3, Needs: []string{"test", "lint"}, Status: "success",
		Attempts: 1, Artifacts: arts})
	return run
}

func TestWebRunPage(t *testing.T) {
	e := newWebEnv(t, false)
	webDiamondRun(e)
	dev := e.token(RoleDeveloper)
	resp, body := e.get("/p/shop/runs/1", dev)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET run: %d\n%s", resp.StatusCode, body)
	}
	webContains(t, "run page", body,
		// header
		`<h1>#1 <span class="msg">Add &lt;b&gt;checkout&lt;/b&gt;</span></h1>`, `class="badge st-failure"`,
		"step test failed", `<span class="branch">main</span>`, ">0123456</code>", "push by push", "1m 30s",
		`<code class="digest" title="sha256:abab`,
		// the graph: nodes that link to their logs, coloured and named by status, and edges
		`<svg class="dag"`, `<a class="node st-failure" data-step="test" href="/p/shop/runs/1/steps/test">`,
		`<a class="node st-success" data-step="package" href="/p/shop/runs/1/steps/package">`,
		`<tspan class="status-text">failure</tspan>`, `class="edge st-success" data-from="build" data-to="test"`,
		`data-from="lint" data-to="package"`,
		// tests: totals, then the failures with their messages
		`2 failed</span> · <span class="t-passed">40 passed</span> · <span class="t-skipped">1 skipped`,
		`<use href="#i-failure"/></svg> cart.TestTotal`, "total = 3, want &lt;4&gt;", "cart_test.go:12: total = 3", "panic: nil map",
		// coverage, artifacts
		"83.3%", `value="0.8333"`, "<code>dist/</code>", "1.5 KiB", "sha256:cdcd",
		// actions
		`action="/p/shop/runs/1/rerun"`, ">Re-run</button>", `name="from_step" value="test"`, "Re-run from this step",
		`data-events="/p/shop/runs/1/events" data-status="failure"`)
	if strings.Contains(body, ">Cancel</button>") {
		t.Error("a finished run offers Cancel")
	}
	if strings.Contains(body, `value="lint"`) {
		t.Error("a step that succeeded offers a re-run from it")
	}
	if i, j := strings.Index(body, `data-step="build"`), strings.Index(body, `data-step="package"`); i < 0 || j < i {
		t.Error("the graph is not in pipeline order")
	}

	// A viewer sees the run but no buttons.
	_, body = e.get("/p/shop/runs/1", e.token(RoleViewer))
	if strings.Contains(body, "<button type=\"submit\" class=\"primary\">Re-run") || strings.Contains(body, "from_step") {
		t.Error("a viewer is offered a re-run")
	}
	for path, want := range map[string]int{"/p/shop/runs/2": 404, "/p/shop/runs/x": 404, "/p/nope/runs/1": 404} {
		if resp, _ := e.get(path, dev); resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// A server whose steps are not isolated says so on every run page.
func TestWebRunPageWarnsWhenStepsAreNotIsolated(t *testing.T) {
	e := newWebEnv(t, false)
	webDiamondRun(e)
	dev := e.token(RoleDeveloper)
	if _, body := e.get("/p/shop/runs/1", dev); strings.Contains(body, "data-unisolated") {
		t.Errorf("an isolated server's run page warns:\n%s", body)
	}
	e.srv.cfg.IsolationWarning = "Steps are not isolated: they run as the server's own user."
	if _, body := e.get("/p/shop/runs/1", dev); !strings.Contains(body, `data-unisolated>Steps are not isolated: they run as the server&#39;s own user.</p>`) {
		t.Errorf("the run page does not warn:\n%s", body)
	}
}
