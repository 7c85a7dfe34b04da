package swarmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/docker/docker/client"
)

// daemonConfig is node i's daemon.json: a storage driver that needs no kernel support,
// a default bridge and address pools of its own, and an MTU that leaves room for the
// overlay networks' encapsulation.
func daemonConfig(i int) ([]byte, error) {
	return json.MarshalIndent(map[string]any{
		"storage-driver": "vfs",
		"bip":            fmt.Sprintf("172.31.%d.1/24", i),
		"mtu":            1400,
		"default-address-pools": []map[string]any{
			{"base": fmt.Sprintf("172.%d.0.0/16", 15+i), "size": 24},
		},
	}, "", "  ")
}

// startEngine starts node n's dockerd in its namespace and waits until it answers.
func (c *Cluster) startEngine(ctx context.Context, n *Node) error {
	if err := os.Mkdir(n.dir, 0o700); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	conf, err := daemonConfig(n.index)
	if err != nil {
		return err
	}
	confPath := filepath.Join(n.dir, "daemon.json")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	logFile, err := os.Create(filepath.Join(n.dir, "dockerd.log"))
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	defer logFile.Close()
	// nsenter enters only the network namespace: "ip netns exec" would also remount
	// /sys, hiding the cgroup hierarchies dockerd needs. It then execs dockerd, so the
	// command's pid is dockerd's.
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+n.netns, "dockerd",
		"--config-file", confPath,
		"--data-root", filepath.Join(n.dir, "data"),
		"--exec-root", filepath.Join(n.dir, "exec"),
		"--pidfile", filepath.Join(n.dir, "pid"),
		"-H", n.Host,
		"--containerd-namespace", n.netns,
		"--containerd-plugins-namespace", n.netns+"p",
		"--cgroup-parent", n.netns,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A group of its own: a ^C meant for the test does not reach the engine directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start dockerd: %w", n.Name, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(n.exited)
	}()
	n.client, err = client.NewClientWithOpts(client.WithHost(n.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return waitEngine(ctx, n)
}

// waitEngine waits until n's engine answers, for up to a minute.
func waitEngine(ctx context.Context, n *Node) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var err error
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = n.client.Ping(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("%s: dockerd exited (%v): see %s", n.Name, n.cmd.ProcessState, filepath.Join(n.dir, "dockerd.log"))
		case <-ctx.Done():
			return fmt.Errorf("%s: dockerd does not answer at %s: %w (last: %v)", n.Name, n.Host, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
