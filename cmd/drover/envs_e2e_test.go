package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvironmentsAsCode(t *testing.T) {
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "")
	client := s.as
	noDeploy := func(version string) string {
		yml := servicePipeline(bin, "api", version, "", "")
		return yml[:strings.Index(yml, "  - name: staging")]
	}
	api := gitRepo(t, noDeploy("api-v1"))
	git(t, api, "push", "-q", s.pushURL("api"), "main")
	if run := s.waitRun("api", 1, finished); run.Status != "success" {
		t.Fatalf("api run: %+v", run)
	}

	file := filepath.Join(t.TempDir(), "environments.yml")
	os.WriteFile(file, []byte(`
environments:
  integration: { track: main }
  staging:     {}
  production:  { replicas: 1, approval: release-manager }
`), 0o644)
	plan := client(s.Token, "env", "plan", file)
	for _, want := range []string{"+ integration: new environment, blue-green, tracks main", "> integration: api:r1, the newest release on main",
		"+ production: new environment, blue-green, 1 replicas, deploys need release-manager"} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	if envs := client(s.Token, "env", "ls"); !strings.Contains(envs.stdout, "no environments yet") {
		t.Errorf("the plan changed something:\n%s", envs.stdout)
	}
	if res := client(s.Token, "env", "apply", file); res.code != 0 {
		t.Fatalf("apply: %s", res)
	}
	s.waitBody("api", "integration", "api-v1 integration")
	if res := client(s.Token, "env", "plan", file); !strings.Contains(res.stdout, "nothing to change") {
		t.Errorf("plan after apply: %s", res)
	}
	// A bad file is refused with its position, before anything is sent.
	os.WriteFile(file+".bad", []byte("environments:\n  qa: { strategy: canary }\n"), 0o644)
	if res := client(s.Token, "env", "apply", file+".bad"); res.code != 2 || !strings.Contains(res.stderr, ".bad:2:19: strategy \"canary\"") {
		t.Errorf("a bad file: %s", res)
	}

	// integration tracks main: the next release goes there on its own.
	s.commitPipeline(api, "api", noDeploy("api-v2"))
	if run := s.waitRun("api", 2, finished); run.Status != "success" {
		t.Fatalf("api run 2: %+v", run)
	}
	s.waitBody("api", "integration", "api-v2 integration")

	// production takes changes only from holders of its approval role.
	dev := strings.TrimSpace(client(s.Token, "token", "create", "--role", "developer", "--name", "dev").stdout)
	if res := client(dev, "deploy", "api", "--env", "production"); res.code == 0 || !strings.Contains(res.stderr, "need the release-manager approval role") {
		t.Errorf("a developer deploying to production: %s", res)
	}
	if res := client(s.Token, "deploy", "api:r1", "--env", "production"); res.code != 0 {
		t.Errorf("an admin deploying to production: %s", res)
	}

	// The system project's environments.yml is applied by its run, which shows the plan.
	sys := gitRepo(t, "steps:\n  - {name: check, run: test -f environments.yml}\n")
	os.WriteFile(filepath.Join(sys, "environments.yml"), []byte(`
environments:
  integration: { track: main }
  staging:     { strategy: rolling }
  qa:          {}
`), 0o644)
	git(t, sys, "add", ".")
	git(t, sys, "commit", "-q", "-m", "environments")
	git(t, sys, "push", "-q", s.pushURL("system"), "main")
	run := s.waitRun("system", 1, finished)
	if run.Status != "success" || len(run.Steps) != 2 || run.Steps[1].Name != "environments" {
		t.Fatalf("system run: %+v", run)
	}
	log := s.text("/api/v1/projects/system/runs/1/steps/environments/log")
	for _, want := range []string{"~ staging: strategy blue-green → rolling", "+ qa: new environment", "- production: deleted, with its history; stops api"} {
		if !strings.Contains(log, want) {
			t.Errorf("the environments step's log lacks %q:\n%s", want, log)
		}
	}
	envs := client(s.Token, "env", "ls").stdout
	if strings.Contains(envs, "production") || !strings.Contains(envs, "qa") || !strings.Contains(envs, "rolling") {
		t.Errorf("environments after the system run:\n%s", envs)
	}
	if code, _, _ := s.viaProxy("api", "production", "/"); code != 502 {
		t.Errorf("production's api still answers after production was deleted: %d", code)
	}
}
