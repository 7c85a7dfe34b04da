package server

import (
	"context"
	"fmt"
	"net/http"
)

// envs lists the environments with what runs in each.
func (w *web) envs(rw http.ResponseWriter, r *http.Request) {
	envs, err := w.s.cfg.Store.Environments(r.Context())
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("list environments: %w", err))
		return
	}
	out := []envJSON{}
	for _, e := range envs {
		ej, err := w.s.envDetail(r, e, 0)
		if err != nil {
			w.failErr(rw, r, err)
			return
		}
		out = append(out, ej)
	}
	w.render(rw, r, http.StatusOK, "envs", "Environments", out)
}

// env shows one environment: its services, their instances and health, and the deploy
// history; it follows changes live.
func (w *web) env(rw http.ResponseWriter, r *http.Request) {
	e, err := w.s.cfg.Store.Environment(r.Context(), r.PathValue("env"))
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("environment %s: %w", r.PathValue("env"), err))
		return
	}
	ej, err := w.s.envDetail(r, e, 30)
	if err != nil {
		w.failErr(rw, r, err)
		return
	}
	w.render(rw, r, http.StatusOK, "env", e.Name, map[string]any{"Env": ej, "Events": "/env/" + e.Name + "/events",
		"ProxyHost": w.s.cfg.ProxyHost})
}

// envEvents streams an environment's state as server-sent events ("env") at once and
// after every change.
func (w *web) envEvents(rw http.ResponseWriter, r *http.Request) {
	e, err := w.s.cfg.Store.Environment(r.Context(), r.PathValue("env"))
	if err != nil {
		w.s.fail(rw, r, err)
		return
	}
	w.stream(rw, r, EnvKey(e.Name), "env", func(context.Context) (any, error) {
		return w.s.envDetail(r, e, 0)
	})
}

// auditPage shows the audit log, newest first, a page at a time (?before=ID).
func (w *web) auditPage(rw http.ResponseWriter, r *http.Request) {
	entries, err := w.s.auditEntries(r)
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("read the audit log: %w", err))
		return
	}
	older := int64(0)
	if len(entries) == 50 {
		older = entries[len(entries)-1].ID
	}
	w.render(rw, r, http.StatusOK, "audit", "Audit log", map[string]any{"Entries": entries, "Older": older})
}
