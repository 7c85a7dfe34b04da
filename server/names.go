package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/store"
)

// errNameTaken is wrapped by checkNewProject's refusals that name something already there.
var errNameTaken = errors.New("name taken")

// checkNewProject says why a new project may not be called name, or returns nil. Every
// door that creates projects asks it (git push, POST /api/v1/projects, so drover up):
// the name follows release.CheckProjectName, no project has it in another case (one
// registry repository would serve both), and no image repository outside a project
// uses it (the project would take over base/... or tools/...).
func (s *Server) checkNewProject(ctx context.Context, name string) error {
	p, err := s.cfg.Store.ProjectFold(ctx, name)
	switch {
	case err == nil && p.Name == name:
		// It exists (made before the name rule, perhaps): it keeps working.
		return fmt.Errorf("project %q: %w", name, store.ErrExists)
	case err == nil:
		return fmt.Errorf("project %q: %w: project %q has that name in another case, and names are one registry repository regardless of case; use %q", name, errNameTaken, p.Name, p.Name)
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if err := release.CheckProjectName(name); err != nil {
		return err
	}
	if s.cfg.Registry != nil && s.cfg.Registry.NamespaceUsed(name) {
		return fmt.Errorf("project %q: %w: the registry holds images under %s/ that no project owns; pick another name for the project", name, errNameTaken, name)
	}
	return nil
}

// ReportNames logs the projects whose names break the name rule or differ from another
// project's only in case, and how to move them to a good name. They keep working.
func (s *Server) ReportNames(ctx context.Context) error {
	ps, err := s.cfg.Store.Projects(ctx)
	if err != nil {
		return err
	}
	first := map[string]string{} // lower-case name -> the first project with it
	for _, p := range ps {
		lower := strings.ToLower(p.Name)
		other, clash := first[lower]
		if !clash {
			first[lower] = p.Name
		}
		nameErr := release.CheckProjectName(p.Name)
		if nameErr == nil && !clash {
			continue
		}
		why := "it differs from project " + other + " only in case, and both publish to one registry repository"
		if nameErr != nil {
			why = nameErr.Error()
		}
		s.cfg.Log.Warn("a project's name breaks the name rule; it keeps working, but rename it: push its repository to a new name (git push http://HOST/git/NEW.git --all) and point its clones and webhooks there; its old runs stay under the old name",
			"project", p.Name, "why", why, "suggested", release.SuggestProjectName(p.Name))
	}
	return nil
}
