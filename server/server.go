// Package server is Drover's HTTP face: the JSON API under /api/v1, git hosting under
// /git/, webhooks under /hooks/, /healthz, /metrics and the web UI. It wires the store,
// the runner and git hosting together; nothing imports it but the binary.
package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/drover-cd/drover/deploy"
	"github.com/drover-cd/drover/dispatch"
	"github.com/drover-cd/drover/edge"
	"github.com/drover-cd/drover/notify"
	"github.com/drover-cd/drover/registry"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/secret"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/steplog"
	"github.com/drover-cd/drover/store"
)

// Config is what a Server serves.
type Config struct {
	Store   store.Store
	Runner  *runner.Runner
	Logs    *steplog.Store
	Hub     *notify.Hub
	Hosting *source.Hosting // repositories of hosted and followed projects
	// Registry serves the OCI distribution API under /v2/; nil serves none.
	Registry *registry.Registry
	// Releases reads runs' artifacts from Registry; nil when Registry is.
	Releases *release.Catalog
	// Retention is what the registry keeps of runs' artifacts.
	Retention Retention
	// Deploys runs releases in environments; nil serves no deploy API.
	Deploys *deploy.Manager
	// Proxies records the standalone proxies that follow the route table (GET
	// /api/v1/routes?proxy=NAME&wait=VERSION) and the version each serves; pass its
	// Wait as deploy.Config.Switched. nil tracks none.
	Proxies *edge.Tracker
	// Secrets keeps secrets, encrypted; nil answers the secrets API with 503.
	Secrets *secret.Vault
	// ProxyHost is ":PORT" of the proxy's listener, for links to deployed services.
	ProxyHost string
	Log       *slog.Logger
	Public    bool // anonymous users may read (viewer role)
	// EngineToken is the token the Docker Engine pulls and pushes Drover's images with,
	// as the developer "docker-engine"; it lives in memory only. "" accepts none.
	EngineToken string
	// IsolationWarning, when not "", says how steps are not isolated from the server and
	// each other (unconfined, or a sandbox with a known hole); every run page shows it.
	IsolationWarning string
	// CA is the certificate (PEM) of the server's own certificate authority, which issued
	// its TLS listener's certificate: GET /api/v1/ca answers it to anyone. nil when the
	// server has none (no TLS, or the operator's certificate): that route answers 404.
	CA []byte
	// Started is when the server started, for /healthz.
	Started time.Time
	// Agents hands compute steps to agents (drover agent run); nil serves no agent
	// routes.
	Agents *dispatch.Dispatcher
}

// Server handles Drover's HTTP requests.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	polling sync.Map // project name -> *sync.Mutex held while fetching it
	usage   usage    // when tokens were last used
	// routesWait is how long a follow request of the route table waits for a change
	// before it answers with the same table: edge.PollTimeout.
	routesWait time.Duration
	streams    streams // requests that last until the client leaves (streams.go)
	// patterns lists every route registered, in order: the test of who may call what
	// (TestEveryRouteRefusesMachineTokens) checks that its table names them all.
	patterns []string
}

// routeList registers routes on the server's mux and remembers their patterns.
type routeList struct{ s *Server }

func (l routeList) HandleFunc(pattern string, h http.HandlerFunc) {
	l.s.patterns = append(l.s.patterns, pattern)
	l.s.mux.HandleFunc(pattern, h)
}

func (l routeList) Handle(pattern string, h http.Handler) {
	l.s.patterns = append(l.s.patterns, pattern)
	l.s.mux.Handle(pattern, h)
}

// New builds the server's routes.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), routesWait: edge.PollTimeout, streams: newStreams()}
	s.routes()
	return s
}

// ServeHTTP authenticates the caller and routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, done := s.streams.bound(r)
	defer done()
	s.authenticate(s.mux).ServeHTTP(w, r)
}

