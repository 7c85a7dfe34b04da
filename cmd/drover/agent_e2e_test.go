package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	dockerengine "github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/docker/dockertest"
)

// testAgent is a `drover agent run` process started by a test.
type testAgent struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	dir  string
}

// startAgent runs drover agent run against server (a URL) with token, in its own work
// folder; prefix, when given, is the command line it runs under (ip netns exec NS).
func startAgent(t *testing.T, server, token, name, labels string, prefix []string, extra ...string) *testAgent {
	t.Helper()
	a := &testAgent{t: t, name: name, log: &syncBuffer{}, dir: t.TempDir()}
	args := append([]string{droverBin, "agent", "run", "--server", server, "--token", token, "--name", name,
		"--workdir", a.dir, "--grace", "500ms"}, extra...)
	if labels != "" {
		args = append(args, "--labels", labels)
	}
	args = append(prefix, args...)
	a.cmd = exec.Command(args[0], args[1:]...)
	a.cmd.Env = append(os.Environ(), "NO_COLOR=1")
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // kill -9 takes its steps too
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			a.log.WriteString(sc.Text() + "\n")
		}
	}()
	t.Cleanup(func() { a.stop(syscall.SIGTERM) })
	return a
}

// stop ends the agent with sig (SIGKILL: its whole process group, as a crash of its
// machine would) and waits for it.
func (a *testAgent) stop(sig syscall.Signal) {
	if a.cmd.ProcessState != nil {
		return
	}
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	} else {
		_ = a.cmd.Process.Signal(sig)
	}
	done := make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// readUntil reads until what read returns contains want, for up to within, and returns
// what it read last.
func readUntil(within time.Duration, want string, read func() string) string {
	deadline := time.Now().Add(within)
	text := read()
	for !strings.Contains(text, want) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		text = read()
	}
	return text
}

// apiStep is a step as the run API shows it, with the agent that ran it.
type apiAgentRun struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	Steps  []struct {
		Name     string `json:"name"`
		Status   string `json:"status"`
		Reason   string `json:"reason"`
		Agent    string `json:"agent"`
		Attempts int    `json:"attempts"`
	} `json:"steps"`
}

func (s *testServer) agentRun(project string, n int) apiAgentRun {
	s.t.Helper()
	var run apiAgentRun
	if code := s.api("GET", fmt.Sprintf("/api/v1/projects/%s/runs/%d", project, n), "", nil, &run); code != 200 {
		s.t.Fatalf("run %s #%d: %d", project, n, code)
	}
	return run
}

// stepAgents maps each step of a run to the agent that ran it.
func (r apiAgentRun) stepAgents() map[string]string {
	out := map[string]string{}
	for _, s := range r.Steps {
		out[s.Name] = s.Agent
	}
	return out
}

// waitAgents waits until the server lists n online agents.
func (s *testServer) waitAgents(n int) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var agents []agentJSON
		if s.api("GET", "/api/v1/agents", "", nil, &agents) == 200 {
			online := 0
			for _, a := range agents {
				if a.Online {
					online++
				}
			}
			if online >= n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("%d agents never came online: %s\nserver log:\n%s", n, s.text("/api/v1/agents"), s.log)
}

// Issue 19 on one machine: steps go to agents by labels, share the run's workspace on
// its agent, reach another agent from a fresh checkout plus their needs' artifacts,
// and come back with logs (secrets masked), reports and artifacts. The agent token
// opens nothing but the poll.
func TestAgentsRunTheStepsOnLoopback(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "", "--lease-period", "3s")
	token := s.mint("--machine", "agent", "--label", "agents")
	a1 := startAgent(t, s.URL, token, "a1", "os=linux,zone=a", nil)
	startAgent(t, s.URL, token, "a2", "os=other", nil)
	s.waitAgents(2)
	s.mustSetSecret("DEPLOY_KEY", "hunter2-secret")

	repo := gitRepo(t, `
agent: {labels: {os: linux}}
steps:
  - name: build
    run: |
      mkdir -p dist && echo "built" > dist/app && echo scratch > scratch
      echo "key is $DEPLOY_KEY"
      mkdir -p reports && printf '<testsuite tests="1"><testcase name="ok"/></testsuite>' > reports/t.xml
    secrets: [DEPLOY_KEY]
    artifacts: [dist/]
    reports: {junit: reports/*.xml}
  - name: test
    run: test -f scratch && echo "same workspace" && test "$DROVER_WORKSPACE" = "$PWD"
  - name: other
    needs: [build]
    agent: {labels: {os: other}}
    run: test ! -e scratch && cat dist/app
`)
	git(t, repo, "push", "-q", s.pushURL("shop"), "main")
	run := s.waitRun("shop", 1, finished)
	if run.Status != "success" {
		t.Fatalf("run: %+v\nagent a1:\n%s\nserver:\n%s", run, a1.log, s.log)
	}
	got := s.agentRun("shop", 1).stepAgents()
	if got["build"] != "a1" || got["test"] != "a1" || got["other"] != "a2" {
		t.Errorf("where the steps ran: %v", got)
	}
	if log := s.text("/api/v1/projects/shop/runs/1/steps/build/log"); !strings.Contains(log, "key is ***") || strings.Contains(log, "hunter2") {
		t.Errorf("build's log: %q", log)
	}
	if log := s.text("/api/v1/projects/shop/runs/1/steps/other/log"); !strings.Contains(log, "built") {
		t.Errorf("other's log (the artifact of build, on a2): %q", log)
	}
	// The build's tests were read on a1; the artifact it pushed is the run's release.
	if raw := s.text("/api/v1/projects/shop/runs/1"); !strings.Contains(raw, `"passed": 1`) {
		t.Errorf("the build's test report did not come back: %s", raw)
	}
	if body := s.text("/artifacts/shop/r1/dist/app"); body != "built\n" {
		t.Errorf("the release's dist/app: %q", body)
	}

	// drover agent ls shows both, with labels and version.
	ls := s.as(s.Token, "agent", "ls")
	if ls.code != 0 || !strings.Contains(ls.stdout, "a1") || !strings.Contains(ls.stdout, "os=linux,zone=a") || !strings.Contains(ls.stdout, "v0.0.0-test") {
		t.Errorf("agent ls: %s", ls)
	}
	// The agent token asks for work and nothing else.
	for _, req := range []string{"GET /api/v1/projects", "GET /api/v1/agents", "GET /git/shop.git/info/refs?service=git-upload-pack",
		"GET /v2/shop/manifests/r1", "POST /api/v1/agent/leases/1/done"} {
		method, path, _ := strings.Cut(req, " ")
		if code := s.api(method, path, token, nil, nil); code != 401 && code != 403 {
			t.Errorf("%s with the agent token: %d", req, code)
		}
	}
	// A drained agent finishes its steps and takes no new ones; the run waits and says why.
	if res := s.as(s.Token, "agent", "drain", "a2"); res.code != 0 || !strings.Contains(res.stdout, "drained") {
		t.Fatalf("agent drain: %s", res)
	}
	git(t, repo, "commit", "-q", "--allow-empty", "-m", "second")
	git(t, repo, "push", "-q", s.pushURL("shop"), "main")
	s.waitRun("shop", 2, func(r apiRun) bool {
		for _, st := range r.Steps {
			if st.Name == "other" && st.Status == "running" {
				return true
			}
		}
		return false
	})
	const drained = "waiting for an agent with the labels os=other: a2 drained"
	if log := readUntil(10*time.Second, drained, func() string { return s.text("/api/v1/projects/shop/runs/2/steps/other/log") }); !strings.Contains(log, drained) {
		t.Errorf("the waiting step's log: %q", log)
	}
	if res := s.as(s.Token, "agent", "resume", "a2"); res.code != 0 {
		t.Fatalf("agent resume: %s", res)
	}
	if run := s.waitRun("shop", 2, finished); run.Status != "success" {
		t.Errorf("run 2 after the resume: %+v", run)
	}
}

