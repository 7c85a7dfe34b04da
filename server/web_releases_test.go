package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/artifact"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/report"
	"github.com/drover-cd/drover/store"
)

// webPublish stores a run of project with the given status and publishes dist/, holding
// files, as its artifact the way the runner does.
func webPublish(e *webEnv, project, status string, files map[string]string) *store.Run {
	e.t.Helper()
	ctx := context.Background()
	run := e.run(project, status)
	ws := e.t.TempDir()
	for name, content := range files {
		p := filepath.Join(ws, "dist", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	layout, err := artifact.Open(e.t.TempDir())
	if err != nil {
		e.t.Fatal(err)
	}
	layer, err := layout.Pack(ctx, ws, "dist")
	if err != nil {
		e.t.Fatal(err)
	}
	steps := []*engine.StepResult{{Name: "build", Status: engine.Status(status),
		Reports: &report.Summary{Tests: &report.Tests{Passed: 7, Failed: 1}, Coverage: &report.Coverage{Covered: 3, Total: 4}}}}
	ann := engine.OutcomeAnnotations(steps)
	ann["dev.drover.run"] = fmt.Sprint(run.Number)
	ann[ocispec.AnnotationRevision] = run.Commit
	ann["dev.drover.branch"] = run.Branch
	desc, err := layout.PutManifest([]ocispec.Descriptor{layer}, ann)
	if err != nil {
		e.t.Fatal(err)
	}
	pub := &release.Publisher{Registry: e.reg}
	err = pub.Publish(ctx, layout, desc, release.Run{Project: project, Number: run.Number, Commit: run.Commit, Passed: status == "success"})
	if err != nil {
		e.t.Fatal(err)
	}
	run.Artifact = desc.Digest.String()
	if err := e.st.UpdateRun(ctx, run); err != nil {
		e.t.Fatal(err)
	}
	return run
}

func TestReleasesPageListsPassedRunsOnly(t *testing.T) {
	e := newWebEnv(t, false)
	e.project("shop")
	webPublish(e, "shop", "success", map[string]string{"app": "v1"})
	webPublish(e, "shop", "failure", map[string]string{"app": "broken"})
	webPublish(e, "shop", "success", map[string]string{"app": "v3"})

	resp, body := e.get("/p/shop/releases", e.token(RoleViewer))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("releases page: %d\n%s", resp.StatusCode, body)
	}
	r3, r1 := strings.Index(body, `data-release="r3"`), strings.Index(body, `data-release="r1"`)
	if r3 < 0 || r1 < 0 || r3 > r1 || strings.Contains(body, `data-release="r2"`) {
		t.Errorf("want r3 then r1 and no r2:\n%s", body)
	}
	for _, want := range []string{"7 passed, 1 failed", "75.0%", "/p/shop/runs/3#files-h"} {
		if !strings.Contains(body, want) {
			t.Errorf("releases page lacks %q", want)
		}
	}
}

func TestRunPageLinksTheArtifactsFiles(t *testing.T) {
	e := newWebEnv(t, false)
	e.project("shop")
	webPublish(e, "shop", "success", map[string]string{"app": "v1", "docs/README.md": "read me"})
	tok := e.token(RoleViewer)

	page, body := e.get("/p/shop/runs/1", tok)
	if page.StatusCode != http.StatusOK || !strings.Contains(body, "release <code>r1</code>") ||
		!strings.Contains(body, `href="/artifacts/shop/1/dist/docs/README.md"`) {
		t.Fatalf("run page: %d\n%s", page.StatusCode, body)
	}
	req, _ := http.NewRequest("GET", e.ts.URL+"/artifacts/shop/1/dist/docs/README.md", nil)
	req.AddCookie(&http.Cookie{Name: TokenCookie, Value: tok})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(data) != "read me" || !strings.Contains(resp.Header.Get("Content-Disposition"), `filename=README.md`) {
		t.Errorf("download from the page: %d %q %v", resp.StatusCode, data, resp.Header)
	}
}

func TestRunPageSaysWhenTheArtifactIsGone(t *testing.T) {
	e := newWebEnv(t, false)
	run := webDiamondRun(e) // names an artifact digest the registry never held
	resp, body := e.get(fmt.Sprintf("/p/shop/runs/%d", run.Number), e.token(RoleViewer))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "no longer stored") {
		t.Errorf("run page: %d\n%s", resp.StatusCode, body)
	}
}
