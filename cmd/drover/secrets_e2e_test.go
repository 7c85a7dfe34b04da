package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dockerengine "github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/docker/dockertest"
)

// setSecret runs drover secret set as token with the value from a file.
func (s *testServer) setSecret(token, name, value string, flags ...string) result {
	s.t.Helper()
	f := filepath.Join(s.t.TempDir(), "value")
	if err := os.WriteFile(f, []byte(value), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return s.as(token, append([]string{"secret", "set", name, "--from-file", f}, flags...)...)
}

// mustSetSecret is setSecret as the admin, failing the test when it is refused.
func (s *testServer) mustSetSecret(name, value string, flags ...string) {
	s.t.Helper()
	if res := s.setSecret(s.Token, name, value, flags...); res.code != 0 {
		s.t.Fatalf("secret set %s %v: %s", name, flags, res)
	}
}

// stepReason is the reason step of run ended as it did.
func stepReason(run apiRun, step string) (status, reason string) {
	for _, st := range run.Steps {
		if st.Name == step {
			return st.Status, st.Reason
		}
	}
	return "", ""
}

// Steps get the secrets they ask for and nothing else; their logs, stored and served,
// show every form of a value masked; a missing secret and one kept for another branch
// fail the step before it starts, naming the secret, the step, the project and what to
// do. On SQLite, and on PostgreSQL when the tests have one.
func TestSecretsReachTheStepsThatAskMaskedAndOnlyOnTheirBranches(t *testing.T) {
	for _, db := range []struct {
		name string
		dsn  func(*testing.T) string
	}{{"sqlite", func(*testing.T) string { return "" }}, {"postgres", postgresDSN}} {
		t.Run(db.name, func(t *testing.T) {
			s := startServer(t, t.TempDir(), db.dsn(t))
			const dbPass, mainOnly = "db-pass-for-app-42", "release-key-only-main"
			s.mustSetSecret("DB_PASSWORD", dbPass, "--project", "app")
			s.mustSetSecret("RELEASE_KEY", mainOnly, "--project", "app", "--branch", "main")
			s.mustSetSecret("PROD_ONLY", "production-only-value", "--project", "app", "--env", "production")
			b64 := base64.StdEncoding.EncodeToString([]byte(dbPass))
			repo := gitRepo(t, `
steps:
  - name: uses
    secrets: [DB_PASSWORD, RELEASE_KEY]
    run: |
      echo "password $DB_PASSWORD"
      printf '%s' "$DB_PASSWORD" | base64
      printf 'key %s' "$RELEASE_KEY" > leaked.txt
  - name: later
    run: |
      echo "later: ${DB_PASSWORD:-not given}"
      cat leaked.txt; echo
  - name: missing
    secrets: [NOT_SET_ANYWHERE]
    run: echo started
  - name: unapproved
    needs: []
    allow_failure: true
    environment: production
    secrets: [PROD_ONLY]
    run: echo started
`)
			git(t, repo, "push", "-q", s.pushURL("app"), "main")
			run := s.waitRun("app", 1, finished)
			uses := s.text("/api/v1/projects/app/runs/1/steps/uses/log")
			later := s.text("/api/v1/projects/app/runs/1/steps/later/log")
			for _, leak := range []string{dbPass, b64, mainOnly} {
				if strings.Contains(uses+later, leak) {
					t.Errorf("a log shows %q:\n%s\n%s", leak, uses, later)
				}
			}
			if !strings.Contains(uses, "password ***") || !strings.Contains(later, "later: not given") || !strings.Contains(later, "key ***") {
				t.Errorf("logs:\n%s\n%s", uses, later)
			}
			st, reason := stepReason(run, "missing")
			if run.Status != "failure" || st != "failure" || !strings.Contains(reason, "NOT_SET_ANYWHERE") ||
				!strings.Contains(reason, "missing") || !strings.Contains(reason, "app") || !strings.Contains(reason, "drover secret set") {
				t.Errorf("the step asking for a missing secret: run %s, step %s: %q", run.Status, st, reason)
			}
			// Production's secrets go to a script only after an approval for its role.
			if st, reason := stepReason(run, "unapproved"); st != "failure" || !strings.Contains(reason, "approval: {role: release-manager}") {
				t.Errorf("a step asking for production's secrets without an approval: %s %q", st, reason)
			}
			if log := s.text("/api/v1/projects/app/runs/1/steps/missing/log"); strings.Contains(log, "started") {
				t.Errorf("the step with a missing secret ran:\n%s", log)
			}

			// A feature branch gets the project's secret but not the one kept for main.
			git(t, repo, "checkout", "-q", "-b", "feature")
			git(t, repo, "push", "-q", s.pushURL("app"), "feature")
			run = s.waitRun("app", 2, finished)
			st, reason = stepReason(run, "uses")
			if st != "failure" || !strings.Contains(reason, "RELEASE_KEY") || strings.Contains(reason, mainOnly) {
				t.Errorf("on a feature branch, the step asking for a main-only secret: %s %q", st, reason)
			}
			if log := s.text("/api/v1/projects/app/runs/2/steps/uses/log"); strings.Contains(log, "password") {
				t.Errorf("the step ran on the feature branch:\n%s", log)
			}
		})
	}
}

// A service's secrets are resolved per environment when it is deployed: the staging
// value in staging, the production value in production, where a developer's
// project-wide value never counts; instances' output keeps them masked.
func TestServicesGetTheirEnvironmentsSecrets(t *testing.T) {
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "", "--health-timeout", "20s")
	s.mustSetSecret("API_KEY", "project-wide-value", "--project", "svc")
	s.mustSetSecret("API_KEY", "staging-value-123", "--env", "staging")
	yml := strings.Replace(servicePipeline(bin, "svc", "v1", "", ""), "  replicas: 2", "  replicas: 1\n  secrets: [API_KEY]", 1)
	repo := gitRepo(t, yml)
	git(t, repo, "push", "-q", s.pushURL("svc"), "main")
	if run := s.waitRun("svc", 1, finished); run.Status != "success" {
		t.Fatalf("run: %+v\n%s", run, s.log)
	}
	if code, body, err := s.viaProxy("svc", "staging", "/env?name=API_KEY"); code != 200 || body != "staging-value-123" {
		t.Fatalf("staging's instance has API_KEY %q (%d, %v)", body, code, err)
	}

	// Production has approval rules: the project-wide value does not count there.
	res := s.as(s.Token, "deploy", "svc:1", "--env", "production")
	if res.code == 0 || !strings.Contains(res.stdout+res.stderr, "API_KEY") {
		t.Fatalf("production deployed without a production value:\n%s", res)
	}
	s.mustSetSecret("API_KEY", "production-value-456", "--env", "production")
	res = s.as(s.Token, "deploy", "svc:1", "--env", "production")
	if res.code != 0 {
		t.Fatalf("deploy to production: %s", res)
	}
	// The deploy says what it does in the user's words, not the API's path.
	if !strings.HasPrefix(res.stdout, "deploying svc:1 to production ...") || strings.Contains(res.stdout, "environments/") {
		t.Errorf("deploy's output:\n%s", res.stdout)
	}
	if code, body, err := s.viaProxy("svc", "production", "/env?name=API_KEY"); code != 200 || body != "production-value-456" {
		t.Fatalf("production's instance has API_KEY %q (%d, %v)", body, code, err)
	}
	// One release has one name: staging got run 1 from its deploy: step before the run
	// passed, production got release r1; both read "#1 (r1)".
	if ls := s.as(s.Token, "env", "ls"); strings.Count(ls.stdout, "#1 (r1)") != 2 {
		t.Errorf("drover env ls:\n%s", ls)
	}
	// The pipeline page follows the promotion path: staging, then production.
	if page := s.text("/pipeline"); strings.Index(page, `href="/env/staging"`) < 0 ||
		strings.Index(page, `href="/env/staging"`) > strings.Index(page, `href="/env/production"`) {
		t.Errorf("the pipeline page lists production before staging:\n%s", page)
	}
	// The instance printed its key at start: the log the server keeps shows it masked.
	logs, _ := filepath.Glob(filepath.Join(s.Data, "deploy", "logs", "*", "svc", "*.log"))
	if len(logs) == 0 {
		t.Fatal("no instance logs")
	}
	for _, f := range logs {
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), "-value-") || !strings.Contains(string(data), "API_KEY=***") {
			t.Errorf("%s:\n%s", f, data)
		}
	}
}

