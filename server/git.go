package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/store"
)

// gitHandler serves hosted repositories over smart HTTP. Reading needs the viewer role,
// pushing the developer role; a push to a new name creates the project.
func (s *Server) gitHandler() http.Handler {
	h := http.StripPrefix("/git", s.cfg.Hosting)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := RoleViewer
		if strings.HasSuffix(r.URL.Path, "/git-receive-pack") || r.URL.Query().Get("service") == "git-receive-pack" {
			role = RoleDeveloper
			// A followed project's repository is a mirror the next fetch overwrites.
			name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/git/"), ".git/")
			if p, err := s.cfg.Store.Project(r.Context(), name); err == nil && p.URL != "" {
				s.errorJSON(w, http.StatusForbidden, fmt.Sprintf("project %s follows %s: push there", p.Name, p.URL))
				return
			}
		}
		if mayStepGit(principal(r), r) {
			h.ServeHTTP(w, r) // a step on an agent checks its run's commit out
			return
		}
		s.require(role, h.ServeHTTP)(w, r)
	})
}

// AllowCreate lets a push create a repository: it creates the project in the store
// first, when the name is free (checkNewProject). The error it returns is what the
// pushing git client shows.
func (s *Server) AllowCreate(name string) error {
	ctx := context.Background()
	err := s.checkNewProject(ctx, name)
	if err == nil {
		err = s.cfg.Store.CreateProject(ctx, &store.Project{Name: name})
	}
	switch {
	case errors.Is(err, store.ErrExists):
		return nil // the project is there, its repository not yet
	case err != nil:
		s.cfg.Log.Warn("a push may not create a project", "project", name, "err", err)
		return err
	}
	s.cfg.Log.Info("project created by a push", "project", name)
	s.cfg.Hub.Notify("projects")
	return nil
}

// OnPush queues a run for every branch a push created or moved. The first push to a
// project gives it its default branch, before its runs ask for secrets.
func (s *Server) OnPush(ctx context.Context, repo string, updates []source.RefUpdate) {
	// The push's request context carries who pushed; they are the run's trigger.
	who := "push"
	if p, ok := ctx.Value(principalKey{}).(Principal); ok && p.Name != "" {
		who = p.Name
	}
	s.firstPushDefault(ctx, repo, updates)
	s.queueUpdates(ctx, repo, "push", who, updates)
}

// queueUpdates queues runs for updated branches; deleted branches and tags are ignored.
func (s *Server) queueUpdates(ctx context.Context, project, event, trigger string, updates []source.RefUpdate) {
	for _, u := range updates {
		branch, ok := strings.CutPrefix(u.Ref, "refs/heads/")
		if !ok || u.New == "" || strings.Trim(u.New, "0") == "" {
			continue
		}
		run, err := s.cfg.Runner.Enqueue(context.WithoutCancel(ctx), runner.Request{Project: project, Branch: branch,
			Commit: u.New, Event: event, Trigger: trigger})
		switch {
		case errors.Is(err, runner.ErrNoPipeline):
			s.cfg.Log.Info("no drover.yml: nothing to run", "project", project, "branch", branch)
		case err != nil:
			s.cfg.Log.Error("queue a run", "project", project, "branch", branch, "err", err)
		default:
			_ = run
		}
	}
}

// untilRunEnds returns a context that ends with ctx or when the run finishes.
func (s *Server) untilRunEnds(ctx context.Context, run *store.Run) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	changed, stop := s.cfg.Hub.Subscribe(runner.RunKey(run.ID))
	ended := func() bool {
		cur, err := s.cfg.Store.RunByID(ctx, run.ID)
		return err != nil || !runner.Active(cur.Status)
	}
	go func() {
		defer stop()
		// Look once after subscribing too: the run may have ended just before.
		for !ended() {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
		cancel()
	}()
	return ctx, cancel
}
