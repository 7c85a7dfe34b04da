package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-cd/drover/agentproto"
	"github.com/drover-cd/drover/dispatch"
	"github.com/drover-cd/drover/registry"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/store"
)

// MachineStep is the credential of one attempt of a step on an agent: the token of its
// lease (dispatch.TokenPrefix), valid while the lease is out; nobody creates one by
// hand. It clones its project (git upload-pack), reads and writes blobs of the project's
// registry repository (no manifests or tags: only the server publishes), and reports
// on its own lease.
const MachineStep = "step"

// GitPath is the path of a project's repository on the server, for git.
func GitPath(project string) string { return "/git/" + project + ".git" }

// mayStepGit reports whether step token p may make git request r: fetching its project.
func mayStepGit(p Principal, r *http.Request) bool {
	if p.Machine != MachineStep {
		return false
	}
	repo := "/git/" + p.Repository + ".git/"
	switch {
	case r.Method == http.MethodGet && r.URL.Path == repo+"info/refs":
		return r.URL.Query().Get("service") == "git-upload-pack"
	case r.Method == http.MethodPost && r.URL.Path == repo+"git-upload-pack":
		return true
	}
	return false
}

// mayStepRegistry reports whether step token p may make registry request r: the /v2/
// base; reading and uploading blobs of its project's repository (artifacts); pulling its
// project's images (PROJECT/image, for image: self) and pushing the tags its own build:
// step makes there. Never a manifest of the project's own repository (the server
// publishes releases), never a delete, never a cross-repository mount (which would read
// blobs of any repository).
func mayStepRegistry(p Principal, r *http.Request) bool {
	if p.Machine != MachineStep {
		return false
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if r.URL.Path == "/v2/" {
		return read
	}
	want, err := release.Repository(p.Repository)
	repo, ok := registry.RepositoryOf(r.URL.Path)
	if err != nil || !ok || (repo != want && repo != want+"/image") {
		return false
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v2/"+repo)
	switch {
	case strings.HasPrefix(rest, "/blobs/uploads/"):
		if q := r.URL.Query(); q.Has("mount") || q.Has("from") {
			return false
		}
		return read || r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut
	case strings.HasPrefix(rest, "/blobs/sha256:"):
		return read
	case strings.HasPrefix(rest, "/manifests/") && repo != want:
		tag := strings.TrimPrefix(rest, "/manifests/")
		return read || r.Method == http.MethodPut && slices.Contains(p.Pushes, repo+":"+tag)
	}
	return false
}

// requireMachine lets only machine tokens of kind call next.
func (s *Server) requireMachine(kind string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principal(r)
		switch {
		case p.Machine == kind:
			next(w, r)
		case !p.Authenticated:
			s.unauthorized(w, r, fmt.Sprintf("sign in with a %s token: Authorization: Bearer TOKEN", kind))
		case p.Machine != "":
			s.errorJSON(w, http.StatusForbidden, machineRefusal(p, r))
		default:
			s.errorJSON(w, http.StatusForbidden, fmt.Sprintf("%s %s is for %s tokens only", r.Method, r.URL.Path, kind))
		}
	}
}

// secureConn reports whether r came over TLS or from loopback: where secrets may go.
func secureConn(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// agentPoll is POST /api/v1/agent/poll: an agent asks for work (agentproto).
func (s *Server) agentPoll(w http.ResponseWriter, r *http.Request) {
	var poll agentproto.Poll
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&poll); err != nil {
		s.errorJSON(w, http.StatusBadRequest, "read the poll: "+err.Error())
		return
	}
	reply, err := s.cfg.Agents.Poll(r.Context(), poll, secureConn(r))
	if err != nil {
		s.errorJSON(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

// leaseID reads the {id} of a lease route.
func leaseID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

// leaseError answers a lease route's error.
func (s *Server) leaseError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, dispatch.ErrGone):
		s.errorJSON(w, http.StatusConflict, err.Error())
	case errors.Is(err, dispatch.ErrNotYet):
		w.Header().Set("Retry-After", "1")
		s.errorJSON(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.errorJSON(w, http.StatusInternalServerError, err.Error())
	}
}

// leaseLog is POST /api/v1/agent/leases/{id}/log: a chunk of a step's output.
func (s *Server) leaseLog(w http.ResponseWriter, r *http.Request) {
	id, ok := leaseID(r)
	offset, err := strconv.ParseInt(r.Header.Get(agentproto.OffsetHeader), 10, 64)
	if !ok || err != nil || offset < 0 {
		s.errorJSON(w, http.StatusBadRequest, "a log chunk needs a lease ID in its path and a "+agentproto.OffsetHeader+" header")
		return
	}
	chunk, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		s.errorJSON(w, http.StatusBadRequest, "read the log chunk: "+err.Error())
		return
	}
	if err := s.cfg.Agents.Log(id, principal(r).Lease, offset, chunk); err != nil {
		s.leaseError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// leaseDone is POST /api/v1/agent/leases/{id}/done: an attempt's result.
func (s *Server) leaseDone(w http.ResponseWriter, r *http.Request) {
	id, ok := leaseID(r)
	if !ok {
		s.errorJSON(w, http.StatusBadRequest, "no lease ID in the path")
		return
	}
	var done agentproto.Done
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&done); err != nil {
		s.errorJSON(w, http.StatusBadRequest, "read the result: "+err.Error())
		return
	}
	if err := s.cfg.Agents.Done(r.Context(), id, principal(r).Lease, &done); err != nil {
		s.leaseError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// agentJSON is an agent in the API.
type agentJSON struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Version  string            `json:"version"`
	Capacity int               `json:"capacity"`
	Drained  bool              `json:"drained"`
	Online   bool              `json:"online"`
	Seen     time.Time         `json:"last_seen"`
	Running  []runningJSON     `json:"running"`
}

// runningJSON is a step an agent runs.
type runningJSON struct {
	Project string `json:"project"`
	Run     int    `json:"run"`
	Step    string `json:"step"`
	Attempt int    `json:"attempt"`
	Lease   int64  `json:"lease"`
}

// agentsJSON lists the agents with the steps they run.
func (s *Server) agentsJSON(ctx context.Context) []agentJSON {
	out := []agentJSON{}
	for _, a := range s.cfg.Agents.Agents() {
		j := agentJSON{Name: a.Name, Labels: a.Labels, Version: a.Version, Capacity: a.Capacity, Drained: a.Drained,
			Online: a.Online, Seen: a.Seen, Running: []runningJSON{}}
		for _, run := range a.Running {
			rj := runningJSON{Step: run.Step, Attempt: run.Attempt, Lease: run.Lease}
			if r, err := s.cfg.Store.RunByID(ctx, run.RunID); err == nil {
				rj.Project, rj.Run = r.Project, r.Number
			}
			j.Running = append(j.Running, rj)
		}
		out = append(out, j)
	}
	return out
}

// listAgents is GET /api/v1/agents.
func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.agentsJSON(r.Context()))
}

// drainAgent is POST (drain) and DELETE (resume) /api/v1/agents/{name}/drain.
func (s *Server) drainAgent(w http.ResponseWriter, r *http.Request) {
	name, drain := r.PathValue("name"), r.Method == http.MethodPost
	if err := s.cfg.Agents.Drain(r.Context(), name, drain); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.errorJSON(w, http.StatusNotFound, fmt.Sprintf("no agent is called %q: drover agent ls lists them", name))
			return
		}
		s.fail(w, r, err)
		return
	}
	action := "agent.drain"
	if !drain {
		action = "agent.resume"
	}
	s.audit(r, action, "agent "+name)
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "drained": drain})
}
