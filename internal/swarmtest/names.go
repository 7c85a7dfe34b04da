package swarmtest

import (
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
)

// The names a cluster gives what it creates. A cluster's id is its creator's pid in
// base 36, "_" and four random characters; every name below derives from it.
const (
	// namePrefix starts the name of every namespace and cgroup parent of a cluster.
	namePrefix = "drvt-"
	// dirPrefix starts the path of a cluster's directory. It is short because the
	// engines' unix sockets live under it and their paths are limited to 108 bytes.
	dirPrefix = "/tmp/drover-swarm-"
	// cgroupRoot is where the cgroup v1 hierarchies are mounted.
	cgroupRoot = "/sys/fs/cgroup"
)

// newID is a fresh cluster id for a cluster made by process pid.
func newID(pid int) string {
	return strconv.FormatInt(int64(pid), 36) + "_" + strings.ToLower(rand.Text()[:4])
}

// creator is the pid of the process that made the cluster with id.
func creator(id string) (int, bool) {
	pid, _, ok := strings.Cut(id, "_")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(pid, 36, 32)
	return int(n), err == nil && n > 0
}

// idOf is the cluster id in the name of one of its namespaces or cgroup parents.
func idOf(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "-")
	return id, ok
}

func clusterDir(id string) string { return dirPrefix + id }

// switchNetns is the namespace holding the bridge every node and the host join.
func switchNetns(id string) string { return namePrefix + id + "-sw" }

// nodeNetns is node i's namespace (1-based), also the node's cgroup parent.
func nodeNetns(id string, i int) string { return fmt.Sprintf("%s%s-n%d", namePrefix, id, i) }

// hostVeth is the host's end of its veth pair into the switch: at most 11 characters.
func hostVeth(id string) string { return "dh" + strings.ReplaceAll(id, "_", "") }

// switchPort is the switch's end of node i's veth pair.
func switchPort(i int) string { return fmt.Sprintf("n%d", i) }
