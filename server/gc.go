package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/drover-cd/drover/registry"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/retention"
	"github.com/drover-cd/drover/runner"
)

// Retention is what the registry keeps of runs' artifacts and how often it collects
// the rest. A project's own keep_runs and keep_for override KeepRuns and KeepFor.
type Retention struct {
	KeepRuns int           // keep the artifacts of each project's last KeepRuns runs
	KeepFor  time.Duration // and every artifact younger than this
	Every    time.Duration // collect garbage this often; 0 only on request
	Grace    time.Duration // never remove what a client touched this recently (registry.DefaultGrace when 0)
	// Deployed reports the runs whose release is or was deployed: kept whatever their age.
	Deployed func(project string, run int) bool
}

// CollectGarbage applies the retention policy and frees what nothing references any
// more, while pushes go on. With dryRun it only reports what would go.
func (s *Server) CollectGarbage(ctx context.Context, dryRun bool) (registry.GCReport, error) {
	projects, err := s.cfg.Store.Projects(ctx)
	if err != nil {
		return registry.GCReport{}, err
	}
	policies := map[string]retention.Policy{} // by repository
	for _, p := range projects {
		repo, err := release.Repository(p.Name)
		if err != nil {
			continue // never published
		}
		pol := retention.Policy{KeepRuns: s.cfg.Retention.KeepRuns, KeepFor: s.cfg.Retention.KeepFor, Deployed: s.keeps(ctx)}
		if p.KeepRuns > 0 {
			pol.KeepRuns = p.KeepRuns
		}
		if p.KeepFor > 0 {
			pol.KeepFor = p.KeepFor
		}
		policies[repo] = pol
	}
	now := time.Now()
	return s.cfg.Registry.GC(ctx, registry.GCOptions{
		DryRun: dryRun,
		Grace:  s.cfg.Retention.Grace,
		Log:    s.cfg.Log,
		Prune: func(repo string, tags []registry.TagInfo) []string {
			pol, ok := policies[repo]
			if !ok {
				return nil // not a project's repository: images people pushed are theirs to delete
			}
			return pol.Select(repo, tags, now)
		},
	})
}

// keeps reports the runs whose artifacts retention must keep whatever their age: the
// deployed ones, and the ones waiting for an approval (they publish again when they go on).
func (s *Server) keeps(ctx context.Context) func(project string, run int) bool {
	return func(project string, n int) bool {
		if s.cfg.Retention.Deployed != nil && s.cfg.Retention.Deployed(project, n) {
			return true
		}
		r, err := s.cfg.Store.Run(ctx, project, n)
		return err != nil || r.Status == runner.Waiting // when unsure, keep
	}
}

// CollectGarbageEvery runs CollectGarbage every Retention.Every until ctx ends.
func (s *Server) CollectGarbageEvery(ctx context.Context) {
	if s.cfg.Registry == nil || s.cfg.Retention.Every <= 0 {
		return
	}
	t := time.NewTicker(s.cfg.Retention.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := s.CollectGarbage(ctx, false)
		if err != nil {
			s.cfg.Log.Error("registry garbage collection", "err", err)
			continue
		}
		s.cfg.Log.Info("registry garbage collection", "tags", len(rep.TagsRemoved), "manifests", len(rep.ManifestsRemoved),
			"blobs", rep.BlobsRemoved, "bytes_freed", rep.BytesFreed, "uploads", rep.UploadsRemoved)
	}
}

// collectGarbage is POST /api/v1/registry/gc {"dry_run": true}.
func (s *Server) collectGarbage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DryRun bool `json:"dry_run"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	rep, err := s.CollectGarbage(r.Context(), req.DryRun)
	if err != nil {
		if errors.Is(err, registry.ErrGCRunning) {
			s.errorJSON(w, http.StatusConflict, fmt.Sprintf("%v; try again when it ends", err))
			return
		}
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
