package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	dockerengine "github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/docker/dockertest"
	"github.com/drover-cd/drover/internal/swarmtest"
)

// swarmServer starts a server whose registry the cluster's nodes reach over TLS at the
// host's address on the cluster's network, trusted through certs.d, and declares
// staging as an environment on the cluster (envExtra adds to its declaration).
func swarmServer(t *testing.T, c *swarmtest.Cluster, envExtra string) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(c.HostAddr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	hostport := ln.Addr().String()
	ln.Close()
	s := startServer(t, t.TempDir(), "", "--tls-listen", hostport, "--advertise", "https://"+hostport, "--health-timeout", "2m")
	ca := drover(t, "", "ca", "--server", s.URL)
	if ca.code != 0 || !strings.Contains(ca.stdout, "BEGIN CERTIFICATE") {
		t.Fatalf("drover ca: %s", ca)
	}
	c.TrustCA(t, hostport, []byte(ca.stdout))
	file := filepath.Join(t.TempDir(), "environments.yml")
	os.WriteFile(file, []byte(fmt.Sprintf("environments:\n  staging:\n    runtime: swarm\n    swarm: {host: %q}\n%s", c.Manager(), envExtra)), 0o644)
	if res := s.as(s.Token, "env", "apply", file); res.code != 0 {
		t.Fatalf("env apply: %s", res)
	}
	return s
}

// swarmEnv is staging's services as the API shows them, with each instance's node.
type swarmEnv struct {
	Services []struct {
		Service, Tag string
		Instances    []struct{ Name, Health, Node, Addr string }
	}
}

func (s *testServer) swarmInstances(service string) (nodes []string, healthy int) {
	var e swarmEnv
	s.api("GET", "/api/v1/environments/staging", "", nil, &e)
	for _, svc := range e.Services {
		if svc.Service != service {
			continue
		}
		for _, in := range svc.Instances {
			nodes = append(nodes, in.Node)
			if in.Health == "healthy" {
				healthy++
			}
		}
	}
	return nodes, healthy
}

// waitInstances waits until service runs n healthy instances in staging, and returns
// how long that took and their nodes.
func (s *testServer) waitInstances(service string, n int, within time.Duration) (time.Duration, []string) {
	s.t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if nodes, healthy := s.swarmInstances(service); len(nodes) == n && healthy == n {
			return time.Since(start), nodes
		}
		time.Sleep(100 * time.Millisecond)
	}
	nodes, healthy := s.swarmInstances(service)
	s.t.Fatalf("%s did not get %d healthy instances in %s: %d of %v healthy\n%s", service, n, within, healthy, nodes,
		s.as(s.Token, "env", "show", "staging").stdout)
	return 0, nil
}

// generations lists the cluster's services of Drover, with their replica counts.
func generations(t *testing.T, c *swarmtest.Cluster) map[string]uint64 {
	t.Helper()
	list, err := c.Client(0).ServiceList(context.Background(), swarm.ServiceListOptions{
		Filters: filters.NewArgs(filters.Arg("label", "dev.drover.generation"))})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, svc := range list {
		out[svc.Spec.Name] = *svc.Spec.Mode.Replicated.Replicas
	}
	return out
}

// pullTokens lists the pull tokens that still work.
func (s *testServer) pullTokens() []string {
	var tokens []struct {
		Machine, Repository, Label string
		Revoked                    string
	}
	s.api("GET", "/api/v1/tokens", "", nil, &tokens)
	var out []string
	for _, tk := range tokens {
		if tk.Machine == "pull" && (tk.Revoked == "" || strings.HasPrefix(tk.Revoked, "0001")) {
			out = append(out, tk.Repository+" "+tk.Label)
		}
	}
	slices.Sort(out)
	return out
}

