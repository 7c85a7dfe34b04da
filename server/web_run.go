package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/drover-cd/drover/report"
	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/store"
)

// runPage is the data of a run's page.
type runPage struct {
	Run       runJSON
	Graph     dagGraph
	Failures  []stepFailure  // failed tests of every step, first
	Coverage  []stepCoverage // coverage of every step that measured it
	Artifacts []stepArtifact
	Failed    []string  // failed steps, for "Re-run from this step"
	Published *runFiles // the files of the run's published artifact; nil when none
	Approvals []approvalView
	// Missing is what the run's release requires and the environments it deploys to
	// next lack, while it waits for an approval.
	Missing []envMissing
	// Unisolated says how steps on this server are not isolated; "" when they are.
	Unisolated string
}

// approvalView is an approval a waiting run asks for, as its page shows it.
type approvalView struct {
	Step      string
	Role      string
	Deadline  time.Time
	CanDecide bool // the viewer holds the role
}

type stepFailure struct {
	Step string
	report.Failure
}

type stepCoverage struct {
	Step    string
	Percent float64
}

type stepArtifact struct {
	Step string
	artifactJSON
}

// findRun is the run named by the path's {p} and {n}, or an error page.
func (w *web) findRun(rw http.ResponseWriter, r *http.Request) (*store.Run, bool) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 {
		w.fail(rw, r, http.StatusNotFound, fmt.Errorf("run number %q is not a positive number", r.PathValue("n")))
		return nil, false
	}
	run, err := w.s.cfg.Store.Run(r.Context(), r.PathValue("p"), n)
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("run %s #%d: %w", r.PathValue("p"), n, err))
		return nil, false
	}
	return run, true
}

// run shows a run: its header, step graph, tests, coverage, artifacts and actions.
func (w *web) run(rw http.ResponseWriter, r *http.Request) {
	run, ok := w.findRun(rw, r)
	if !ok {
		return
	}
	detail, err := w.s.runDetail(r.Context(), run)
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("steps of run %s #%d: %w", run.Project, run.Number, err))
		return
	}
	page := newRunPage(detail)
	page.Published = w.publishedFiles(r, run.Project, run.Number, run.Artifact)
	if run.Status == runner.Waiting {
		as, err := w.s.cfg.Store.Approvals(r.Context(), run.ID)
		if err != nil {
			w.failErr(rw, r, err)
			return
		}
		for _, a := range as {
			if a.Decision == "pending" {
				page.Approvals = append(page.Approvals, approvalView{Step: a.Step, Role: a.Role, Deadline: a.Deadline,
					CanDecide: principal(r).CanApprove(a.Role)})
			}
		}
		if page.Missing, err = w.s.missingRequires(r.Context(), run, detail.Steps); err != nil {
			w.s.cfg.Log.Warn("what a waiting run's release requires", "project", run.Project, "run", run.Number, "err", err)
		}
	}
	page.Unisolated = w.s.cfg.IsolationWarning
	w.render(rw, r, http.StatusOK, "run", fmt.Sprintf("%s #%d", run.Project, run.Number), page)
}

// newRunPage gathers what the run page shows from the run's JSON view.
func newRunPage(detail runJSON) runPage {
	page := runPage{Run: detail, Graph: layoutDAG(detail.Steps, func(step string) string {
		return stepURL(detail.Project, detail.Number, step)
	})}
	for _, st := range detail.Steps {
		for _, f := range st.Failures {
			page.Failures = append(page.Failures, stepFailure{Step: st.Name, Failure: f})
		}
		if st.Coverage != nil {
			page.Coverage = append(page.Coverage, stepCoverage{Step: st.Name, Percent: *st.Coverage})
		}
		for _, a := range st.Artifacts {
			page.Artifacts = append(page.Artifacts, stepArtifact{Step: st.Name, artifactJSON: a})
		}
		if st.Status == "failure" || st.Status == "error" || st.Status == "cancelled" || st.Status == "lost" {
			page.Failed = append(page.Failed, st.Name)
		}
	}
	return page
}

// runForm is the run a form on its page was posted for, with the form parsed; false
// when it answered an error itself.
func (w *web) runForm(rw http.ResponseWriter, r *http.Request) (*store.Run, bool) {
	run, ok := w.findRun(rw, r)
	if !ok {
		return nil, false
	}
	r.Body = http.MaxBytesReader(rw, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		w.fail(rw, r, http.StatusBadRequest, fmt.Errorf("read the form: %w", err))
		return nil, false
	}
	return run, true
}

// cancel is the Cancel button: it stops the run and returns to its page.
func (w *web) cancel(rw http.ResponseWriter, r *http.Request) {
	run, ok := w.findRun(rw, r)
	if !ok {
		return
	}
	err := w.s.cfg.Runner.Cancel(r.Context(), run.Project, run.Number, principal(r).Name)
	if err != nil && !errors.Is(err, runner.ErrFinished) {
		w.failErr(rw, r, fmt.Errorf("cancel run %s #%d: %w", run.Project, run.Number, err))
		return
	}
	http.Redirect(rw, r, runURL(run.Project, run.Number), http.StatusSeeOther)
}

// rerun is the Re-run buttons: it queues the run again, from the form's from_step if
// given, and opens the new run.
func (w *web) rerun(rw http.ResponseWriter, r *http.Request) {
	run, ok := w.runForm(rw, r)
	if !ok {
		return
	}
	next, err := w.s.cfg.Runner.Rerun(r.Context(), run.Project, run.Number, r.PostForm.Get("from_step"), principal(r).Name)
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("re-run %s #%d: %w", run.Project, run.Number, err))
		return
	}
	http.Redirect(rw, r, runURL(next.Project, next.Number), http.StatusSeeOther)
}

// approve is the Approve and Reject buttons of a waiting run's page.
func (w *web) approve(rw http.ResponseWriter, r *http.Request) {
	run, ok := w.runForm(rw, r)
	if !ok {
		return
	}
	_, err := w.s.decide(r, run, r.PostForm.Get("step"), r.PostForm.Get("decision") == "approve", r.PostForm.Get("message"))
	switch {
	case errors.Is(err, errCannotApprove):
		w.fail(rw, r, http.StatusForbidden, err)
		return
	case err != nil:
		w.failErr(rw, r, fmt.Errorf("decide the approval of %s #%d: %w", run.Project, run.Number, err))
		return
	}
	http.Redirect(rw, r, runURL(run.Project, run.Number), http.StatusSeeOther)
}
