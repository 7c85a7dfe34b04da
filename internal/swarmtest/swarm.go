package swarmtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// swarmPort is the swarm's control port on every node.
const swarmPort = ":2377"

// formSwarm makes the swarm on the first node, joins the others to it, waits until all
// are ready and names and labels them.
func (c *Cluster) formSwarm(ctx context.Context) error {
	mgr := c.Nodes[0]
	_, err := mgr.client.SwarmInit(ctx, swarm.InitRequest{
		ListenAddr:    mgr.Addr + swarmPort,
		AdvertiseAddr: mgr.Addr + swarmPort,
		// Out of the cluster's own subnets (10.128.0.0/9), so that containers on
		// overlay networks still reach HostAddr.
		DefaultAddrPool: []string{"10.0.0.0/9"},
		SubnetSize:      24,
	})
	if err != nil {
		return fmt.Errorf("%s: swarm init: %w", mgr.Name, err)
	}
	sw, err := mgr.client.SwarmInspect(ctx)
	if err != nil {
		return fmt.Errorf("%s: swarm inspect: %w", mgr.Name, err)
	}
	for _, n := range c.Nodes[1:] {
		token := sw.JoinTokens.Worker
		if n.Manager {
			token = sw.JoinTokens.Manager
		}
		err := n.client.SwarmJoin(ctx, swarm.JoinRequest{
			ListenAddr:    n.Addr + swarmPort,
			AdvertiseAddr: n.Addr + swarmPort,
			RemoteAddrs:   []string{mgr.Addr + swarmPort},
			JoinToken:     token,
		})
		if err != nil {
			return fmt.Errorf("%s: swarm join: %w", n.Name, err)
		}
	}
	for _, n := range c.Nodes {
		info, err := n.client.Info(ctx)
		if err != nil {
			return fmt.Errorf("%s: info: %w", n.Name, err)
		}
		if n.ID = info.Swarm.NodeID; n.ID == "" {
			return fmt.Errorf("%s: no swarm node id after joining (state %q)", n.Name, info.Swarm.LocalNodeState)
		}
	}
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := c.label(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits, for up to a minute, until the manager lists every node as ready.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	mgr := c.Nodes[0]
	var states []string
	for {
		nodes, err := mgr.client.NodeList(ctx, swarm.NodeListOptions{})
		if err == nil {
			states = states[:0]
			ready := 0
			for _, n := range c.Nodes {
				i := slices.IndexFunc(nodes, func(s swarm.Node) bool { return s.ID == n.ID })
				state := "missing"
				if i >= 0 {
					state = string(nodes[i].Status.State)
				}
				if state == string(swarm.NodeStateReady) {
					ready++
				}
				states = append(states, n.Name+" "+state)
			}
			if ready == len(c.Nodes) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the nodes are not all ready in the swarm (%s; last error: %v): %w", strings.Join(states, ", "), err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// label names node n and gives it its zone label, through the manager. An update that
// races another change of the node is tried again.
func (c *Cluster) label(ctx context.Context, n *Node) error {
	mgr := c.Nodes[0].client
	var err error
	for range 10 {
		var node swarm.Node
		node, _, err = mgr.NodeInspectWithRaw(ctx, n.ID)
		if err != nil {
			return fmt.Errorf("%s: node inspect: %w", n.Name, err)
		}
		spec := node.Spec
		spec.Name = n.Name
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		spec.Labels["zone"] = n.Zone
		if err = mgr.NodeUpdate(ctx, n.ID, node.Version, spec); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: name and label the node: %w", n.Name, err)
}
