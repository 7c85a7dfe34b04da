package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	dockerengine "github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/docker/dockertest"
	"github.com/drover-cd/drover/internal/swarmtest"
	swarmruntime "github.com/drover-cd/drover/runtime/swarm"
)

// swarmRig is a Swarm of the test's own and a server deploying to it.
type swarmRig struct {
	c    *swarmtest.Cluster
	s    *testServer
	args []string // the server's flags, to start it again
	bin  string   // websvc, static
}

// startSwarm starts a cluster of nodes and a server for it (see swarmServer), with the
// test busybox image on this machine's engine for the pipelines' builds.
func startSwarm(t *testing.T, nodes int, envExtra string) swarmRig {
	t.Helper()
	c := swarmtest.Start(t, swarmtest.Options{Nodes: nodes})
	e := dockertest.Engine(t, dockerengine.Registry{})
	dockertest.BuildBusybox(t, e)
	bin := staticWebsvc(t)
	s, args := swarmServer(t, c, envExtra)
	dockertest.RemoveImagesOf(t, e, strings.TrimPrefix(s.URL, "http://"))
	return swarmRig{c: c, s: s, args: args, bin: bin}
}

// swarmServer starts a server whose registry the cluster's nodes reach over TLS at the
// host's address on the cluster's network, trusted through certs.d, and declares
// staging as an environment on the cluster (envExtra adds to its declaration).
func swarmServer(t *testing.T, c *swarmtest.Cluster, envExtra string) (*testServer, []string) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(c.HostAddr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	hostport := ln.Addr().String()
	ln.Close()
	args := []string{"--tls-listen", hostport, "--advertise", "https://" + hostport, "--health-timeout", "2m"}
	s := startServer(t, t.TempDir(), "", args...)
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
	return s, args
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

// generations lists the cluster's services of Drover, with their replica counts: those
// of service when given, else all.
func generations(t *testing.T, c *swarmtest.Cluster, service ...string) map[string]uint64 {
	t.Helper()
	f := filters.NewArgs(filters.Arg("label", "dev.drover.generation"))
	for _, name := range service {
		f.Add("label", "dev.drover.service="+name)
	}
	list, err := c.Client(0).ServiceList(context.Background(), swarm.ServiceListOptions{Filters: f})
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
	t.Parallel() // it waits on its own dockerd most of the time
	rig := startSwarm(t, 1, "  ephemeral: {base: staging}\n")
	c, s, args, bin := rig.c, rig.s, rig.args, rig.bin

	// A release without an image is refused on a Swarm, saying why.
	git(t, gitRepo(t, servicePipeline(bin, "plain", "p1", "", "")), "push", "-q", s.pushURL("plain"), "main")
	run := s.waitRun("plain", 1, finished)
	if page := s.text("/api/v1/projects/plain/runs/1"); run.Status != "failure" ||
		!strings.Contains(page, "staging runs on a Swarm, whose nodes run images, and plain of 1 has none") {
		t.Errorf("a release without an image on a Swarm: %s\n%s", run.Status, page)
	}

	// And env plan refuses to move an environment running it onto a Swarm.
	if res := s.as(s.Token, "deploy", "plain:1", "--env", "dev", "--force"); res.code != 0 {
		t.Fatalf("deploy plain to dev: %s", res)
	}
	moved := filepath.Join(t.TempDir(), "environments.yml")
	os.WriteFile(moved, []byte(fmt.Sprintf("environments:\n  dev:\n    runtime: swarm\n    swarm: {host: %q}\n", c.Manager())), 0o644)
	if res := s.as(s.Token, "env", "plan", moved); res.code == 0 ||
		!strings.Contains(res.stderr, "dev runs on a Swarm, whose nodes run images, and plain of plain (plain:1) built none") {
		t.Errorf("env plan moving a service without an image onto a Swarm: %s", res)
	}
	if res := s.as(s.Token, "env", "stop", "dev"); res.code != 0 {
		t.Fatalf("env stop dev: %s", res)
	}

	// api tests itself in an ephemeral environment, which runs on the Swarm too, then
	// goes to staging.
	s.pushImageRepo("api", ephemeralAPIPipeline(bin, "api-v1"))
	if run := s.waitRun("api", 1, finished); run.Status != "success" {
		t.Fatalf("api run: %+v\n%s", run, s.log)
	}
	if log := s.text("/api/v1/projects/api/runs/1/steps/e2e/log"); !strings.Contains(log, "api-v1 eph-api-1") {
		t.Errorf("the ephemeral environment did not serve api's image:\n%s", log)
	}
	if gens := generations(t, c, "api"); len(gens) != 1 {
		t.Errorf("api's generations once its run ended: %v, want staging's only (the ephemeral one removed)", gens)
	}

	repo := s.pushImageRepo("web", imagePipeline(bin, "web", "v1", "api"))
	if run := s.waitRun("web", 1, finished); run.Status != "success" {
		t.Fatalf("web run 1: %+v\n%s", run, s.log)
	}
	s.waitBody("web", "staging", "v1 staging")
	if _, nodes := s.waitInstances("web", 2, time.Minute); nodes[0] != c.Nodes[0].Name {
		t.Errorf("instances' nodes: %v, want %s", nodes, c.Nodes[0].Name)
	}
	// web's tasks reach api through API_URL: a route listener of the server that the
	// nodes reach.
	if code, body, err := s.viaProxy("web", "staging", "/up"); code != 200 || body != "api-v1 staging" {
		t.Errorf("web reaching api through API_URL: %d %q %v", code, body, err)
	}
	first := generations(t, c, "web")
	if len(first) != 1 {
		t.Fatalf("generations after the first deploy: %v", first)
	}
	if tokens := s.pullTokens(); len(tokens) != 2 || !strings.HasPrefix(tokens[1], "web/image swarm generation web-staging-") {
		t.Errorf("pull tokens: %v, want one for api/image and one for web/image", tokens)
	}

	// v2: a second generation takes the traffic; the first is kept, with 0 tasks.
	l := s.startLoad("web", "staging", 8)
	s.commitPipeline(repo, "web", imagePipeline(bin, "web", "v2", "api"))
	if run := s.waitRun("web", 2, finished); run.Status != "success" {
		t.Fatalf("web run 2: %+v\n%s", run, s.log)
	}
	s.waitBody("web", "staging", "v2 staging")
	gens := generations(t, c, "web")
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
	if after := generations(t, c, "web"); len(after) != 2 || after[old] != 2 {
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

	// v3 turns unhealthy 3s after it started: within the rollback window, staging goes
	// back to v1 by itself, on v1's kept generation.
	sick := strings.Replace(imagePipeline(bin, "web", "v3", "api"), "> dist/version", "> dist/version && echo 3s > dist/fail-after", 1)
	s.commitPipeline(repo, "web", sick)
	if run := s.waitRun("web", 3, finished); run.Status != "success" {
		t.Fatalf("web run 3: %+v\n%s", run, s.log)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if code, body, _ := s.viaProxy("web", "staging", "/"); code == 200 && body == "v1 staging" && generations(t, c, "web")[old] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v3 was not rolled back to v1's generation: %v\n%s", generations(t, c, "web"),
				s.as(s.Token, "env", "show", "staging").stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if page := s.text("/api/v1/environments/staging"); !strings.Contains(page, "after its switch: rolling back to") {
		t.Errorf("the automatic rollback is not in the service's events:\n%s", page)
	}

	// A developer environment copied from staging runs on the same cluster.
	if res := s.as(s.Token, "env", "up", "alice", "--from", "staging"); res.code != 0 {
		t.Fatalf("env up alice: %s", res)
	}
	s.waitBody("api", "alice", "api-v1 alice")
	if show := s.as(s.Token, "env", "show", "alice").stdout; !strings.Contains(show, "node "+c.Nodes[0].Name) {
		t.Errorf("alice's instances are not tasks on the cluster:\n%s", show)
	}
	if res := s.as(s.Token, "env", "down", "alice"); res.code != 0 {
		t.Fatalf("env down alice: %s", res)
	}
	if gens := generations(t, c, "api"); len(gens) != 1 {
		t.Errorf("api's generations after env down alice: %v, want staging's only", gens)
	}

	// A restarted server adopts the live generation: its tasks go on as they were.
	before := taskIDs(t, c)
	s.stop(syscall.SIGTERM)
	s.start(args...)
	s.waitBody("web", "staging", "v1 staging")
	s.waitInstances("web", 2, time.Minute)
	if after := taskIDs(t, c); !slices.Equal(after, before) {
		t.Errorf("after a restart the tasks are %v, were %v", after, before)
	}

	// Rolling: the live generation is updated in place, start-first; no new one, and
	// the kept one stays as it was.
	if res := s.as(s.Token, "deploy", "web:r2", "--env", "staging", "--strategy", "rolling"); res.code != 0 {
		t.Fatalf("rolling deploy: %s", res)
	}
	s.waitBody("web", "staging", "v2 staging")
	if after := generations(t, c, "web"); len(after) != 2 || after[old] != 2 {
		t.Errorf("generations after a rolling deploy: %v; want %s updated in place beside the kept one", after, old)
	}

	// Stopping the environment removes its generations and revokes their pull tokens.
	if res := s.as(s.Token, "env", "stop", "staging"); res.code != 0 {
		t.Fatalf("env stop: %s", res)
	}
	if gens := generations(t, c, "web"); len(gens) != 0 {
		t.Errorf("generations after env stop: %v", gens)
	}
	if tokens := s.pullTokens(); len(tokens) != 0 {
		t.Errorf("pull tokens after env stop: %v", tokens)
	}
}

// A 3-node Swarm: tasks spread over the zones, five blue-green deploys under load lose
// no request, and a lost worker's tasks come back on the others.
func TestSwarmThreeNodes(t *testing.T) {
	t.Parallel()
	rig := startSwarm(t, 3, "    services:\n      web: {replicas: 4, placement: {spread: node.labels.zone}}\n")
	c, s, bin := rig.c, rig.s, rig.bin

	repo := s.pushImageRepo("web", imagePipeline(bin, "web", "v1", ""))
	if run := s.waitRun("web", 1, finished); run.Status != "success" {
		t.Fatalf("web run 1: %+v\n%s", run, s.log)
	}
	_, nodes := s.waitInstances("web", 4, time.Minute)
	show := s.as(s.Token, "env", "show", "staging").stdout
	for _, n := range c.Nodes {
		if !slices.Contains(nodes, n.Name) {
			t.Errorf("4 tasks spread over the zones: %s has none (%v)", n.Name, nodes)
		}
		if !strings.Contains(show, "node "+n.Name) {
			t.Errorf("drover env show does not name %s:\n%s", n.Name, show)
		}
	}
	s.commitPipeline(repo, "web", imagePipeline(bin, "web", "v2", ""))
	if run := s.waitRun("web", 2, finished); run.Status != "success" {
		t.Fatalf("web run 2: %+v\n%s", run, s.log)
	}
	s.waitBody("web", "staging", "v2 staging")

	// A request in flight to a task whose node is lost waits until the task's checks
	// fail (2 probes that time out after 2s); the clients wait up to 10s, less than
	// most clients' own timeouts.
	l := s.startLoadWith(&http.Client{Timeout: 10 * time.Second}, "web", "staging", 50)
	for i, ref := range []string{"r1", "r2", "r1", "r2", "r1"} {
		start := time.Now()
		if res := s.as(s.Token, "deploy", "web:"+ref, "--env", "staging"); res.code != 0 {
			t.Fatalf("deploy %d (%s): %s", i+1, ref, res)
		}
		t.Logf("blue-green deploy %d to %s took %s", i+1, ref, time.Since(start).Round(time.Millisecond))
	}
	s.waitBody("web", "staging", "v1 staging")
	deployFailed, deployOK := l.fail.Load(), l.ok.Load()
	if deployFailed != 0 {
		t.Errorf("5 blue-green deploys under load: %d ok, %d failed %v", deployOK, deployFailed, l.errs)
	}

	// Beside it, the same images swapped by Swarm alone: docker service update
	// --update-order start-first of a 4-task service (for BENCHMARKS.md).
	t.Logf("docker service update --update-order start-first of 4 tasks took %s", swarmUpdate(t, c, s))

	// A worker is lost: its link goes down and its daemon and containers are killed.
	lost := c.Nodes[2].Name
	c.LoseNode(2)
	start := time.Now()
	var back []string
	for time.Since(start) < 3*time.Minute {
		nodes, healthy := s.swarmInstances("web")
		if len(nodes) == 4 && healthy == 4 && !slices.Contains(nodes, lost) {
			back = nodes
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	recovered := time.Since(start)
	time.Sleep(time.Second)
	l.end()
	lossFailed := l.fail.Load() - deployFailed
	t.Logf("node lost: 4 healthy tasks again after %s on %v; %d requests failed meanwhile of %d (errors: %v)",
		recovered.Round(100*time.Millisecond), back, lossFailed, l.ok.Load()-deployOK+lossFailed, l.errs)
	if back == nil {
		t.Fatalf("the lost node's tasks did not come back on the others in 3m:\n%s", s.as(s.Token, "env", "show", "staging").stdout)
	}
	// Requests the proxy had sent to the lost node's tasks are cut once their checks
	// fail, and sent to another task (proxy.Abort).
	if lossFailed != 0 {
		t.Errorf("%d requests failed while the node was lost", lossFailed)
	}
}

// swarmUpdate creates a plain Swarm service of v1's image with 4 tasks and returns how
// long Swarm alone takes to move it to v2's image, start-first, one task at a time:
// what docker service update --update-order start-first --image does.
func swarmUpdate(t *testing.T, c *swarmtest.Cluster, s *testServer) time.Duration {
	t.Helper()
	ctx := context.Background()
	cli := c.Client(0)
	list, err := cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", "dev.drover.generation"))})
	if err != nil || len(list) != 2 {
		t.Fatalf("the two generations: %v (%v)", list, err)
	}
	images := []string{list[0].Spec.TaskTemplate.ContainerSpec.Image, list[1].Spec.TaskTemplate.ContainerSpec.Image}
	registry := strings.SplitN(images[0], "/", 2)[0]
	auth := swarmruntime.RegistryAuth(registry, "drover", s.mint("--machine", "pull", "--repository", "web/image"))
	n := uint64(4)
	spec := swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "plain-web"},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: images[0]}},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &n}},
		EndpointSpec: &swarm.EndpointSpec{Ports: []swarm.PortConfig{{TargetPort: 8080, PublishMode: swarm.PortConfigPublishModeHost}}},
		UpdateConfig: &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst}}
	created, err := cli.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{EncodedRegistryAuth: auth})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ServiceRemove(ctx, created.ID)
	running := func() int {
		tasks, _ := cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", created.ID),
			filters.Arg("desired-state", "running"))})
		n := 0
		for _, task := range tasks {
			if task.Status.State == swarm.TaskStateRunning {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(2 * time.Minute); running() < 4; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("plain-web did not start 4 tasks")
		}
	}
	svc, _, err := cli.ServiceInspectWithRaw(ctx, created.ID, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	next := svc.Spec
	next.TaskTemplate.ContainerSpec.Image = images[1]
	start := time.Now()
	if _, err := cli.ServiceUpdate(ctx, created.ID, svc.Version, next, swarm.ServiceUpdateOptions{EncodedRegistryAuth: auth}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		svc, _, err := cli.ServiceInspectWithRaw(ctx, created.ID, swarm.ServiceInspectOptions{})
		if err == nil && svc.UpdateStatus != nil && svc.UpdateStatus.State == swarm.UpdateStateCompleted {
			return time.Since(start)
		}
	}
	t.Fatal("plain-web's update did not complete in 2m")
	return 0
}

// taskIDs lists the tasks of Drover's generations that Swarm keeps running.
func taskIDs(t *testing.T, c *swarmtest.Cluster) []string {
	t.Helper()
	var out []string
	for name := range generations(t, c) {
		tasks, err := c.Client(0).TaskList(context.Background(), swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("desired-state", "running"), filters.Arg("service", name))})
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			out = append(out, task.ID)
		}
	}
	if len(out) == 0 {
		t.Fatal("no task of Drover's generations runs")
	}
	slices.Sort(out)
	return out
}