func TestSwarmSingleNode(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Nodes: 1})
	e := dockertest.Engine(t, dockerengine.Registry{})
	dockertest.BuildBusybox(t, e)
	bin := staticWebsvc(t)
	s := swarmServer(t, c, "")
	dockertest.RemoveImagesOf(t, e, strings.TrimPrefix(s.URL, "http://"))

	// A release without an image is refused on a Swarm, saying why.
	git(t, gitRepo(t, servicePipeline(bin, "plain", "p1", "", "")), "push", "-q", s.pushURL("plain"), "main")
	run := s.waitRun("plain", 1, finished)
	if page := s.text("/api/v1/projects/plain/runs/1"); run.Status != "failure" ||
		!strings.Contains(page, "staging runs on a Swarm, whose nodes run images, and plain of 1 has none") {
		t.Errorf("a release without an image on a Swarm: %s\n%s", run.Status, page)
	}

	repo := s.pushImageRepo("web", imagePipeline(bin, "web", "v1", ""))
	if run := s.waitRun("web", 1, finished); run.Status != "success" {
		t.Fatalf("web run 1: %+v\n%s", run, s.log)
	}
	s.waitBody("web", "staging", "v1 staging")
	if _, nodes := s.waitInstances("web", 2, time.Minute); nodes[0] != c.Nodes[0].Name {
		t.Errorf("instances' nodes: %v, want %s", nodes, c.Nodes[0].Name)
	}
	first := generations(t, c)
	if len(first) != 1 {
		t.Fatalf("generations after the first deploy: %v", first)
	}
	if tokens := s.pullTokens(); len(tokens) != 1 || !strings.HasPrefix(tokens[0], "web/image swarm generation web-staging-") {
		t.Errorf("pull tokens: %v, want one for web/image", tokens)
	}

	// v2: a second generation takes the traffic; the first is kept, with 0 tasks.
	l := s.startLoad("web", "staging", 8)
	s.commitPipeline(repo, "web", imagePipeline(bin, "web", "v2", ""))
	if run := s.waitRun("web", 2, finished); run.Status != "success" {
		t.Fatalf("web run 2: %+v\n%s", run, s.log)
	}
	s.waitBody("web", "staging", "v2 staging")
	gens := generations(t, c)
	var old string
	for name := range first {
		old = name
	}
	if len(gens) != 2 || gens[old] != 0 {
		t.Errorf("generations after v2: %v; want %s kept with 0 tasks beside v2's", gens, old)
	}

	// Rollback switches back to the kept generation: no third one.
	if res := s.as(s.Token, "rollback", "web", "--env", "staging"); res.code != 0 {
		t.Fatalf("rollback: %s", res)
	}
	s.waitBody("web", "staging", "v1 staging")
	if after := generations(t, c); len(after) != 2 || after[old] != 2 {
		t.Errorf("generations after the rollback: %v; want %s back at 2 tasks", after, old)
	}

	// Scale to 4 and back.
	if res := s.as(s.Token, "scale", "web", "--env", "staging", "4"); res.code != 0 {
		t.Fatalf("scale 4: %s", res)
	}
	s.waitInstances("web", 4, time.Minute)
	if res := s.as(s.Token, "scale", "web", "--env", "staging", "--reset"); res.code != 0 {
		t.Fatalf("scale --reset: %s", res)
	}
	s.waitInstances("web", 2, time.Minute)
	l.end()
	if l.fail.Load() != 0 || l.bodies["v1 staging"] == 0 || l.bodies["v2 staging"] == 0 {
		t.Errorf("under load: %d ok, %d failed %v, bodies %v", l.ok.Load(), l.fail.Load(), l.errs, l.bodies)
	}

	// Stopping the environment removes its generations and revokes their pull tokens.
	if res := s.as(s.Token, "env", "stop", "staging"); res.code != 0 {
		t.Fatalf("env stop: %s", res)
	}
	if gens := generations(t, c); len(gens) != 0 {
		t.Errorf("generations after env stop: %v", gens)
	}
	if tokens := s.pullTokens(); len(tokens) != 0 {
		t.Errorf("pull tokens after env stop: %v", tokens)
	}
}
