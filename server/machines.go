package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/drover-cd/drover/registry"
)

// Machine tokens belong to machines, not people. Each holds no role and opens only
// the routes of its job; everywhere else it gets 403.
const (
	// MachineAgent takes and reports work for `drover agent`. Its routes come with
	// remote agents; until then it opens nothing.
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
	MachineAgent: "is for drover agent, whose routes come with remote agents",
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
}

// instanceAddr is an instance the proxy sends a host's requests to.
type instanceAddr struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // host:port, plain HTTP/1.1
}

// listRoutes is GET /api/v1/routes: the route table the embedded proxy follows, as
// the deploy manager set it: which host goes to which instance addresses. Proxy tokens
// and admins read it; a standalone proxy follows it. Hosts come sorted.
func (s *Server) listRoutes(w http.ResponseWriter, r *http.Request) {
	out := []routeJSON{}
	for _, rt := range s.cfg.Deploys.Routes() {
		j := routeJSON{Host: rt.Host, Service: rt.Service, Environment: rt.Environment, Instances: []instanceAddr{}}
		for _, b := range rt.Backends {
			j.Instances = append(j.Instances, instanceAddr{ID: b.ID, Addr: b.Addr})
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"routes": out})
}
