package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// websvcBin builds testdata/websvc once.
var websvcBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "websvc-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "websvc")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/websvc").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build websvc: %v\n%s", err, out)
	}
	return bin, nil
})

// requiresField is the service's requires: line for the pipelines the tests write, ""
// for none.
func requiresField(requires string) string {
	if requires == "" {
		return ""
	}
	return "\n  requires: [" + requires + "]"
}

// servicePipeline is a drover.yml that builds websvc as service name at version and
// deploys it to staging. extra is more shell for the build step.
func servicePipeline(bin, name, version, requires, extra string) string {
	return fmt.Sprintf(`
service:
  name: %s
  command: ./dist/websvc
  health: {path: /healthz, interval: 100ms, unhealthy_threshold: 2}
  replicas: 2%s
steps:
  - name: build
    run: mkdir -p dist && cp %s dist/websvc && echo %s > dist/version %s
    artifacts: [dist]
  - name: staging
    deploy: staging
`, name, requiresField(requires), bin, version, extra)
}

// deliver pushes yml as project's first commit and waits for its first run, failing the
// test unless it passed; it returns the repository.
func (s *testServer) deliver(project, yml string) string {
	s.t.Helper()
	repo := gitRepo(s.t, yml)
	git(s.t, repo, "push", "-q", s.pushURL(project), "main")
	if run := s.waitRun(project, 1, finished); run.Status != "success" {
		s.t.Fatalf("%s run: %+v\n%s", project, run, s.log)
	}
	return repo
}

// commitPipeline replaces drover.yml in repo, commits and pushes it to project.
func (s *testServer) commitPipeline(repo, project, yml string) {
	s.t.Helper()
	os.WriteFile(filepath.Join(repo, "drover.yml"), []byte(yml), 0o644)
	git(s.t, repo, "commit", "-q", "-am", "pipeline")
	git(s.t, repo, "push", "-q", s.pushURL(project), "main")
}

// getVia GETs path of service.env through the proxy at base (http://HOST:PORT).
func getVia(base, service, env, path string) (int, string, error) {
	return getWith(http.DefaultClient, base, service, env, path)
}

// getWith is getVia through client c.
func getWith(c *http.Client, base, service, env, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Host = service + "." + env + ".localhost"
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// waitBodyVia polls / of service.env through the proxy at base until its body is want;
// it fails the test after 30 s, with what log says.
func waitBodyVia(t *testing.T, base, service, env, want string, log fmt.Stringer) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		code, body, err := getVia(base, service, env, "/")
		if err == nil && code == 200 && body == want {
			return
		}
		last = fmt.Sprintf("%d %q %v", code, body, err)
	}
	t.Fatalf("%s.%s never answered %q through %s; last %s\nlog:\n%s", service, env, want, base, last, log)
}

// viaProxy GETs path of service.env through the deploy proxy.
func (s *testServer) viaProxy(service, env, path string) (int, string, error) {
	return getVia(s.Proxy, service, env, path)
}

// waitBody polls the service through the proxy until its body is want.
func (s *testServer) waitBody(service, env, want string) {
	s.t.Helper()
	waitBodyVia(s.t, s.Proxy, service, env, want, s.log)
}

type apiEnv struct {
	Services []struct {
		Service, Tag string
		Instances    []struct {
			Name, Health string
			Pid          int
		}
	}
	Deployments []struct {
		Service, Tag, Status, Reason, Trigger string
	}
}

// healed waits up to within for service in env to run two healthy instances, neither of
// them one that isVictim names.
func (s *testServer) healed(env, service string, within time.Duration, isVictim func(name string, pid int) bool) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, svc := range s.env(env).Services {
			if svc.Service != service || len(svc.Instances) != 2 {
				continue
			}
			a, b := svc.Instances[0], svc.Instances[1]
			if !isVictim(a.Name, a.Pid) && !isVictim(b.Name, b.Pid) && a.Health == "healthy" && b.Health == "healthy" {
				return true
			}
		}
	}
	return false
}

