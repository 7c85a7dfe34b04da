package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/internal/swarmtest"
)

// agentHosts is a server on the host and an agent on each of three hosts of their own
// (network namespaces reaching the server through a veth): n1 zone=a, n2 zone=b and
// pool=x, n3 zone=c and pool=x.
type agentHosts struct {
	t      *testing.T
	s      *testServer
	c      *swarmtest.Cluster
	token  string
	agents []*testAgent
	marks  string // where steps note that they started
}

var hostLabels = []string{"zone=a", "zone=b,pool=x", "zone=c,pool=x"}

func startAgentHosts(t *testing.T) *agentHosts {
	c := swarmtest.Start(t, swarmtest.Options{Nodes: 3, HostsOnly: true})
	h := &agentHosts{t: t, c: c, marks: t.TempDir()}
	h.s = startServer(t, t.TempDir(), "", "--listen", c.HostAddr+":0", "--lease-period", "3s")
	h.token = h.s.mint("--machine", "agent")
	for i := range 3 {
		h.agents = append(h.agents, h.startAgent(i))
	}
	h.s.waitAgents(3)
	return h
}

func (h *agentHosts) startAgent(i int) *testAgent {
	return startAgent(h.t, h.s.URL, h.token, fmt.Sprintf("n%d", i+1), hostLabels[i], h.c.Exec(i))
}

// started are the workspaces a step noted it started in, one line per start.
func (h *agentHosts) started(step string) []string {
	data, _ := os.ReadFile(filepath.Join(h.marks, step))
	return strings.Fields(string(data))
}

