package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dockerengine "github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/docker/dockertest"
)

// staticWebsvc builds testdata/websvc without cgo, so it runs in a FROM scratch image.
func staticWebsvc(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "websvc")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/websvc")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build websvc: %v\n%s", err, out)
	}
	return bin
}

// imagePipeline builds websvc into an image FROM the test busybox, tests inside that
// image and deploys it as containers.
func imagePipeline(bin, name, version, requires string) string {
	return fmt.Sprintf(`
service:
  name: %s
  image: self
  health: {path: /healthz, interval: 100ms, unhealthy_threshold: 2}
  replicas: 2
  resources: {cpu: 0.5, memory: 64m}%s
steps:
  - name: compile
    run: mkdir -p dist && cp %s dist/websvc && echo %s > dist/version
  - name: image
    needs: [compile]
    build: {context: ., tags: [latest]}
  - name: inside the image
    needs: [image]
    image: self
    run: test "$(cat /app/dist/version)" = %s && echo "the image holds %s"
  - name: staging
    needs: [inside the image]
    deploy: staging
`, name, requiresField(requires), bin, version, version, version)
}

// pushImageRepo makes a repository of yml and imageDockerfile and pushes it to project.
func (s *testServer) pushImageRepo(project, yml string) string {
	s.t.Helper()
	repo := gitRepo(s.t, yml)
	os.WriteFile(filepath.Join(repo, "Dockerfile"), []byte(imageDockerfile), 0o644)
	git(s.t, repo, "add", ".")
	git(s.t, repo, "commit", "-q", "-m", "image")
	git(s.t, repo, "push", "-q", s.pushURL(project), "main")
	return repo
}

const imageDockerfile = "FROM " + dockertest.Busybox + "\nCOPY dist /app/dist\nWORKDIR /app\nENTRYPOINT [\"/app/dist/websvc\"]\n"

func TestDockerBuildTestAndDeployTheSameImage(t *testing.T) {
	e := dockertest.Engine(t, dockerengine.Registry{})
	dockertest.BuildBusybox(t, e)
	bin := staticWebsvc(t)
	s := startServer(t, t.TempDir(), "", "--runtime", "docker", "--health-timeout", "20s")
	dockertest.RemoveImagesOf(t, e, strings.TrimPrefix(s.URL, "http://"))

	push := s.pushImageRepo
	push("api", imagePipeline(bin, "api", "api-v1", ""))
	if run := s.waitRun("api", 1, finished); run.Status != "success" {
		t.Fatalf("api run: %+v\n%s", run, s.log)
	}
	web := push("web", imagePipeline(bin, "web", "v1", "api"))
	run := s.waitRun("web", 1, finished)
	if run.Status != "success" {
		t.Fatalf("web run: %+v\n%s", run, s.log)
	}
	if log := s.text("/api/v1/projects/web/runs/1/steps/inside%20the%20image/log"); !strings.Contains(log, "the image holds v1") {
		t.Errorf("the test step did not run in the built image:\n%s", log)
	}
	// The image is in the registry, under the run's number and the step's tags, as an
	// OCI manifest with the run's annotations; the release names it.
	var rel apiRelease
	s.api("GET", "/api/v1/projects/web/releases/r1", "", nil, &rel)
	for _, tag := range []string{"1", "latest"} {
		var m struct {
			MediaType   string
			Annotations map[string]string
		}
		resp := s.do("GET", "/v2/web/image/manifests/"+tag, nil, nil)
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != 200 || m.MediaType != "application/vnd.oci.image.manifest.v1+json" ||
			m.Annotations["dev.drover.run"] != "1" || m.Annotations["dev.drover.project"] != "web" ||
			rel.Image != "web/image@"+resp.Header.Get("Docker-Content-Digest") {
			t.Errorf("web/image:%s: %d %+v, release's image %q", tag, resp.StatusCode, m, rel.Image)
		}
	}
	s.waitBody("web", "staging", "v1 staging")
	// Containers reach each other by SERVICE.ENV, not through the host's loopback.
	if code, body, err := s.viaProxy("web", "staging", "/up"); code != 200 || body != "api-v1 staging" {
		t.Errorf("web reaching api through API_URL: %d %q %v", code, body, err)
	}

	// v2, blue-green under load: no request fails across the switch.
	l := s.startLoad("web", "staging", 8)
	s.commitPipeline(web, "web", imagePipeline(bin, "web", "v2", "api"))
	if run := s.waitRun("web", 2, finished); run.Status != "success" {
		t.Fatalf("web run 2: %+v\n%s", run, s.log)
	}
	s.waitBody("web", "staging", "v2 staging")
	// The engine keeps v1's image while its containers use it, without calling that
	// a failure.
	if log := s.text("/api/v1/projects/web/runs/2/steps/image/log"); strings.Contains(log, "could not remove") {
		t.Errorf("the build step's log:\n%s", log)
	}
	if ok, err := e.HasImage(context.Background(), strings.TrimPrefix(s.URL, "http://")+"/web/image:1"); err != nil || !ok {
		t.Errorf("web/image:1, which v1's containers use, left the engine (%v)", err)
	}
	time.Sleep(300 * time.Millisecond)

	// A killed container is replaced.
	var victim string
	for _, svc := range s.env("staging").Services {
		if svc.Service == "web" && len(svc.Instances) == 2 {
			victim = svc.Instances[0].Name
		}
	}
	if victim == "" {
		t.Fatalf("web's instances: %+v", s.env("staging").Services)
	}
	if err := e.Kill(context.Background(), "drover-"+victim, "KILL"); err != nil {
		t.Fatal(err)
	}
	if !s.healed("staging", "web", 30*time.Second, func(name string, _ int) bool { return name == victim }) {
		t.Errorf("the killed container was not replaced: %+v", s.env("staging").Services)
	}
	l.end()
	if l.fail.Load() != 0 || l.bodies["v1 staging"] == 0 || l.bodies["v2 staging"] == 0 {
		t.Errorf("under load: %d ok, %d failed %v, bodies %v", l.ok.Load(), l.fail.Load(), l.errs, l.bodies)
	}

	stopLeavingNoContainers(t, s)
}