// routes registers the server's routes. A new route goes into the table of
// TestEveryRouteRefusesMachineTokens (machines_test.go) too, with who may call it.
func (s *Server) routes() {
	m := routeList{s}
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /metrics", s.metrics)
	m.HandleFunc("GET /api/v1/ca", s.caCert) // public: nodes fetch it before they trust anything

	m.HandleFunc("GET /api/v1/projects", s.require(RoleViewer, s.listProjects))
	m.HandleFunc("POST /api/v1/projects", s.require(RoleAdmin, s.addProject))
	m.HandleFunc("GET /api/v1/projects/{p}/runs", s.require(RoleViewer, s.listRuns))
	m.HandleFunc("POST /api/v1/projects/{p}/runs", s.require(RoleDeveloper, s.startRun))
	m.HandleFunc("GET /api/v1/projects/{p}/runs/{n}", s.require(RoleViewer, s.getRun))
	m.HandleFunc("GET /api/v1/projects/{p}/runs/{n}/steps/{step}/log", s.require(RoleViewer, s.stepLog))
	m.HandleFunc("POST /api/v1/projects/{p}/runs/{n}/cancel", s.require(RoleDeveloper, s.cancelRun))
	m.HandleFunc("POST /api/v1/projects/{p}/runs/{n}/rerun", s.require(RoleDeveloper, s.rerun))
	m.HandleFunc("POST /api/v1/projects/{p}/runs/{n}/approve", s.require(RoleViewer, s.approveRun))
	m.HandleFunc("PATCH /api/v1/projects/{p}", s.require(RoleAdmin, s.updateProject))
	m.HandleFunc("POST /api/v1/users", s.require(RoleAdmin, s.addUser))
	m.HandleFunc("GET /api/v1/users", s.require(RoleAdmin, s.listUsers))
	m.HandleFunc("POST /api/v1/tokens", s.require(RoleAdmin, s.createToken))
	m.HandleFunc("GET /api/v1/tokens", s.require(RoleViewer, s.listTokens))          // admins all, others their own
	m.HandleFunc("DELETE /api/v1/tokens/{id}", s.require(RoleViewer, s.revokeToken)) // admins any, others their own
	m.HandleFunc("GET /api/v1/secrets", s.require(RoleViewer, s.listSecrets))
	m.HandleFunc("PUT /api/v1/secrets/{name}", s.require(RoleDeveloper, s.setSecret))       // and see mayChangeSecret
	m.HandleFunc("DELETE /api/v1/secrets/{name}", s.require(RoleDeveloper, s.removeSecret)) // and see mayChangeSecret
	m.HandleFunc("POST /api/v1/secrets/rekey", s.require(RoleAdmin, s.rekeySecrets))
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.errorJSON(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})

	m.Handle("/git/", s.gitHandler())
	if s.cfg.Registry != nil {
		m.Handle("/v2/", s.registryHandler())
		m.HandleFunc("GET /auth/token", s.registryToken)
		m.HandleFunc("POST /api/v1/registry/gc", s.require(RoleAdmin, s.collectGarbage))
	}
	if s.cfg.Deploys != nil {
		m.HandleFunc("GET /api/v1/routes", s.requireOr(RoleAdmin, MachineProxy, s.listRoutes))
		m.HandleFunc("GET /api/v1/environments", s.require(RoleViewer, s.listEnvironments))
		m.HandleFunc("GET /api/v1/environments/{env}", s.require(RoleViewer, s.getEnvironment))
		m.HandleFunc("POST /api/v1/environments/{env}/deploy", s.require(RoleDeveloper, s.deployTo))
		m.HandleFunc("POST /api/v1/environments/{env}/rollback", s.require(RoleDeveloper, s.rollbackIn))
		m.HandleFunc("POST /api/v1/environments/{env}/promote", s.require(RoleDeveloper, s.promoteTo))
		m.HandleFunc("POST /api/v1/environments/{env}/stop", s.require(RoleDeveloper, s.stopEnv))
		m.HandleFunc("PUT /api/v1/environments/{env}/scale", s.require(RoleDeveloper, s.scaleIn))
		m.HandleFunc("GET /api/v1/audit", s.require(RoleViewer, s.listAudit))
		m.HandleFunc("POST /api/v1/environments/plan", s.require(RoleViewer, s.planEnvironments))
		m.HandleFunc("POST /api/v1/environments/{env}/up", s.require(RoleDeveloper, s.envUp))
		m.HandleFunc("DELETE /api/v1/environments/{env}", s.require(RoleDeveloper, s.envDown))
		m.HandleFunc("POST /api/v1/environments/apply", s.require(RoleAdmin, s.applyEnvironments))
	}
	if s.cfg.Releases != nil {
		m.HandleFunc("GET /api/v1/projects/{p}/releases", s.require(RoleViewer, s.listReleases))
		m.HandleFunc("GET /api/v1/projects/{p}/releases/{ref}", s.require(RoleViewer, s.getRelease))
		m.HandleFunc("GET /artifacts/{p}/{ref}/{path...}", s.require(RoleViewer, s.download))
	}
	if s.cfg.Agents != nil {
		m.HandleFunc("POST /api/v1/agent/poll", s.requireMachine(MachineAgent, s.agentPoll))
		m.HandleFunc("POST /api/v1/agent/leases/{id}/log", s.requireMachine(MachineStep, s.leaseLog))
		m.HandleFunc("POST /api/v1/agent/leases/{id}/done", s.requireMachine(MachineStep, s.leaseDone))
		m.HandleFunc("GET /api/v1/agents", s.require(RoleViewer, s.listAgents))
		m.HandleFunc("POST /api/v1/agents/{name}/drain", s.require(RoleAdmin, s.drainAgent))
		m.HandleFunc("DELETE /api/v1/agents/{name}/drain", s.require(RoleAdmin, s.drainAgent))
	}
	s.webRoutes()
	m.HandleFunc("POST /hooks/{p}", s.webhook)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	status := http.StatusOK
	body := map[string]any{"status": "ok", "uptime_seconds": int(time.Since(s.cfg.Started).Seconds())}
	if _, err := s.cfg.Store.CountTokens(r.Context()); err != nil {
		status, body["status"], body["error"] = http.StatusServiceUnavailable, "unhealthy", "store: "+err.Error()
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// errorJSON answers {"error": msg}.
func (s *Server) errorJSON(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// fail answers an error with the status its kind calls for.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.errorJSON(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrExists):
		s.errorJSON(w, http.StatusConflict, err.Error())
	case errors.Is(err, runner.ErrNoPipeline), errors.Is(err, runner.ErrFinished):
		s.errorJSON(w, http.StatusConflict, err.Error())
	case errors.Is(err, deploy.ErrFrozen):
		w.Header().Set("Retry-After", "2")
		s.errorJSON(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.cfg.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		s.errorJSON(w, http.StatusInternalServerError, err.Error())
	}
}
