package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/drover-cd/drover/proxy"
)

// Route is one host of the proxy's route table: where requests for a service in an
// environment go.
type Route struct {
	Host        string // the proxy's key: SERVICE.ENV.localhost (see proxy.Key)
	Service     string
	Environment string
	Backends    []proxy.Backend // the instances taking its requests
	// Discovery is the loopback address <SERVICE>_URL names in ENV ("" for none yet),
	// which a standalone proxy with --discovery listens on.
	Discovery string
}

// RouteTable returns the route table and its version: the table is at least as new as
// the version says. The version changes whenever a route's backend set does; it is
// "EPOCH.N", EPOCH being when the manager started, so a restarted server's table never
// shares a version with its predecessor's.
func (m *Manager) RouteTable() (string, []Route) {
	for {
		v := m.routesVersion.Load()
		routes := m.Routes()
		if m.routesVersion.Load() == v {
			return fmt.Sprintf("%d.%d", m.epoch, v), routes
		}
	}
}

// routesChanged is called after every change of a route's backend set.
func (m *Manager) routesChanged() { m.routesVersion.Add(1) }

// switched waits, after a switch was published, until whatever else serves the route
// table (standalone proxies) serves it too, so that instances retired next get no more
// requests from them.
func (m *Manager) switched(ctx context.Context) {
	if m.cfg.Switched == nil {
		return
	}
	v, _ := m.RouteTable()
	if err := m.cfg.Switched(ctx, v); err != nil {
		m.cfg.Log.Warn("standalone proxies did not take a switch in time", "version", v, "err", err)
	}
}

// Routes returns the route table the proxy follows, by host: every service with
// instances taking requests. A standalone proxy serves from it.
func (m *Manager) Routes() []Route {
	m.mu.Lock()
	svcs := make([]*service, 0, len(m.services))
	for _, s := range m.services {
		svcs = append(svcs, s)
	}
	m.mu.Unlock()
	out := []Route{}
	for _, s := range svcs {
		// What the proxy holds is what was published: the live set, atomically.
		if bs := m.cfg.Proxy.Backends(s.key); len(bs) > 0 {
			out = append(out, Route{Host: s.key, Service: s.name, Environment: s.env, Backends: bs,
				Discovery: m.addrs.address(s.key)})
		}
	}
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.Host, b.Host) })
	return out
}
