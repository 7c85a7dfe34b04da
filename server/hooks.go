package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/store"
)

// webhook takes a push notification from GitHub, Gitea/Forgejo or GitLab for a followed
// project, checks its signature, fetches the repository and queues runs.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Store.Project(r.Context(), r.PathValue("p"))
	if err != nil || p.URL == "" {
		s.errorJSON(w, http.StatusNotFound, "no followed project "+r.PathValue("p"))
		return
	}
	ev, err := source.ParseWebhook(r, p.WebhookSecret, 5<<20)
	switch {
	case errors.Is(err, source.ErrBadSignature):
		s.cfg.Log.Warn("webhook refused: bad signature", "project", p.Name, "remote", r.RemoteAddr)
		s.errorJSON(w, http.StatusUnauthorized, err.Error())
		return
	case errors.Is(err, source.ErrNotPush):
		w.WriteHeader(http.StatusNoContent)
		return
	case errors.As(err, new(*http.MaxBytesError)):
		s.errorJSON(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	case err != nil:
		s.errorJSON(w, http.StatusBadRequest, err.Error())
		return
	}
	s.cfg.Log.Info("webhook", "project", p.Name, "provider", ev.Provider, "ref", ev.Ref)
	go s.poll(p)
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "fetching", "ref": ev.Ref})
}

// poll fetches a followed project's repository and queues runs for moved branches.
func (s *Server) poll(p *store.Project) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// One fetch of a project at a time, so a webhook during a scheduled poll does not
	// report the same moved branch twice.
	mu, _ := s.polling.LoadOrStore(p.Name, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	bare := s.cfg.Hosting.RepoPath(p.Name)
	before, _ := source.Heads(ctx, bare)
	after, err := source.Mirror(ctx, p.URL, bare)
	if err != nil {
		s.cfg.Log.Error("fetch followed repository", "project", p.Name, "url", p.URL, "err", err)
		return
	}
	s.followedDefault(ctx, p, after)
	s.queueUpdates(ctx, p.Name, "push", "poll", source.DiffHeads(before, after))
}

// Follow polls every followed project at its interval until ctx ends.
func (s *Server) Follow(ctx context.Context) {
	next := map[string]time.Time{}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			projects, err := s.cfg.Store.Projects(ctx)
			if err != nil {
				continue
			}
			for _, p := range projects {
				if p.URL == "" || p.PollInterval <= 0 || now.Before(next[p.Name]) {
					continue
				}
				next[p.Name] = now.Add(p.PollInterval)
				go s.poll(p)
			}
		}
	}
}
