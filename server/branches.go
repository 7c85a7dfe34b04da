package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/store"
)

// A project's default branch is the one that gets the secrets of environments with
// approval rules (package secret). The server learns it where it can: a hosted
// repository's first push, a followed repository's HEAD; drover project set
// --default-branch changes it.

// checkBranchName says why name cannot be a default branch, or returns nil; "" (not
// known) is fine.
func checkBranchName(name string) error {
	bad := strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune(`~^:?*[\`, r) })
	if bad || len(name) > 200 || strings.Contains(name, "..") || strings.Contains(name, "//") || strings.HasPrefix(name, "-") ||
		strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".lock") || strings.HasPrefix(name, "refs/") {
		return fmt.Errorf("%q is not a branch name: give one as git push names it, like main", name)
	}
	return nil
}

// pickDefaultBranch picks among branches: preferred when it is one of them, else main,
// else master, else the first by name; "" when there are none.
func pickDefaultBranch(branches []string, preferred string) string {
	for _, b := range []string{preferred, "main", "master"} {
		if b != "" && slices.Contains(branches, b) {
			return b
		}
	}
	if len(branches) == 0 {
		return ""
	}
	return slices.Min(branches)
}

// noteDefaultBranch makes branch the default branch of project unless it has one.
func (s *Server) noteDefaultBranch(ctx context.Context, project, branch string) {
	if branch == "" {
		return
	}
	p, err := s.cfg.Store.Project(ctx, project) // afresh: a PATCH may have set it
	if err != nil || p.DefaultBranch != "" {
		return
	}
	p.DefaultBranch = branch
	if err := s.cfg.Store.UpdateProject(ctx, p); err != nil {
		s.cfg.Log.Error("note a project's default branch", "project", project, "branch", branch, "err", err)
		return
	}
	s.cfg.Log.Info("the project's default branch (secrets of environments with approval rules go to its runs only; drover project set --default-branch changes it)",
		"project", project, "branch", branch)
}

// firstPushDefault notes the default branch of a hosted project from a push when it
// has none: on its first push, the branch the push created (main, should it create
// several and main be one of them; else master; else the first by name); in a
// repository that had branches before (a project older than default branches), the
// same pick among all of them, so a feature branch pushed first after an upgrade does
// not become the default.
func (s *Server) firstPushDefault(ctx context.Context, project string, updates []source.RefUpdate) {
	var pushed []string
	for _, u := range updates {
		if branch, ok := strings.CutPrefix(u.Ref, "refs/heads/"); ok && u.New != "" && strings.Trim(u.New, "0") != "" {
			pushed = append(pushed, branch)
		}
	}
	if len(pushed) == 0 {
		return
	}
	if heads := s.hostedHeads(ctx, project); len(heads) > 0 {
		pushed = heads
	}
	s.noteDefaultBranch(ctx, project, pickDefaultBranch(pushed, ""))
}

// NoteDefaultBranches gives each hosted project without a default branch (one made
// before default branches were kept) one from its repository's branches: main, else
// master, else the first by name. Followed projects learn theirs at their next fetch.
func (s *Server) NoteDefaultBranches(ctx context.Context) error {
	ps, err := s.cfg.Store.Projects(ctx)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.DefaultBranch != "" || p.URL != "" {
			continue
		}
		if heads := s.hostedHeads(ctx, p.Name); len(heads) > 0 { // else no repository yet: its first push decides
			s.noteDefaultBranch(ctx, p.Name, pickDefaultBranch(heads, ""))
		}
	}
	return nil
}

// hostedHeads lists the branches of project's repository; none when it has none yet.
func (s *Server) hostedHeads(ctx context.Context, project string) []string {
	if s.cfg.Hosting == nil {
		return nil
	}
	dir := s.cfg.Hosting.RepoPath(project)
	if dir == "" {
		return nil
	}
	heads, err := source.Heads(ctx, dir)
	if err != nil {
		return nil
	}
	return slices.Collect(maps.Keys(heads))
}

// followedDefault notes the default branch of a followed project when it has none:
// the remote's HEAD, which one git ls-remote asks for (only while the default branch is
// not known), else main, master or the first branch by name among heads.
func (s *Server) followedDefault(ctx context.Context, p *store.Project, heads map[string]string) {
	if p.DefaultBranch != "" || len(heads) == 0 {
		return
	}
	head, err := source.RemoteHead(ctx, p.URL)
	if err != nil {
		s.cfg.Log.Warn("ask a followed repository for its default branch; guessing from its branches", "project", p.Name, "err", err)
	}
	s.noteDefaultBranch(ctx, p.Name, pickDefaultBranch(slices.Collect(maps.Keys(heads)), head))
}

// auditBranches notes in the audit log a change of what decides which runs get
// secrets: the default branch and branch secrets.
func (s *Server) auditBranches(r *http.Request, before, after *store.Project) {
	var changes []string
	if before.DefaultBranch != after.DefaultBranch {
		changes = append(changes, fmt.Sprintf("default branch %q (was %q)", after.DefaultBranch, before.DefaultBranch))
	}
	if before.BranchSecrets != after.BranchSecrets {
		changes = append(changes, fmt.Sprintf("branch secrets %v", after.BranchSecrets))
	}
	if len(changes) == 0 {
		return
	}
	e := &store.AuditEntry{Actor: principal(r).Name, Action: "project-set", Project: after.Name, Result: "success",
		Message: strings.Join(changes, ", ")}
	if err := s.cfg.Store.AppendAudit(r.Context(), e); err != nil && !errors.Is(err, context.Canceled) {
		s.cfg.Log.Error("append to the audit log", "action", e.Action, "err", err)
	}
}
