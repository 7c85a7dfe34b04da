package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/drover-cd/drover/deploy"
	"github.com/drover-cd/drover/registry"
)

// Machine tokens belong to machines, not people. Each holds no role and opens only
// the routes of its job; everywhere else it gets 403.
const (
	// MachineAgent asks for work for `drover agent run` (POST /api/v1/agent/poll);
	// each step it gets comes with a credential of its own (MachineStep).
	MachineAgent = "agent"
	// MachineProxy reads the route table (GET /api/v1/routes) for a standalone proxy.
	MachineProxy = "proxy"
	// MachinePull pulls one repository from the registry (GET and HEAD of /v2/REPO/...,
	// the /v2/ base and /auth/token): short-lived credentials for an engine that pulls
	// a release's image, such as a Swarm node.
	MachinePull = "pull"
)

// machines lists the machine token kinds.
var machines = []string{MachineAgent, MachineProxy, MachinePull}

// machineJobs says what each machine token is for, in refusals.
var machineJobs = map[string]string{
	MachineAgent: "only asks for work: POST /api/v1/agent/poll",
	MachineStep:  "only fetches its project, reads and uploads its repository's blobs and reports on its own lease",
	MachineProxy: "only reads the route table: GET /api/v1/routes",
	MachinePull:  "only pulls its repository from the registry",
}

// machineRefusal is the 403 message for machine token p on r.
func machineRefusal(p Principal, r *http.Request) string {
	job := machineJobs[p.Machine]
	if p.Machine == MachinePull {
		job = fmt.Sprintf("only pulls %s from the registry (GET and HEAD of /v2/%s/...)", p.Repository, p.Repository)
	}
	return fmt.Sprintf("%s %s: a %s token %s", r.Method, r.URL.Path, p.Machine, job)
}

// mayPull reports whether pull token p may make registry request r: GET or HEAD of
// the /v2/ base (docker's check that it signed in) or of a blob, manifest, tag list or
// referrers of its own repository. Upload sessions are writes, even to read.
func mayPull(p Principal, r *http.Request) bool {
	if p.Machine != MachinePull || r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.URL.Path == "/v2/" {
		return true
	}
	repo, ok := registry.RepositoryOf(r.URL.Path)
	return ok && repo == p.Repository && !strings.Contains(strings.TrimPrefix(r.URL.Path, "/v2/"+repo), "/blobs/uploads")
}

// requireOr is require(role), and also lets machine tokens of kind in: a route that is
// both an admin's and a machine's job.
func (s *Server) requireOr(role, kind string, next http.HandlerFunc) http.HandlerFunc {
	guarded := s.require(role, next)
	return func(w http.ResponseWriter, r *http.Request) {
		if principal(r).Machine == kind {
			next(w, r)
			return
		}
		guarded(w, r)
	}
}

// routeJSON is one host of the proxy's route table.
type routeJSON struct {
	Host        string         `json:"host"` // SERVICE.ENV.localhost
	Service     string         `json:"service"`
	Environment string         `json:"environment"`
	Instances   []instanceAddr `json:"instances"`
	Discovery   string         `json:"discovery,omitempty"` // 127.0.0.1:PORT, what <SERVICE>_URL names
}

// instanceAddr is an instance the proxy sends a host's requests to.
type instanceAddr struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // host:port, plain HTTP/1.1
}

// RoutesKey is the notify.Hub key of the route table: notify it whenever a route's
// instances change, so that the follow requests of standalone proxies answer at once.
const RoutesKey = "routes"

// routesRecheck is how often a follow request looks at the table's version on its own,
// in case a change came without a notification on RoutesKey.
const routesRecheck = time.Second

// listRoutes is GET /api/v1/routes: the route table the embedded proxy follows, as
// the deploy manager set it: which host goes to which instance addresses, and the
// table's version. Proxy tokens and admins read it; a standalone proxy follows it.
// Hosts come sorted.
//
// A standalone proxy follows it with ?wait=VERSION&proxy=NAME (see package edge):
// VERSION is the table it serves now, so the request is also its acknowledgement,
// which the Tracker records. The answer comes at once when the table's version is not
// VERSION, else when it changes or after s.routesWait with the same table.
func (s *Server) listRoutes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name, wait := q.Get("proxy"), q.Get("wait")
	_, waiting := q["wait"]
	if name != "" && s.cfg.Proxies != nil {
		s.cfg.Proxies.Report(name, wait)
	}
	version, routes := s.cfg.Deploys.RouteTable()
	if waiting && version == wait {
		version, routes = s.awaitRoutes(r.Context(), wait)
		if r.Context().Err() != nil {
			if name != "" && s.cfg.Proxies != nil {
				s.cfg.Proxies.Gone(name) // it hung up: not waited for until it follows again
			}
			return
		}
	}
	out := []routeJSON{}
	for _, rt := range routes {
		j := routeJSON{Host: rt.Host, Service: rt.Service, Environment: rt.Environment, Instances: []instanceAddr{},
			Discovery: rt.Discovery}
		for _, b := range rt.Backends {
			j.Instances = append(j.Instances, instanceAddr{ID: b.ID, Addr: b.Addr})
		}
		out = append(out, j)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"version": version, "routes": out})
}

// awaitRoutes waits until the route table's version is not have, or s.routesWait
// passes, or ctx ends, and returns the table then.
func (s *Server) awaitRoutes(ctx context.Context, have string) (string, []deploy.Route) {
	var changed <-chan struct{}
	if s.cfg.Hub != nil {
		ch, stop := s.cfg.Hub.Subscribe(RoutesKey)
		defer stop()
		changed = ch
	}
	timeout := time.NewTimer(s.routesWait)
	defer timeout.Stop()
	tick := time.NewTicker(routesRecheck)
	defer tick.Stop()
	for {
		// Subscribed before this look: a change from here on wakes the loop.
		version, routes := s.cfg.Deploys.RouteTable()
		if version != have {
			return version, routes
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-timeout.C:
			return version, routes
		case <-ctx.Done():
			return version, routes
		}
	}
}