// A container step (image:) runs on an agent with a Docker Engine, in its workspace.
func TestAgentRunsAContainerStep(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t, dockerengine.Registry{})
	image := dockertest.BuildBusybox(t, e)
	s := startServer(t, t.TempDir(), "", "--no-local-steps")
	startAgent(t, s.URL, s.mint("--machine", "agent"), "d1", "docker=true", nil)
	s.waitAgents(1)
	repo := gitRepo(t, fmt.Sprintf(`
agent: {labels: {docker: "true"}}
steps:
  - name: write
    run: echo from-the-host > note
  - name: boxed
    image: %s
    run: cat note && busybox uname -s > uname
    artifacts: [uname]
`, image))
	git(t, repo, "push", "-q", s.pushURL("boxed"), "main")
	if run := s.waitRun("boxed", 1, finished); run.Status != "success" {
		t.Fatalf("run: %+v\nserver:\n%s", run, s.log)
	}
	if log := s.text("/api/v1/projects/boxed/runs/1/steps/boxed/log"); !strings.Contains(log, "from-the-host") {
		t.Errorf("the container step's log: %q", log)
	}
	if got := s.agentRun("boxed", 1).stepAgents(); got["boxed"] != "d1" {
		t.Errorf("where the steps ran: %v", got)
	}
	if body := s.text("/artifacts/boxed/r1/uname"); body != "Linux\n" {
		t.Errorf("the container's artifact: %q", body)
	}
}

// A build: step runs on an agent: it builds with the agent's engine and pushes to the
// server's registry with its lease's credential; the next step runs in that image
// (image: self) on the agent, and the release names the image.
func TestAgentBuildsAndTestsAnImage(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t, dockerengine.Registry{})
	dockertest.BuildBusybox(t, e)
	s := startServer(t, t.TempDir(), "", "--no-local-steps")
	dockertest.RemoveImagesOf(t, e, strings.TrimPrefix(s.URL, "http://"))
	startAgent(t, s.URL, s.mint("--machine", "agent"), "b1", "docker=true", nil)
	s.waitAgents(1)
	s.pushImageRepo("built", `
agent: {labels: {docker: "true"}}
steps:
  - name: compile
    run: mkdir -p dist && echo built-on-an-agent > dist/version
  - name: image
    build: {context: ., tags: [latest]}
  - name: inside the image
    image: self
    run: cat /app/dist/version
`)
	if run := s.waitRun("built", 1, finished); run.Status != "success" {
		t.Fatalf("run: %+v\nserver:\n%s", run, s.log)
	}
	if got := s.agentRun("built", 1).stepAgents(); got["image"] != "b1" || got["inside the image"] != "b1" {
		t.Errorf("where the steps ran: %v", got)
	}
	if log := s.text("/api/v1/projects/built/runs/1/steps/inside%20the%20image/log"); !strings.Contains(log, "built-on-an-agent") {
		t.Errorf("the step in the built image: %q", log)
	}
	var rel apiRelease
	s.api("GET", "/api/v1/projects/built/releases/r1", "", nil, &rel)
	if !strings.HasPrefix(rel.Image, "built/image@sha256:") {
		t.Errorf("the release's image: %+v", rel)
	}
	for _, tag := range []string{"1", "latest"} {
		if resp := s.do("HEAD", "/v2/built/image/manifests/"+tag, nil, nil); resp.StatusCode != 200 {
			t.Errorf("built/image:%s: %d", tag, resp.StatusCode)
		}
	}
}