// waitStarted waits until step has started n times and returns the index of the agent
// its last start ran on.
func (h *agentHosts) waitStarted(step string, n int) int {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ws := h.started(step); len(ws) >= n {
			for i, a := range h.agents {
				if strings.HasPrefix(ws[n-1], a.dir) {
					return i
				}
			}
			h.t.Fatalf("step %s started in %s, no agent's folder", step, ws[n-1])
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("step %s never started %d times\nserver log:\n%s", step, n, h.s.log)
	return -1
}

// note is a script line recording a start of step.
func (h *agentHosts) note(step string) string {
	return fmt.Sprintf(`echo "$PWD" >> %s`, filepath.Join(h.marks, step))
}

// push makes project run yml.
func (h *agentHosts) push(project, yml string) {
	repo := gitRepo(h.t, yml)
	git(h.t, repo, "push", "-q", h.s.pushURL(project), "main")
}

// Issue 19 across hosts: steps spread over three agents on hosts of their own by
// labels; an agent killed mid-step, the server killed mid-run, and an agent cut off
// from the server each leave a run that ends well, with no step result lost or taken
// twice; a step no agent can take says why it waits.
func TestAgentsOnHostsOfTheirOwn(t *testing.T) {
	t.Parallel()
	h := startAgentHosts(t)
	s := h.s

	t.Run("spread by labels", func(t *testing.T) {
		h.push("spread", `
steps:
  - {name: a, needs: [], agent: {labels: {zone: a}}, run: echo on a}
  - {name: b, needs: [], agent: {labels: {zone: b}}, run: echo on b}
  - {name: c, needs: [], agent: {labels: {zone: c}}, run: echo on c}
`)
		if run := s.waitRun("spread", 1, finished); run.Status != "success" {
			t.Fatalf("run: %+v", run)
		}
		if got := s.agentRun("spread", 1).stepAgents(); got["a"] != "n1" || got["b"] != "n2" || got["c"] != "n3" {
			t.Errorf("where the steps ran: %v", got)
		}
	})

	t.Run("an agent killed mid-step", func(t *testing.T) {
		h.push("crash", fmt.Sprintf(`
steps:
  - name: slow
    agent: {labels: {pool: x}}
    run: |
      %s
      echo started
      sleep 3
      echo finished
`, h.note("slow")))
		victim := h.waitStarted("slow", 1)
		if err := h.c.KillHost(victim); err != nil {
			t.Fatal(err)
		}
		h.agents[victim].stop(9) // reap it
		run := s.waitRun("crash", 1, finished)
		step := s.agentRun("crash", 1).Steps[0]
		survivor := fmt.Sprintf("n%d", h.waitStarted("slow", 2)+1)
		if run.Status != "success" || step.Agent != survivor || step.Attempts != 2 {
			t.Errorf("after the kill: run %+v, step %+v (want it on %s)", run, step, survivor)
		}
		log := s.text("/api/v1/projects/crash/runs/1/steps/slow/log")
		if !strings.Contains(log, fmt.Sprintf("attempt 1 lost: agent n%d stopped answering", victim+1)) || !strings.Contains(log, "finished") {
			t.Errorf("the step's log: %q", log)
		}
		h.agents[victim] = h.startAgent(victim)
		s.waitAgents(3)
	})

	t.Run("the server killed mid-run", func(t *testing.T) {
		h.push("restart", fmt.Sprintf(`
steps:
  - name: long
    agent: {labels: {zone: a}}
    run: |
      %s
      echo before > made-by-long
      cat made-by-long
      sleep 4
      echo after
  - name: next
    agent: {labels: {zone: a}}
    run: cat made-by-long
`, h.note("long")))
		h.waitStarted("long", 1)
		time.Sleep(300 * time.Millisecond) // the first line reaches the server
		s.stop(9)
		u, _ := url.Parse(s.URL)
		time.Sleep(time.Second)
		s.start("--listen", u.Host, "--lease-period", "3s")
		run := s.waitRun("restart", 1, finished)
		if run.Status != "success" || len(h.started("long")) != 1 {
			t.Errorf("after the restart: %+v; long started %d times", run, len(h.started("long")))
		}
		log := s.text("/api/v1/projects/restart/runs/1/steps/long/log")
		if !strings.Contains(log, "before") || !strings.Contains(log, "after") || strings.Contains(log, "interrupted") {
			t.Errorf("long's log: %q", log)
		}
		if got := s.agentRun("restart", 1).stepAgents(); got["long"] != "n1" || got["next"] != "n1" {
			t.Errorf("where the steps ran: %v", got)
		}
	})

	t.Run("an agent cut off", func(t *testing.T) {
		h.push("cut", fmt.Sprintf(`
steps:
  - name: cut
    agent: {labels: {pool: x}}
    run: |
      %s
      sleep 4
      echo done
`, h.note("cut")))
		victim := h.waitStarted("cut", 1)
		if err := h.c.Cut(victim); err != nil {
			t.Fatal(err)
		}
		run := s.waitRun("cut", 1, finished)
		step := s.agentRun("cut", 1).Steps[0]
		if err := h.c.Mend(victim); err != nil {
			t.Fatal(err)
		}
		if run.Status != "success" || step.Agent == fmt.Sprintf("n%d", victim+1) || step.Attempts != 2 {
			t.Errorf("after the cut: run %+v, step %+v", run, step)
		}
		// Back on the network, the cut-off agent's late report is refused (its lease's
		// credential was revoked), and it stops the step.
		const refused = "the server gave the attempt up: stopping it and reporting nothing more"
		if log := readUntil(30*time.Second, refused, h.agents[victim].log.String); !strings.Contains(log, refused) {
			t.Errorf("the cut-off agent's log:\n%s", log)
		}
		if got := s.agentRun("cut", 1).Steps[0]; got.Agent != step.Agent || got.Status != "success" {
			t.Errorf("the late result changed the step: %+v", got)
		}
	})

	t.Run("a label no agent has", func(t *testing.T) {
		h.push("nomatch", `
steps:
  - {name: win, agent: {labels: {os: windows}}, run: echo never}
`)
		want := "waiting for an agent with the labels os=windows: no connected agent has them (n1 (zone=a), n2 (pool=x,zone=b), n3 (pool=x,zone=c))"
		if log := readUntil(20*time.Second, want, func() string { return s.text("/api/v1/projects/nomatch/runs/1/steps/win/log") }); !strings.Contains(log, want) {
			t.Errorf("the waiting step's log: %q", log)
		}
		if code := s.api("POST", "/api/v1/projects/nomatch/runs/1/cancel", "", nil, nil); code != 202 {
			t.Fatalf("cancel: %d", code)
		}
		if run := s.waitRun("nomatch", 1, finished); run.Status != "cancelled" {
			t.Errorf("the cancelled run: %+v", run)
		}
	})
}