func (s *testServer) env(name string) apiEnv {
	s.t.Helper()
	var e apiEnv
	if code := s.api("GET", "/api/v1/environments/"+name, "", nil, &e); code != 200 {
		s.t.Fatalf("GET environment %s: %d", name, code)
	}
	return e
}

// load sends requests to service.env from several clients until stop, counting
// answers by body and failures.
type load struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []string
	bodies   map[string]int
}

func (s *testServer) startLoad(service, env string, clients int) *load {
	return s.startLoadWith(http.DefaultClient, service, env, clients)
}

// startLoadWith is startLoad through client c (one with a timeout, say).
func (s *testServer) startLoadWith(c *http.Client, service, env string, clients int) *load {
	l := &load{stop: make(chan struct{}), bodies: map[string]int{}}
	for range clients {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body, err := getWith(c, s.Proxy, service, env, "/")
				l.mu.Lock()
				if err != nil || code != 200 {
					l.fail.Add(1)
					if len(l.errs) < 5 {
						l.errs = append(l.errs, fmt.Sprintf("%d %q %v", code, body, err))
					}
				} else {
					l.ok.Add(1)
					l.bodies[body]++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *load) end() { close(l.stop); l.wg.Wait() }

func TestDeployHealRollbackAndRestart(t *testing.T) {
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := startServer(t, dir, "", "--rollback-window", "20s", "--health-timeout", "3s")

	// api, then web, which requires api: both deployed by their runs' deploy steps.
	s.deliver("api", servicePipeline(bin, "api", "api-v1", "", ""))
	web := s.deliver("web", servicePipeline(bin, "web", "v1", "api", ""))
	s.waitBody("web", "staging", "v1 staging")
	if code, body, err := s.viaProxy("web", "staging", "/up"); code != 200 || body != "api-v1 staging" {
		t.Errorf("web reaching api through API_URL: %d %q %v", code, body, err)
	}

	// v2 under load: no request fails across the switch.
	l := s.startLoad("web", "staging", 8)
	s.commitPipeline(web, "web", servicePipeline(bin, "web", "v2", "api", ""))
	if run := s.waitRun("web", 2, finished); run.Status != "success" {
		t.Fatalf("web run 2: %+v\n%s", run, s.log)
	}
	s.waitBody("web", "staging", "v2 staging")
	time.Sleep(200 * time.Millisecond)

	// A release whose health check fails never gets traffic; the run says why.
	s.commitPipeline(web, "web", servicePipeline(bin, "web", "v3", "api", "&& touch dist/unhealthy"))
	run := s.waitRun("web", 3, finished)
	if run.Status != "failure" || !strings.Contains(run.Steps[1].Reason, "never became healthy") ||
		!strings.Contains(run.Steps[1].Reason, "starting with a broken health check") {
		t.Errorf("run 3: %+v", run)
	}

	// A killed instance comes back.
	e := s.env("staging")
	var victim int
	for _, svc := range e.Services {
		if svc.Service == "web" && len(svc.Instances) == 2 {
			victim = svc.Instances[0].Pid
		}
	}
	if victim == 0 {
		t.Fatalf("web's instances: %+v", e.Services)
	}
	syscall.Kill(victim, syscall.SIGKILL)
	if !s.healed("staging", "web", 20*time.Second, func(name string, pid int) bool { return pid == victim }) {
		t.Errorf("the killed instance was not replaced: %+v", s.env("staging").Services)
	}
	l.end()
	if l.fail.Load() != 0 || l.bodies["v2 staging"] == 0 || l.bodies["v3 staging"] != 0 {
		t.Errorf("under load: %d ok, %d failed %v, bodies %v", l.ok.Load(), l.fail.Load(), l.errs, l.bodies)
	}

	// A release that turns unhealthy soon after its switch is rolled back on its own.
	s.commitPipeline(web, "web", servicePipeline(bin, "web", "v4", "api", "&& echo 1s > dist/fail-after"))
	if run := s.waitRun("web", 4, finished); run.Status != "success" {
		t.Fatalf("web run 4: %+v\n%s", run, s.log)
	}
	s.waitBody("web", "staging", "v2 staging")
	hist := s.env("staging").Deployments
	var rolledBack, automatic bool
	for _, d := range hist {
		// A deploy: step deploys the run's artifact before the run passes: under its number.
		rolledBack = rolledBack || (d.Tag == "4" && d.Status == "rolled-back")
		automatic = automatic || (d.Tag == "2" && strings.HasPrefix(d.Trigger, "automatic rollback"))
	}
	if !rolledBack || !automatic {
		t.Errorf("history after the automatic rollback: %+v", hist)
	}

	// drover rollback goes one further back: v1, the same digest, nothing rebuilt.
	res := drover(t, "", "rollback", "web", "--env", "staging", "--server", s.URL, "--token", s.Token)
	if res.code != 0 || !strings.Contains(res.stdout, "web 1 (sha256:") {
		t.Fatalf("drover rollback: %s", res)
	}
	s.waitBody("web", "staging", "v1 staging")
	show := drover(t, "", "env", "show", "staging", "--server", s.URL, "--token", s.Token)
	if show.code != 0 || !strings.Contains(show.stdout, "web  web #1 (r1)") || !strings.Contains(show.stdout, "api  api #1 (r1)") {
		t.Errorf("env show: %s", show)
	}

	// A rolling deploy under load: instances replaced one at a time, no request fails.
	l = s.startLoad("web", "staging", 8)
	res = drover(t, "", "deploy", "web:2", "--env", "staging", "--strategy", "rolling", "--server", s.URL, "--token", s.Token)
	if res.code != 0 || !strings.Contains(res.stdout, "instance 2 of 2") {
		t.Fatalf("rolling deploy: %s", res)
	}
	s.waitBody("web", "staging", "v2 staging")
	l.end()
	if l.fail.Load() != 0 || l.bodies["v1 staging"] == 0 || l.bodies["v2 staging"] == 0 {
		t.Errorf("rolling deploy under load: %d ok, %d failed %v, bodies %v", l.ok.Load(), l.fail.Load(), l.errs, l.bodies)
	}
	// The environment page shows what runs there.
	if page := s.text("/env/staging"); !strings.Contains(page, `data-service="web"`) || strings.Count(page, ">healthy<") < 4 {
		t.Errorf("environment page lacks web's healthy instances:\n%s", page)
	}
	res = drover(t, "", "rollback", "web", "--env", "staging", "--server", s.URL, "--token", s.Token)
	if res.code != 0 {
		t.Fatalf("drover rollback after the rolling deploy: %s", res)
	}
	s.waitBody("web", "staging", "v1 staging")

	// A restarted server brings the environment back.
	s.stop(syscall.SIGTERM)
	s.start("--rollback-window", "20s")
	s.waitBody("web", "staging", "v1 staging")
	s.waitBody("api", "staging", "api-v1 staging")
	if code, body, _ := s.viaProxy("web", "staging", "/up"); code != 200 || body != "api-v1 staging" {
		t.Errorf("after a restart, web reaching api: %d %q", code, body)
	}

	// Promotion: the digest running in staging goes to production as it is. web alone
	// is refused while api, which it requires, runs nowhere in production; --all takes
	// api first, then web.
	res = drover(t, "", "promote", "web", "--from", "staging", "--to", "production", "--server", s.URL, "--token", s.Token)
	if res.code != 2 || !strings.Contains(res.stderr, "web requires api, which does not run in production") ||
		!strings.Contains(res.stderr, "--without-requires") {
		t.Errorf("promoting web before api: %s", res)
	}
	if code, _, err := s.viaProxy("web", "production", "/"); err != nil || code != http.StatusBadGateway {
		t.Errorf("a refused promotion started web in production: %d %v", code, err)
	}
	res = drover(t, "", "promote", "--all", "--from", "staging", "--to", "production", "-m", "QA signed off", "--server", s.URL, "--token", s.Token)
	if res.code != 0 || !strings.Contains(res.stdout, "in this order: api, web") {
		t.Fatalf("promote --all: %s", res)
	}
	s.waitBody("web", "production", "v1 production")
	if code, body, _ := s.viaProxy("web", "production", "/up"); code != 200 || body != "api-v1 production" {
		t.Errorf("after promote --all, web reaching api in production: %d %q", code, body)
	}
	if res = drover(t, "", "promote", "--all", "--from", "staging", "--to", "production", "--server", s.URL, "--token", s.Token); res.code != 0 ||
		!strings.Contains(res.stdout, "api: production runs #1 (r1) already") || strings.Contains(res.stdout, "promoting web") {
		t.Errorf("promote --all again: %s", res)
	}
	// --without-requires goes ahead, saying what is missing.
	res = drover(t, "", "deploy", "web:1", "--env", "qa", "--without-requires", "--server", s.URL, "--token", s.Token)
	if res.code != 0 || !strings.Contains(res.stdout, "without api, which web requires") {
		t.Errorf("deploy --without-requires: %s", res)
	}
	// A release that did not pass its pipeline is not promoted, though it runs in staging.
	s.commitPipeline(web, "web", servicePipeline(bin, "web", "v5", "api", "")+"  - {name: smoke, run: exit 1}\n")
	if run := s.waitRun("web", 5, finished); run.Status != "failure" {
		t.Fatalf("run 5: %+v", run)
	}
	s.waitBody("web", "staging", "v5 staging")
	res = drover(t, "", "promote", "web", "--from", "staging", "--to", "production", "--server", s.URL, "--token", s.Token)
	if res.code != 2 || !strings.Contains(res.stderr, "staging runs web:5: run 5 of web failed") {
		t.Errorf("promoting a failed run's release: %s", res)
	}
	s.waitBody("web", "production", "v1 production")
	// A deploy: step is refused the same way, and its run fails saying why.
	s.commitPipeline(web, "web", servicePipeline(bin, "web", "v6", "api", "")+"  - {name: demo, deploy: demo}\n")
	if run := s.waitRun("web", 6, finished); run.Status != "failure" || len(run.Steps) != 3 ||
		!strings.Contains(run.Steps[2].Reason, "web requires api, which does not run in demo") {
		t.Errorf("run 6, deploying to an environment without api: %+v", run)
	}

	// The audit log has it all: who, what, where, why.
	audit := drover(t, "", "audit", "--server", s.URL, "--token", s.Token)
	for _, want := range []string{"admin        promote   production", "QA signed off", "drover       rollback  staging",
		"admin        rollback  staging", "run web #2   deploy    staging"} {
		if !strings.Contains(audit.stdout, want) {
			t.Errorf("audit log lacks %q:\n%s", want, audit.stdout)
		}
	}
	if page := s.text("/audit"); !strings.Contains(page, "QA signed off") {
		t.Errorf("the audit page lacks the promotion")
	}
}

func TestEphemeralEnvironments(t *testing.T) {
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	// A data folder steps and instances can reach: as root they run as users of their
	// own (ranges no other test uses), else confined by Landlock.
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, reachableDir(t), "", "--health-timeout", "5s", "--step-uids", "20910-20919", "--service-uids", "21100-21199")
	s.deliver("api", servicePipeline(bin, "api", "api-v1", "", ""))
	// web's tests run against a complete environment of their own: api at its staging
	// release and this run's web, found through API_URL and WEB_URL.
	yml := fmt.Sprintf(`
service:
  name: web
  command: ./dist/websvc
  health: {path: /healthz, interval: 100ms}
  requires: [api]
steps:
  - name: build
    run: mkdir -p dist && cp %[1]s dist/websvc && echo web-$DROVER_BRANCH > dist/version
    artifacts: [dist]
  - name: e2e
    environment: ephemeral
    run: |
      %[1]s get "$WEB_URL/up"
      %[1]s get "$WEB_URL/"
      test ! -f SLOW || sleep 30
  - name: staging
    deploy: staging
`, bin)
	web := gitRepo(t, yml)
	git(t, web, "push", "-q", s.pushURL("web"), "main")
	run := s.waitRun("web", 1, finished)
	if run.Status != "success" {
		t.Fatalf("web run: %+v\n%s", run, s.log)
	}
	log := s.text("/api/v1/projects/web/runs/1/steps/e2e/log")
	if !strings.Contains(log, "api-v1 eph-web-1") || !strings.Contains(log, "web-main eph-web-1") ||
		!strings.Contains(log, "environment eph-web-1 is up in") {
		t.Errorf("e2e step log:\n%s", log)
	}
	gone := func(env string) bool {
		code, _, err := s.viaProxy("api", env, "/")
		return err == nil && code == http.StatusBadGateway
	}
	if !gone("eph-web-1") {
		t.Errorf("the ephemeral environment outlived its step")
	}
	s.waitBody("web", "staging", "web-main staging")

	// Two runs at once get two environments; cancelling one tears its environment down.
	os.WriteFile(filepath.Join(web, "SLOW"), nil, 0o644)
	git(t, web, "add", "SLOW")
	git(t, web, "commit", "-q", "-m", "slow")
	git(t, web, "push", "-q", s.pushURL("web"), "main")
	git(t, web, "push", "-q", s.pushURL("web"), "main:other")
	for _, env := range []string{"eph-web-2", "eph-web-3"} {
		deadline := time.Now().Add(30 * time.Second)
		for !func() bool { code, _, err := s.viaProxy("api", env, "/"); return err == nil && code == 200 }() {
			if time.Now().After(deadline) {
				t.Fatalf("%s never came up\n%s", env, s.log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for n := 2; n <= 3; n++ {
		if code := s.api("POST", fmt.Sprintf("/api/v1/projects/web/runs/%d/cancel", n), "", nil, nil); code != http.StatusAccepted {
			t.Fatalf("cancel run %d: %d", n, code)
		}
		if run := s.waitRun("web", n, finished); run.Status != "cancelled" {
			t.Errorf("run %d: %+v", n, run)
		}
	}
	for _, env := range []string{"eph-web-2", "eph-web-3"} {
		if !gone(env) {
			t.Errorf("cancelling its run left %s running", env)
		}
	}

	// Developer environments: a copy of staging with one release swapped, stopped by
	// env down or when nobody uses it.
	client := func(args ...string) result {
		return drover(t, "", append(args, "--server", s.URL, "--token", s.Token)...)
	}
	if res := client("env", "up", "alice", "--with", "web:1", "--idle", "1s"); res.code != 0 || !strings.Contains(res.stdout, "environment alice is up in") {
		t.Fatalf("env up: %s", res)
	}
	s.waitBody("api", "alice", "api-v1 alice")
	s.waitBody("web", "alice", "web-main alice")
	if res := client("env", "up", "bob", "--from", "staging"); res.code != 0 {
		t.Fatalf("env up bob: %s", res)
	}
	s.waitBody("web", "bob", "web-main bob")
	if res := client("env", "down", "bob"); res.code != 0 || !gone("bob") {
		t.Errorf("env down: %s", res)
	}
	// Watched through the API: a request through the proxy would keep it alive.
	for deadline := time.Now().Add(15 * time.Second); s.api("GET", "/api/v1/environments/alice", "", nil, nil) != 404; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the idle environment alice was never stopped")
		}
	}
	if !gone("alice") {
		t.Errorf("alice's services still answer after it was stopped")
	}
	if audit := client("audit"); !strings.Contains(audit.stdout, "drover       environment alice") {
		t.Errorf("the audit log does not say why alice went:\n%s", audit.stdout)
	}
}
