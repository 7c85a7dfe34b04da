package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gatedPipeline is a drover.yml that builds websvc as service app at version, deploys
// it to staging, runs extra steps, and goes to production past a release-manager's
// approval.
func gatedPipeline(bin, version, extra string) string {
	return fmt.Sprintf(`
service:
  name: app
  command: ./dist/websvc
  health: {path: /healthz, interval: 100ms}
steps:
  - name: build
    run: mkdir -p dist && cp %s dist/websvc && echo %s > dist/version
    artifacts: [dist]
  - name: staging
    deploy: staging
%s  - name: go-live
    approval: {role: release-manager}
  - name: production
    deploy: production
`, bin, version, extra)
}

// Issue 13, secure defaults for releases: a person deploys, promotes or rolls back to a
// release only once its run passed its gates (an admin may --force, on the record), and
// production, declared nowhere, takes changes only from release managers.
func TestGatesCannotBeSkipped(t *testing.T) {
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "", "--health-timeout", "5s")
	client, mint := s.as, s.mint
	dev := mint("--role", "developer", "--name", "dev")
	rm := mint("--role", "developer", "--name", "rita", "--approves", "release-manager")
	refused := func(what string, res result, code int, want string) {
		t.Helper()
		if res.code != code || !strings.Contains(res.stderr, want) {
			t.Errorf("%s: want exit %d and %q, got %s", what, code, want, res)
		}
	}

	// Run 1 deploys itself to staging, then waits at its approval gate.
	repo := gitRepo(t, gatedPipeline(bin, "v1", ""))
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	s.waitRun("app", 1, func(r apiRun) bool { return r.Status == "waiting" })
	s.waitBody("app", "staging", "v1 staging") // a pipeline's own deploy: step, before its run passed

	waiting := "run 1 of app is waiting at approval go-live: approve it first (drover approve app 1), or an admin may --force"
	refused("a developer deploying the waiting run to production", client(dev, "deploy", "app:1", "--env", "production"), 2,
		"changes to production need the release-manager approval role")
	refused("a release manager deploying the waiting run to production", client(rm, "deploy", "app:1", "--env", "production"), 2, waiting)
	refused("a developer deploying the waiting run to staging", client(dev, "deploy", "app:1", "--env", "staging"), 2, waiting)
	refused("an admin deploying the waiting run without --force", client(s.Token, "deploy", "app:1", "--env", "production"), 2, waiting)
	refused("a developer with --force", client(dev, "deploy", "app:1", "--env", "staging", "--force"), 2,
		"only an admin may force a release whose run has not passed; dev has the developer role")
	if code := s.api("POST", "/api/v1/environments/staging/deploy", dev, map[string]any{"project": "app", "ref": "1", "force": true}, nil); code != 403 {
		t.Errorf("a developer sending force: HTTP %d, want 403", code)
	}
	if code := s.api("POST", "/api/v1/environments/staging/deploy", dev, map[string]any{"project": "app", "ref": "1"}, nil); code != 409 {
		t.Errorf("a developer deploying the waiting run: HTTP %d, want 409", code)
	}
	res := client(s.Token, "deploy", "app:1", "--env", "production", "--force")
	if res.code != 0 || !strings.Contains(res.stdout, "forced: run 1 of app is waiting at approval go-live; deploying it anyway, as admin asked") {
		t.Fatalf("an admin forcing the waiting run into production: %s", res)
	}
	s.waitBody("app", "production", "v1 production")
	if line := auditLine(t, client(s.Token, "audit"), "forced: run 1 of app is waiting at approval go-live"); !strings.Contains(line, "admin        deploy    production") {
		t.Errorf("the forced deploy's audit entry: %q", line)
	}

	// Approved, run 1 deploys itself to production (production's default approval role
	// is met) and passes.
	if res := client(rm, "approve", "app", "1"); res.code != 0 {
		t.Fatalf("approve: %s", res)
	}
	if run := s.waitEnded("app", 1, time.Minute); run.Status != "success" {
		t.Fatalf("run 1 after its approval: %+v\n%s", run, s.log)
	}

	// Run 2 deploys itself to staging, then fails.
	s.commitPipeline(repo, "app", gatedPipeline(bin, "v2", "  - {name: smoke, run: exit 1}\n"))
	if run := s.waitEnded("app", 2, time.Minute); run.Status != "failure" {
		t.Fatalf("run 2: %+v", run)
	}
	s.waitBody("app", "staging", "v2 staging")
	failed := "run 2 of app failed: only a release whose run passed may go out: deploy one that did, or an admin may --force"
	refused("a developer deploying the failed run to staging", client(dev, "deploy", "app:2", "--env", "staging"), 2, failed)
	refused("promoting the failed run's release", client(rm, "promote", "app", "--from", "staging", "--to", "production"), 2,
		"staging runs app:2: "+failed)
	refused("a developer's environment with the failed run", client(dev, "env", "up", "dave", "--with", "app:2"), 2, failed)

	// A passing run deploys as before; going back from it to the failed run's release is
	// refused unless an admin forces it.
	if res := client(dev, "deploy", "app:1", "--env", "staging"); res.code != 0 {
		t.Fatalf("a developer deploying the passing run to staging: %s", res)
	}
	s.waitBody("app", "staging", "v1 staging")
	refused("a rollback to the failed run's release", client(dev, "rollback", "app", "--env", "staging"), 2,
		"roll app in staging back to 2: "+failed)
	refused("an admin's rollback to it without --force", client(s.Token, "rollback", "app", "--env", "staging"), 2, failed)
	refused("a developer's rollback with --force", client(dev, "rollback", "app", "--env", "staging", "--force"), 2, "only an admin may force")
	if res := client(s.Token, "rollback", "app", "--env", "staging", "--force"); res.code != 0 {
		t.Fatalf("an admin forcing the rollback: %s", res)
	}
	s.waitBody("app", "staging", "v2 staging")
	if line := auditLine(t, client(s.Token, "audit"), "forced: run 2 of app failed; from r1 to 2"); !strings.Contains(line, "admin        rollback  staging") {
		t.Errorf("the forced rollback's audit entry: %q", line)
	}

	// production, which no environments.yml declares, takes a passing run's release only
	// from a release manager (or an admin).
	refused("a developer deploying the passing run to production", client(dev, "deploy", "app:1", "--env", "production"), 2,
		"changes to production need the release-manager approval role (drover user add NAME --role developer --approves release-manager); dev has none "+
			"(production asks for it unless an environments.yml declares it otherwise)")
	if res := client(rm, "deploy", "app:1", "--env", "production"); res.code != 0 {
		t.Fatalf("a release manager deploying the passing run to production: %s", res)
	}

	// Nor does a pipeline deploy itself there without a release manager's approval.
	s.commitPipeline(repo, "app", strings.Replace(gatedPipeline(bin, "v3", ""), "approval: {role: release-manager}", "run: echo no gate", 1))
	run := s.waitEnded("app", 3, time.Minute)
	if st, reason := stepOf(run, "production"); run.Status != "failure" || st != "failure" ||
		!strings.Contains(reason, "production takes releases approved by a release-manager") {
		t.Errorf("run 3, which deploys to production without an approval: %+v", run)
	}

	// An environments.yml that declares production without approval: wins, and its plan
	// says what it drops.
	file := filepath.Join(t.TempDir(), "environments.yml")
	os.WriteFile(file, []byte("environments:\n  staging: {}\n  production: {}\n"), 0o644)
	if res := client(s.Token, "env", "apply", file); res.code != 0 || !strings.Contains(res.stdout, "~ production: approval release-manager → none") {
		t.Fatalf("env apply: %s", res)
	}
	if res := client(dev, "deploy", "app:1", "--env", "production"); res.code != 0 {
		t.Errorf("a developer deploying to a production declared without approval: %s", res)
	}
}

// auditLine is the line of drover audit's output that holds want; "" when none does.
func auditLine(t *testing.T, audit result, want string) string {
	t.Helper()
	for _, l := range strings.Split(audit.stdout, "\n") {
		if strings.Contains(l, want) {
			return l
		}
	}
	t.Errorf("the audit log lacks %q:\n%s", want, audit)
	return ""
}