// In containers too: a container step gets its secret (the one for no environment)
// masked, and a service on the docker runtime gets its environment's value.
func TestSecretsInContainers(t *testing.T) {
	e := dockertest.Engine(t, dockerengine.Registry{})
	dockertest.BuildBusybox(t, e)
	bin := staticWebsvc(t)
	s := startServer(t, t.TempDir(), "", "--runtime", "docker", "--health-timeout", "20s")
	dockertest.RemoveImagesOf(t, e, strings.TrimPrefix(s.URL, "http://"))
	s.mustSetSecret("API_KEY", "container-staging-789", "--env", "staging")
	s.mustSetSecret("API_KEY", "container-step-321", "--project", "box") // steps with no environment
	yml := strings.Replace(imagePipeline(bin, "box", "v1", ""), "  replicas: 2", "  replicas: 1\n  secrets: [API_KEY]", 1)
	yml = strings.Replace(yml, "    image: self\n    run: ", "    image: self\n    secrets: [API_KEY]\n    run: echo in-the-container=$API_KEY && ", 1)
	s.pushImageRepo("box", yml)
	if run := s.waitRun("box", 1, finished); run.Status != "success" {
		t.Fatalf("run: %+v\n%s", run, s.log)
	}
	if log := s.text("/api/v1/projects/box/runs/1/steps/inside%20the%20image/log"); !strings.Contains(log, "in-the-container=***") || strings.Contains(log, "container-") {
		t.Errorf("the container step's log:\n%s", log)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body, err := s.viaProxy("box", "staging", "/env?name=API_KEY")
		if code == 200 && body == "container-staging-789" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container instance has API_KEY %q (%d, %v)", body, code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
