package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/drover-cd/drover/runner"
)

// webPing is how often an idle event stream sends a comment, so proxies keep it open.
const webPing = 15 * time.Second

// runEvents streams a run as server-sent events: an event "run" with the run's JSON
// (as GET /api/v1/projects/{p}/runs/{n} answers) at once and after every change.
func (w *web) runEvents(rw http.ResponseWriter, r *http.Request) {
	run, ok := w.s.run(rw, r)
	if !ok {
		return
	}
	w.stream(rw, r, runner.RunKey(run.ID), "run", func(ctx context.Context) (any, error) {
		cur, err := w.s.cfg.Store.RunByID(ctx, run.ID)
		if err != nil {
			return nil, fmt.Errorf("read run %d: %w", run.ID, err)
		}
		return w.s.runDetail(ctx, cur)
	})
}

// projectEvents streams a project's runs as server-sent events: an event "runs" with the
// page of runs the project page shows (?before=N as there) at once and after every change.
func (w *web) projectEvents(rw http.ResponseWriter, r *http.Request) {
	p, err := w.s.cfg.Store.Project(r.Context(), r.PathValue("p"))
	if err != nil {
		w.s.fail(rw, r, err)
		return
	}
	before, _ := strconv.Atoi(r.URL.Query().Get("before"))
	w.stream(rw, r, runner.ProjectKey(p.Name), "runs", func(context.Context) (any, error) {
		return w.projectRuns(r, p.Name, before)
	})
}

// stream answers with server-sent events of type event: load's value as JSON now and
// whenever the hub notifies key, and a comment every w.ping, until the client goes away
// or the server stops.
func (w *web) stream(rw http.ResponseWriter, r *http.Request, key, event string, load func(context.Context) (any, error)) {
	changed, stop := w.s.cfg.Hub.Subscribe(key) // before the first load: no change slips by
	defer stop()
	h := rw.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(rw)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives any write timeout
	rw.WriteHeader(http.StatusOK)
	ctx := r.Context()
	who := principal(r)
	send := func() error {
		// A token revoked while its stream is open ends the stream (found in review).
		if err := w.s.stillValid(ctx, who); err != nil {
			return err
		}
		v, err := load(ctx)
		if err != nil {
			return err
		}
		data, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s event: %w", event, err)
		}
		if _, err := fmt.Fprintf(rw, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return fmt.Errorf("send %s event: %w", event, err)
		}
		return rc.Flush()
	}
	ping := time.NewTicker(w.ping)
	defer ping.Stop()
	for err := send(); ; {
		if err != nil {
			if ctx.Err() == nil {
				w.s.cfg.Log.Warn("event stream ended", "path", r.URL.Path, "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			err = send()
		case <-ping.C:
			if err = w.s.stillValid(ctx, who); err != nil {
				break
			}
			if _, err = fmt.Fprint(rw, ": ping\n\n"); err == nil {
				err = rc.Flush()
			}
		}
	}
}
