package swarmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/drover-cd/drover/internal/proctest"
)

// containerPids are the init pids of the containers running on an engine. Killing
// them ends their pid namespaces; killing the engine alone would leave them running.
func containerPids(ctx context.Context, cli *client.Client) []int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := cli.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return nil
	}
	var pids []int
	for _, s := range list {
		if c, err := cli.ContainerInspect(ctx, s.ID); err == nil && c.State != nil && c.State.Pid > 0 {
			pids = append(pids, c.State.Pid)
		}
	}
	return pids
}

// nodePids are the processes of node (its short name: "n2") of cluster id: its dockerd
// and containerd by their pidfiles, everything in its network namespace (shims
// included) and everything in its cgroup parent (containers).
func nodePids(ctx context.Context, id, node string) []int {
	var pids []int
	dir := filepath.Join(clusterDir(id), node)
	for _, f := range []string{filepath.Join(dir, "pid"), filepath.Join(dir, "exec", "containerd", "containerd.pid")} {
		if pid, ok := pidFile(f, clusterDir(id)+"/"); ok {
			pids = append(pids, pid)
		}
	}
	pids = append(pids, netnsPids(ctx, namePrefix+id+"-"+node)...)
	groups, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", namePrefix+id+"-"+node))
	for _, g := range groups {
		filepath.WalkDir(g, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			pids = append(pids, readPids(path)...)
			return nil
		})
	}
	return pids
}

// pidFile is the pid in file, if the process runs with a command line that mentions
// dir (so that a pid reused by another process is left alone).
func pidFile(file, dir string) (int, bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return pid, err == nil && strings.Contains(string(cmdline), dir)
}

// netnsPids are the processes in the named network namespace.
func netnsPids(ctx context.Context, name string) []int {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output()
	if err != nil {
		return nil
	}
	return parsePids(string(out))
}

func readPids(file string) []int {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	return parsePids(string(data))
}

func parsePids(s string) []int {
	var pids []int
	for _, f := range strings.Fields(s) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killAll sends SIGKILL to the processes collect returns and to extra until none
// runs, for up to 15 s. collect is asked again each round: a dying engine may still
// start something.
func killAll(ctx context.Context, collect func() []int, extra []int) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		var alive []int
		for _, pid := range append(collect(), extra...) {
			if pid > 1 && pid != os.Getpid() && proctest.Running(pid) && !slices.Contains(alive, pid) {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 {
			return nil
		}
		for _, pid := range alive {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes %v still run after SIGKILL: %w", alive, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Cut takes node i's link to the others down (a partition); Mend brings it back. Its
// processes go on running.
func (c *Cluster) Cut(i int) error { return c.link(i, "down") }

// Mend brings node i's link back up after Cut.
func (c *Cluster) Mend(i int) error { return c.link(i, "up") }

func (c *Cluster) link(i int, state string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ip(ctx, "-n", switchNetns(c.id), "link", "set", switchPort(c.Nodes[i].index), state)
}

// KillHost kills every process in node i's namespace with SIGKILL, as a crash of the
// machine would, leaving its link up: for hosts of Options.HostsOnly.
func (c *Cluster) KillHost(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return killAll(ctx, func() []int { return netnsPids(ctx, c.Nodes[i].netns) }, nil)
}

// LoseNode takes node i (0-based) away as a crash would: its link to the others goes
// down, then its engine, containerd, shims and every container it ran are killed with
// SIGKILL. The managers then see the node go down. Losing a lost node does nothing.
func (c *Cluster) LoseNode(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.Nodes[i]
	if n.lost || c.closed {
		return nil
	}
	n.lost = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ip(ctx, "-n", switchNetns(c.id), "link", "set", switchPort(n.index), "down"); err != nil {
		return fmt.Errorf("lose %s: %w", n.Name, err)
	}
	var extra []int
	if n.client != nil {
		extra = containerPids(ctx, n.client)
	}
	node := fmt.Sprintf("n%d", n.index)
	if err := killAll(ctx, func() []int { return nodePids(ctx, c.id, node) }, extra); err != nil {
		return fmt.Errorf("lose %s: %w", n.Name, err)
	}
	return nil
}

// teardown removes everything of cluster id, whatever state it is in: it kills its
// processes (and extra), unmounts and removes its directory, and deletes its cgroups,
// namespaces and the host's veth.
func teardown(ctx context.Context, id string, extra []int) error {
	dir := clusterDir(id)
	var errs []error
	namespaces := clusterNetns(ctx, id)
	killErr := killAll(ctx, func() []int {
		var pids []int
		for _, node := range clusterParts(id, namespaces) {
			pids = append(pids, nodePids(ctx, id, node)...)
		}
		return pids
	}, extra)
	errs = append(errs, killErr)
	if err := unmountUnder(dir); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("remove the cluster's directory: %w", err))
	}
	if killErr == nil {
		errs = append(errs, removeCgroups(id))
	}
	for _, ns := range namespaces {
		errs = append(errs, ip(ctx, "netns", "delete", ns))
	}
	// The kernel removes the host's end itself once the switch namespace is gone, but
	// not at once: it may vanish between the look and the delete.
	if exists("/sys/class/net/" + hostVeth(id)) {
		if err := ip(ctx, "link", "delete", hostVeth(id)); err != nil && exists("/sys/class/net/"+hostVeth(id)) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down cluster %s: %w", id, err)
	}
	return nil
}

// clusterNetns are the network namespaces of cluster id.
func clusterNetns(ctx context.Context, id string) []string {
	var names []string
	for _, ns := range allNetns(ctx) {
		if strings.HasPrefix(ns, namePrefix+id+"-") {
			names = append(names, ns)
		}
	}
	return names
}

// allNetns are the names of the host's named network namespaces.
func allNetns(ctx context.Context) []string {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// clusterParts are the short names ("sw", "n1", ...) of the parts of cluster id that
// have a namespace, a directory or a cgroup parent.
func clusterParts(id string, namespaces []string) []string {
	var parts []string
	add := func(p string) {
		if p != "" && !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	for _, ns := range namespaces {
		add(strings.TrimPrefix(ns, namePrefix+id+"-"))
	}
	dirs, _ := os.ReadDir(clusterDir(id))
	for _, d := range dirs {
		if d.IsDir() {
			add(d.Name())
		}
	}
	groups, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", namePrefix+id+"-*"))
	for _, g := range groups {
		add(strings.TrimPrefix(filepath.Base(g), namePrefix+id+"-"))
	}
	return parts
}

// removeCgroups removes the cgroup parents of cluster id in every hierarchy, and the
// cgroups under them.
func removeCgroups(id string) error {
	groups, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", namePrefix+id+"-*"))
	var errs []error
	for _, g := range groups {
		var dirs []string
		filepath.WalkDir(g, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for _, d := range slices.Backward(dirs) {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
