package deploy

import (
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
			out = append(out, Route{Host: s.key, Service: s.name, Environment: s.env, Backends: bs})
		}
	}
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.Host, b.Host) })
	return out
}
