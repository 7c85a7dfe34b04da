package swarmtest

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/drover-cd/drover/internal/proctest"
)

func TestNames(t *testing.T) {
	id := newID(4194304)
	if pid, ok := creator(id); !ok || pid != 4194304 {
		t.Errorf("creator(%q) = %d, %v; want 4194304", id, pid, ok)
	}
	if got, ok := idOf(nodeNetns(id, 12)); !ok || got != id {
		t.Errorf("idOf(%q) = %q, %v; want %q", nodeNetns(id, 12), got, ok, id)
	}
	for _, name := range []string{hostVeth(id), switchPort(12), "eth0", "br0"} {
		if len(name) > 15 {
			t.Errorf("interface name %q is longer than 15 characters", name)
		}
	}
	if sock := "unix://" + filepath.Join(clusterDir(id), "n12", "sock"); len(sock) > 100 {
		t.Errorf("socket path %q too long", sock)
	}
}

// TestCluster forms a cluster of three, loses a node of it and closes it.
func TestCluster(t *testing.T) {
	c := Start(t, Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("formed", func(t *testing.T) {
		nodes, err := c.Client(0).NodeList(ctx, swarm.NodeListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 3 {
			t.Fatalf("the manager lists %d nodes, want 3", len(nodes))
		}
		for i, n := range c.Nodes {
			want := map[string]string{"node1": "zone-a", "node2": "zone-b", "node3": "zone-c"}
			if n.Name != "node"+string(rune('1'+i)) {
				t.Errorf("node %d is named %q", i, n.Name)
			}
			node, _, err := c.Client(0).NodeInspectWithRaw(ctx, n.ID)
			if err != nil {
				t.Fatal(err)
			}
			if node.Spec.Name != n.Name || node.Spec.Labels["zone"] != want[n.Name] || n.Zone != want[n.Name] {
				t.Errorf("node %s: spec name %q, zone %q; want zone %q", n.Name, node.Spec.Name, node.Spec.Labels["zone"], want[n.Name])
			}
			if node.Status.State != swarm.NodeStateReady {
				t.Errorf("node %s is %s", n.Name, node.Status.State)
			}
			if got := node.Status.Addr; got != n.Addr {
				t.Errorf("node %s has address %s in the swarm, want %s", n.Name, got, n.Addr)
			}
			if mgr := node.ManagerStatus != nil; mgr != n.Manager || mgr != (i == 0) {
				t.Errorf("node %s: manager %v", n.Name, mgr)
			}
		}
		if c.Manager() != c.Nodes[0].Host || !strings.HasPrefix(c.Manager(), "unix:///") {
			t.Errorf("Manager() = %q", c.Manager())
		}
	})

	t.Run("host reaches nodes", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", c.Nodes[0].Addr+":2377", 5*time.Second)
		if err != nil {
			t.Fatalf("dial the manager from the host: %v", err)
		}
		conn.Close()
		if !strings.HasSuffix(c.HostAddr, ".1") || !strings.HasPrefix(c.HostAddr, "10.") {
			t.Errorf("HostAddr = %q", c.HostAddr)
		}
	})

	t.Run("lose node", func(t *testing.T) {
		lost := c.Nodes[2]
		cli := c.Client(2)
		ctrPid := runSleeper(ctx, t, cli)
		dockerd := lost.cmd.Process.Pid
		if err := c.LoseNode(2); err != nil {
			t.Fatal(err)
		}
		if err := c.LoseNode(2); err != nil {
			t.Fatalf("losing a lost node again: %v", err)
		}
		for _, pid := range []int{dockerd, ctrPid} {
			if proctest.Alive(pid) {
				t.Errorf("process %d of the lost node still runs", pid)
			}
		}
		if pids := netnsPids(ctx, lost.netns); len(pids) > 0 {
			t.Errorf("processes %v still run in the lost node's namespace", pids)
		}
		if _, err := net.DialTimeout("tcp", c.Nodes[0].Addr+":2377", 2*time.Second); err != nil {
			t.Errorf("the host lost the manager too: %v", err)
		}
		began := time.Now()
		for {
			node, _, err := c.Client(0).NodeInspectWithRaw(ctx, lost.ID)
			if err != nil {
				t.Fatal(err)
			}
			if node.Status.State == swarm.NodeStateDown {
				t.Logf("the manager saw %s down after %v", lost.Name, time.Since(began).Round(100*time.Millisecond))
				break
			}
			if time.Since(began) > time.Minute {
				t.Fatalf("the manager still lists %s as %s a minute after losing it", lost.Name, node.Status.State)
			}
			time.Sleep(250 * time.Millisecond)
		}
	})

	t.Run("close", func(t *testing.T) {
		began := time.Now()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("closed in %v", time.Since(began).Round(100*time.Millisecond))
		if err := c.Close(); err != nil {
			t.Errorf("closing again: %v", err)
		}
		assertGone(t, c.id)
	})
}

// TestSweep crashes a cluster of two managers (its creator is made to look dead) and
// sweeps it away.
func TestSweep(t *testing.T) {
	c := Start(t, Options{Nodes: 2, Managers: 2})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range c.Nodes {
		node, _, err := c.Client(1).NodeInspectWithRaw(ctx, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !n.Manager || node.ManagerStatus == nil || node.ManagerStatus.Reachability != swarm.ReachabilityReachable {
			t.Errorf("%s is not a reachable manager: %+v", n.Name, node.ManagerStatus)
		}
	}
	ctrPid := runSleeper(ctx, t, c.Client(0))
	dockerd := c.Nodes[0].cmd.Process.Pid
	err := sweep(func(id string) bool {
		pid, ok := creator(id)
		return id != c.id && ok && proctest.Running(pid)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{dockerd, ctrPid} {
		if proctest.Alive(pid) {
			t.Errorf("process %d of the swept cluster still runs", pid)
		}
	}
	assertGone(t, c.id)
	if err := Sweep(); err != nil {
		t.Errorf("sweeping again: %v", err)
	}
}

// assertGone checks that nothing of cluster id is left.
func assertGone(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ns := clusterNetns(ctx, id); len(ns) > 0 {
		t.Errorf("namespaces left: %v", ns)
	}
	if _, err := os.Stat(clusterDir(id)); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory is left (%v)", err)
	}
	if exists("/sys/class/net/" + hostVeth(id)) {
		t.Errorf("the host's veth %s is left", hostVeth(id))
	}
	if groups, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", namePrefix+id+"-*")); len(groups) > 0 {
		t.Errorf("cgroups left: %v", groups)
	}
	if m, _ := mountsUnder(clusterDir(id)); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if cmd, err := os.ReadFile(p); err == nil && bytes.Contains(cmd, []byte(clusterDir(id)+"/")) {
			t.Errorf("process %s left: %s", filepath.Base(filepath.Dir(p)), bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
		}
	}
}

// runSleeper runs a container that sleeps on the engine and returns its init pid. Its
// image is imported from the host's static busybox: the engines have no registry.
func runSleeper(ctx context.Context, t *testing.T, cli *client.Client) int {
	t.Helper()
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no static busybox to make an image of: %v", err)
	}
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))})
	tw.Write(bin)
	tw.Close()
	out, err := cli.ImageImport(ctx, image.ImportSource{Source: &rootfs, SourceName: "-"}, "swarmtest/busybox:1", image.ImportOptions{})
	if err != nil {
		t.Fatalf("import busybox: %v", err)
	}
	io.Copy(io.Discard, out)
	out.Close()
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: "swarmtest/busybox:1", Cmd: []string{"/bin/busybox", "sleep", "600"}}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := cli.ContainerInspect(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Pid <= 0 || !proctest.Running(info.State.Pid) {
		t.Fatalf("the container's init (pid %d) does not run", info.State.Pid)
	}
	return info.State.Pid
}

func TestTrustCA(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write under " + certsDir)
	}
	hostport := "swarmtest-" + newID(os.Getpid()) + ":5000"
	file := filepath.Join(certsDir, hostport, "ca.crt")
	t.Run("trust", func(t *testing.T) {
		new(Cluster).TrustCA(t, hostport, []byte("PEM"))
		if data, err := os.ReadFile(file); err != nil || string(data) != "PEM" {
			t.Errorf("%s holds %q (%v)", file, data, err)
		}
	})
	if exists(filepath.Dir(file)) {
		t.Errorf("%s is left after the test", filepath.Dir(file))
	}
}
