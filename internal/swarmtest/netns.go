package swarmtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
)

// pickSubnet picks a /24 of 10.128.0.0/9 that no route and no address of the host
// covers, and returns its first three octets with the dot: "10.a.b.". It stays out of
// 10.0.0.0/9 where the swarm's own overlay networks get their subnets.
func pickSubnet(ctx context.Context) (string, error) {
	taken, err := hostNets(ctx)
	if err != nil {
		return "", err
	}
	for range 100 {
		prefix := fmt.Sprintf("10.%d.%d.", 128+rand.IntN(127), rand.IntN(256))
		_, cand, _ := net.ParseCIDR(prefix + "0/24")
		if !overlaps(cand, taken) {
			return prefix, nil
		}
	}
	return "", errors.New("no free /24 in 10.128.0.0/9")
}

// hostNets are the networks of the host's IPv4 routes (in any table) and addresses,
// the default route left out.
func hostNets(ctx context.Context) ([]*net.IPNet, error) {
	out, err := exec.CommandContext(ctx, "ip", "-4", "-o", "route", "show", "table", "all").Output()
	if err != nil {
		return nil, fmt.Errorf("list the host's routes: %w", err)
	}
	var nets []*net.IPNet
	for _, f := range strings.Fields(string(out)) {
		if !strings.Contains(f, "/") {
			f += "/32"
		}
		if _, n, err := net.ParseCIDR(f); err == nil && n.IP.To4() != nil {
			if ones, _ := n.Mask.Size(); ones > 0 {
				nets = append(nets, n)
			}
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list the host's addresses: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			nets = append(nets, &net.IPNet{IP: n.IP.Mask(n.Mask), Mask: n.Mask})
		}
	}
	return nets, nil
}

func overlaps(n *net.IPNet, others []*net.IPNet) bool {
	for _, o := range others {
		if o.Contains(n.IP) || n.Contains(o.IP) {
			return true
		}
	}
	return false
}

// network makes the switch namespace with its bridge, joins the host to it and makes
// every node's namespace joined to it.
func (c *Cluster) network(ctx context.Context) error {
	sw, hv := switchNetns(c.id), hostVeth(c.id)
	cmds := [][]string{
		{"netns", "add", sw},
		{"-n", sw, "link", "set", "lo", "up"},
		{"-n", sw, "link", "add", "br0", "type", "bridge"},
		{"-n", sw, "link", "set", "br0", "up"},
		{"link", "add", hv, "type", "veth", "peer", "name", "host", "netns", sw},
		{"-n", sw, "link", "set", "host", "master", "br0", "up"},
		{"addr", "add", c.HostAddr + "/24", "dev", hv},
		{"link", "set", hv, "up"},
	}
	for _, n := range c.Nodes {
		port := switchPort(n.index)
		cmds = append(cmds,
			[]string{"netns", "add", n.netns},
			[]string{"-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", n.netns},
			[]string{"-n", sw, "link", "set", port, "master", "br0", "up"},
			[]string{"-n", n.netns, "link", "set", "lo", "up"},
			[]string{"-n", n.netns, "addr", "add", n.Addr + "/24", "dev", "eth0"},
			[]string{"-n", n.netns, "link", "set", "eth0", "up"},
			[]string{"-n", n.netns, "route", "add", "default", "via", c.HostAddr},
		)
	}
	for _, args := range cmds {
		if err := ip(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// ip runs the ip command with args.
func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
