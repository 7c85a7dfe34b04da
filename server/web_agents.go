package server

import (
	"net/http"

	"github.com/drover-cd/drover/internal/duration"
)

// agentRow is an agent as the agents page shows it.
type agentRow struct {
	agentJSON
	State string // online, offline or drained
	Class string // the status whose colour and icon show State
	Hint  string // what State means, for the badge's title
}

// agentsPage is the data of the agents page.
type agentsPage struct {
	Agents    []agentRow
	ServerURL string // this server's address, for drover agent run --server
	Period    string // how long an agent may stay silent before it counts as offline
	Waits     bool   // compute steps wait for an agent: the server runs none itself
}

// newAgentRow says what state a is in.
func newAgentRow(a agentJSON) agentRow {
	row := agentRow{agentJSON: a}
	switch {
	case a.Drained:
		row.State, row.Class, row.Hint = "drained", "waiting", "finishes the steps it runs and takes no new ones until drover agent resume"
		if !a.Online {
			row.Hint = "drained, and not heard from lately"
		}
	case a.Online:
		row.State, row.Class, row.Hint = "online", "success", "asks for work: steps whose labels it has run on it"
	default:
		row.State, row.Class, row.Hint = "offline", "cancelled", "not heard from lately: it takes no steps until it polls again"
	}
	return row
}

// agents lists the build agents: their state, labels, version, the steps they run and
// when they were last heard from.
func (w *web) agents(rw http.ResponseWriter, r *http.Request) {
	page := agentsPage{Agents: []agentRow{}, ServerURL: serverURL(r), Period: duration.Format(w.s.cfg.Agents.Period())}
	for _, a := range w.s.agentsJSON(r.Context()) {
		page.Agents = append(page.Agents, newAgentRow(a))
	}
	page.Waits = len(page.Agents) == 0 && w.s.cfg.Agents.Remote()
	w.render(rw, r, http.StatusOK, "agents", "Agents", page)
}

// serverURL is the address the request came to, as an agent or a client reaches it.
func serverURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
