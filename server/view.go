package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/internal/duration"
	"github.com/drover-cd/drover/report"
	"github.com/drover-cd/drover/store"
)

// The JSON shapes of the API; the web UI renders the same values.

type projectJSON struct {
	Name         string `json:"name"`
	URL          string `json:"url,omitempty"`
	PollInterval string `json:"poll_interval,omitempty"`
	KeepRuns     int    `json:"keep_runs,omitempty"` // 0: the server's default
	KeepFor      string `json:"keep_for,omitempty"`  // "": the server's default
	// DefaultBranch gets the secrets of environments with approval rules; "": not known.
	DefaultBranch string `json:"default_branch"`
	// BranchSecrets: runs of a followed repository's other branches get secrets too.
	BranchSecrets bool      `json:"branch_secrets"`
	Created       time.Time `json:"created"`
	CloneURL      string    `json:"clone_url"`
}

// toProjectJSON is a project as the API shows it.
func (s *Server) toProjectJSON(r *http.Request, p *store.Project) projectJSON {
	pj := projectJSON{Name: p.Name, URL: p.URL, KeepRuns: p.KeepRuns, DefaultBranch: p.DefaultBranch, BranchSecrets: p.BranchSecrets,
		Created: p.Created, CloneURL: s.cloneURL(r, p.Name)}
	if p.PollInterval > 0 {
		pj.PollInterval = duration.Format(p.PollInterval)
	}
	if p.KeepFor > 0 {
		pj.KeepFor = duration.Format(p.KeepFor)
	}
	return pj
}

type testsJSON struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

type artifactJSON struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

type stepJSON struct {
	Name       string           `json:"name"`
	Status     string           `json:"status"`
	Needs      []string         `json:"needs"`
	Allowed    bool             `json:"allowed_failure,omitempty"`
	Reason     string           `json:"reason,omitempty"`
	ExitCode   int              `json:"exit_code"`
	Attempts   int              `json:"attempts"`
	Started    *time.Time       `json:"started,omitempty"`
	Finished   *time.Time       `json:"finished,omitempty"`
	DurationMS int64            `json:"duration_ms"`
	Tests      *testsJSON       `json:"tests,omitempty"`
	Failures   []report.Failure `json:"failures,omitempty"`
	Coverage   *float64         `json:"coverage,omitempty"`
	Artifacts  []artifactJSON   `json:"artifacts,omitempty"`
	Agent      string           `json:"agent,omitempty"` // the agent that ran it; "" for the server
}

type runJSON struct {
	Project    string     `json:"project"`
	Number     int        `json:"number"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	Branch     string     `json:"branch"`
	Commit     string     `json:"commit"`
	Message    string     `json:"message"`
	Event      string     `json:"event"`
	Trigger    string     `json:"trigger,omitempty"`
	RerunOf    int        `json:"rerun_of,omitempty"`
	FromStep   string     `json:"from_step,omitempty"`
	Created    time.Time  `json:"created"`
	Started    *time.Time `json:"started,omitempty"`
	Finished   *time.Time `json:"finished,omitempty"`
	DurationMS int64      `json:"duration_ms"`
	Artifact   string     `json:"artifact,omitempty"`
	Tests      *testsJSON `json:"tests,omitempty"`
	Coverage   *float64   `json:"coverage,omitempty"`
	Steps      []stepJSON `json:"steps,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// elapsedMS is how long something took, or has been taking while still going, in ms.
func elapsedMS(start, end time.Time) int64 {
	if start.IsZero() {
		return 0
	}
	if end.IsZero() {
		end = time.Now()
	}
	return end.Sub(start).Milliseconds()
}

func toRunJSON(r *store.Run) runJSON {
	return runJSON{Project: r.Project, Number: r.Number, Status: r.Status, Reason: r.Reason, Branch: r.Branch,
		Commit: r.Commit, Message: r.Message, Event: r.Event, Trigger: r.Trigger, RerunOf: r.RerunOf,
		FromStep: r.FromStep, Created: r.Created, Started: timePtr(r.Started), Finished: timePtr(r.Finished),
		DurationMS: elapsedMS(r.Started, r.Finished), Artifact: r.Artifact}
}

func toStepJSON(s *store.Step) stepJSON {
	out := stepJSON{Name: s.Name, Status: s.Status, Needs: s.Needs, Allowed: s.Allowed, Reason: s.Reason, Agent: s.Agent,
		ExitCode: s.ExitCode, Attempts: s.Attempts, Started: timePtr(s.Started), Finished: timePtr(s.Finished),
		DurationMS: elapsedMS(s.Started, s.Finished)}
	if out.Needs == nil {
		out.Needs = []string{}
	}
	if len(s.Reports) > 0 {
		var sum report.Summary
		if json.Unmarshal(s.Reports, &sum) == nil {
			if t := sum.Tests; t != nil {
				out.Tests = &testsJSON{Passed: t.Passed, Failed: t.Failed, Skipped: t.Skipped}
				out.Failures = t.Failures
			}
			if c := sum.Coverage; c != nil {
				pct := c.Percent()
				out.Coverage = &pct
			}
		}
	}
	if len(s.Artifacts) > 0 {
		var descs []ocispec.Descriptor
		if json.Unmarshal(s.Artifacts, &descs) == nil {
			for _, d := range descs {
				out.Artifacts = append(out.Artifacts, artifactJSON{Path: d.Annotations[ocispec.AnnotationTitle],
					Digest: d.Digest.String(), Size: d.Size})
			}
		}
	}
	return out
}

// runDetail is a run with its steps and their totals.
func (s *Server) runDetail(ctx context.Context, r *store.Run) (runJSON, error) {
	out := toRunJSON(r)
	steps, err := s.cfg.Store.Steps(ctx, r.ID)
	if err != nil {
		return out, err
	}
	for _, st := range steps {
		sj := toStepJSON(st)
		if sj.Tests != nil {
			if out.Tests == nil {
				out.Tests = &testsJSON{}
			}
			out.Tests.Passed += sj.Tests.Passed
			out.Tests.Failed += sj.Tests.Failed
			out.Tests.Skipped += sj.Tests.Skipped
		}
		if sj.Coverage != nil {
			out.Coverage = sj.Coverage
		}
		out.Steps = append(out.Steps, sj)
	}
	return out, nil
}