// stopLeavingNoContainers stops every environment and the server, and checks that no
// container of it is left: the server's stop alone leaves the services serving.
func stopLeavingNoContainers(t *testing.T, s *testServer) {
	t.Helper()
	if res := s.as(s.Token, "env", "stop", "--all"); res.code != 0 {
		t.Errorf("env stop --all: %s", res)
	}
	s.stop(syscall.SIGTERM)
	probe, err := dockerengine.Connect(context.Background(), dockerengine.Owner(s.Data), dockerengine.Registry{})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if n, err := probe.RemoveLeftovers(context.Background(), nil); err != nil || n != 0 {
		t.Errorf("%d containers left after the server stopped (err %v)", n, err)
	}
}

// An environment's copies run where it runs: on a server whose default is processes,
// staging says runtime: docker, and the ephemeral environment made from it and a
// developer environment copied from it run containers too. The service has no
// command, so as processes they could not start at all.
func TestDockerRuntimeCarriesToCopiesOfAnEnvironment(t *testing.T) {
	e := dockertest.Engine(t, dockerengine.Registry{})
	dockertest.BuildBusybox(t, e)
	bin := staticWebsvc(t)
	s := startServer(t, t.TempDir(), "", "--health-timeout", "20s")
	dockertest.RemoveImagesOf(t, e, strings.TrimPrefix(s.URL, "http://"))
	client := func(args ...string) result {
		return drover(t, "", append(args, "--server", s.URL, "--token", s.Token)...)
	}
	file := filepath.Join(t.TempDir(), "environments.yml")
	os.WriteFile(file, []byte("environments:\n  staging: {runtime: docker}\n  ephemeral: {base: staging}\n"), 0o644)
	if res := client("env", "apply", file); res.code != 0 {
		t.Fatalf("env apply: %s", res)
	}

	s.pushImageRepo("api", ephemeralAPIPipeline(bin, "v1"))
	if run := s.waitRun("api", 1, finished); run.Status != "success" {
		t.Fatalf("api run: %+v\n%s", run, s.log)
	}
	if log := s.text("/api/v1/projects/api/runs/1/steps/e2e/log"); !strings.Contains(log, "v1 eph-api-1") {
		t.Errorf("the ephemeral environment did not serve the image:\n%s", log)
	}
	s.waitBody("api", "staging", "v1 staging")

	if res := client("env", "up", "alice", "--from", "staging"); res.code != 0 {
		t.Fatalf("env up: %s", res)
	}
	s.waitBody("api", "alice", "v1 alice")
	var alice []string
	for _, svc := range s.env("alice").Services {
		for _, inst := range svc.Instances {
			if ok, err := e.Exists(context.Background(), "drover-"+inst.Name); err != nil || !ok {
				t.Errorf("alice's instance %s is not a container (err %v)", inst.Name, err)
			}
			alice = append(alice, inst.Name)
		}
	}
	if len(alice) == 0 {
		t.Errorf("alice runs no instance: %+v", s.env("alice").Services)
	}
	stopLeavingNoContainers(t, s)
}

// ephemeralAPIPipeline builds websvc (answering version) into the image of service api,
// which has no command, checks it in an ephemeral environment (step e2e fetches
// $API_URL/) and deploys it to staging.
func ephemeralAPIPipeline(bin, version string) string {
	return fmt.Sprintf(`
service:
  name: api
  image: self
  health: {path: /healthz, interval: 100ms}
steps:
  - name: compile
    run: mkdir -p dist && cp %[1]s dist/websvc && echo %[2]s > dist/version
  - name: image
    needs: [compile]
    build: {context: .}
  - name: e2e
    needs: [image]
    environment: ephemeral
    run: %[1]s get "$API_URL/"
  - name: staging
    needs: [e2e]
    deploy: staging
`, bin, version)
}
