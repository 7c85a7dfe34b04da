// Package swarmtest gives tests Docker Swarm clusters of real Docker Engines, each
// engine in a network namespace of its own, so that a test can run services across
// several nodes, watch the swarm schedule and reschedule them, and take a node away.
//
// The machine's own engine is never touched: every engine of a cluster has its own
// data root, exec root, socket, containerd and cgroup parent, and its files live under
// a short directory of the cluster's own under /tmp.
//
// The namespaces hang off one "switch" namespace holding a Linux bridge; the host joins
// that bridge by a veth pair as .1 of a /24 picked from 10.0.0.0/8, the nodes as .2,
// .3, ... Like dockertest, Start skips the test when it cannot run a cluster (not root,
// no dockerd, nsenter or ip), unless DROVER_REQUIRE_DOCKER is set: then it fails.
//
// Every name a cluster creates starts with "drvt-" and an id that encodes the pid of
// the process that created it, so Sweep (which Start calls) can remove what a crashed
// test left behind.
package swarmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/drover-cd/drover/docker/dockertest"
)

// Options say what cluster Start makes.
type Options struct {
	// Nodes is how many engines the cluster has, 1 to MaxNodes; 0 means 3.
	Nodes int
	// Managers is how many of them are swarm managers (the first ones); 0 means 1.
	Managers int
	// HostsOnly makes the namespaces and their network without engines: hosts for
	// programs the test starts in them itself (Cluster.Exec), such as build agents.
	HostsOnly bool
}

// MaxNodes is the most nodes a cluster can have.
const MaxNodes = 15

// Node is one engine of a cluster.
type Node struct {
	// Name is the node's name in the swarm: "node1", "node2", ...
	Name string
	// Zone is the value of the node's "zone" label: "zone-a", "zone-b", ...
	Zone string
	// Addr is the node's IP address on the cluster's subnet.
	Addr string
	// Host is the engine's address for a Docker client: "unix:///...".
	Host string
	// ID is the node's ID in the swarm.
	ID string
	// Manager tells whether the node is a swarm manager.
	Manager bool

	index  int    // 1-based
	dir    string // the node's files
	netns  string
	client *client.Client
	cmd    *exec.Cmd
	exited chan struct{} // closed when dockerd has exited and been reaped
	lost   bool
}

// Cluster is a running swarm of engines.
type Cluster struct {
	// Nodes are the cluster's engines; Nodes[0] is the manager that made the swarm.
	Nodes []*Node
	// HostAddr is the host's address on the cluster's subnet: where the nodes (and
	// containers on them, through the nodes' NAT) reach a server on the host.
	HostAddr string

	id     string // the short id in every name: <creator pid, base 36>_<random>
	dir    string
	prefix string // of the /24: "10.a.b."

	mu     sync.Mutex
	closed bool
}

// Start starts a cluster for t and removes it when t ends. When the test fails, the
// end of every engine's log is printed.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		dockertest.Skip(t, "swarm test clusters need root")
	}
	for _, bin := range []string{"dockerd", "nsenter", "ip"} {
		if o.HostsOnly && bin != "ip" {
			continue
		}
		if _, err := exec.LookPath(bin); err != nil {
			dockertest.Skip(t, "swarm test clusters need "+bin+": "+err.Error())
		}
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Managers == 0 {
		o.Managers = 1
	}
	if o.Nodes < 1 || o.Nodes > MaxNodes || o.Managers < 1 || o.Managers > o.Nodes {
		t.Fatalf("swarmtest: %d nodes with %d managers: want 1 to %d nodes, 1 to all managers", o.Nodes, o.Managers, MaxNodes)
	}
	if err := Sweep(); err != nil {
		t.Logf("swarmtest: remove leftovers of earlier runs: %v", err)
	}
	c := newCluster()
	t.Cleanup(func() {
		if t.Failed() {
			c.logTails(t)
		}
		if err := c.Close(); err != nil {
			t.Errorf("swarmtest: tear down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	began := time.Now()
	if err := c.start(ctx, o); err != nil {
		t.Fatalf("swarmtest: start a cluster of %d: %v", o.Nodes, err)
	}
	t.Logf("swarmtest: cluster %s of %d nodes on %s0/24 up in %v", c.id, o.Nodes, c.prefix, time.Since(began).Round(100*time.Millisecond))
	return c
}

func newCluster() *Cluster {
	id := newID(os.Getpid())
	return &Cluster{id: id, dir: clusterDir(id)}
}

// start builds the network, starts the engines and forms the swarm.
func (c *Cluster) start(ctx context.Context, o Options) error {
	if err := os.Mkdir(c.dir, 0o700); err != nil {
		return fmt.Errorf("make the cluster's directory: %w", err)
	}
	prefix, err := pickSubnet(ctx)
	if err != nil {
		return err
	}
	c.prefix = prefix
	c.HostAddr = prefix + "1"
	for i := 1; i <= o.Nodes; i++ {
		n := &Node{
			Name:    fmt.Sprintf("node%d", i),
			Zone:    "zone-" + string(rune('a'+i-1)),
			Addr:    fmt.Sprintf("%s%d", prefix, i+1),
			Manager: i <= o.Managers,
			index:   i,
			dir:     filepath.Join(c.dir, fmt.Sprintf("n%d", i)),
			netns:   nodeNetns(c.id, i),
		}
		n.Host = "unix://" + filepath.Join(n.dir, "sock")
		c.Nodes = append(c.Nodes, n)
	}
	if err := c.network(ctx); err != nil {
		return err
	}
	if o.HostsOnly {
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		wg.Go(func() { errs[i] = c.startEngine(ctx, n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.formSwarm(ctx)
}

// Exec is the command line that runs argv in node i's network namespace (0-based).
func (c *Cluster) Exec(i int, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", c.Nodes[i].netns}, argv...)
}

// Client is a client of node i's engine (0-based), valid until the cluster closes.
func (c *Cluster) Client(i int) *client.Client { return c.Nodes[i].client }

// Manager is the Docker host address of the manager that made the swarm.
func (c *Cluster) Manager() string { return c.Nodes[0].Host }

// Close tears the cluster down whatever state it is in: it stops every engine (SIGTERM,
// then SIGKILL for whatever still runs after 15 s, containers included), unmounts and
// removes the cluster's directory and deletes its namespaces and interfaces. Closing
// again does nothing.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var extra []int
	for _, n := range c.Nodes {
		if n.cmd == nil || n.lost {
			continue
		}
		extra = append(extra, containerPids(ctx, n.client)...)
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	stopBy := time.After(15 * time.Second)
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		select {
		case <-n.exited:
		case <-stopBy:
		}
	}
	for _, n := range c.Nodes {
		if n.client != nil {
			n.client.Close()
		}
	}
	return teardown(ctx, c.id, extra)
}

// logTails logs the end of every engine's log.
func (c *Cluster) logTails(t testing.TB) {
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue // a host without an engine
		}
		data, err := os.ReadFile(filepath.Join(n.dir, "dockerd.log"))
		if err != nil {
			t.Logf("swarmtest: %s's log: %v", n.Name, err)
			continue
		}
		lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
		lines = lines[max(0, len(lines)-40):]
		t.Logf("swarmtest: the end of %s's dockerd log:\n%s", n.Name, strings.TrimSpace(string(bytes.Join(lines, []byte("\n")))))
	}
}
