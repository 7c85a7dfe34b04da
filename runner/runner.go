// Package runner executes the server's runs: a queue in the store, a fixed number of
// workers woken the moment a run is queued, a fresh checkout of the run's commit per run,
// the engine, and the results and logs written back as they happen.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/drover-cd/drover/dispatch"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/notify"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/sandbox"
	"github.com/drover-cd/drover/steplog"
	"github.com/drover-cd/drover/store"
)

// Run states of the store, as in shared/DESIGN.md.
const (
	Pending   = "pending"
	Running   = "running"
	Waiting   = "waiting"
	Success   = "success"
	Failure   = "failure"
	Cancelled = "cancelled"
	Errored   = "error"
	// Lost is a step whose agent stopped answering: it runs again elsewhere unless it
	// has no attempt left.
	Lost = "lost"
)

// Active reports whether a run in this state may still change: queued, running or
// waiting for an approval.
func Active(status string) bool {
	return status == Pending || status == Running || status == Waiting
}

// ErrNoPipeline is returned by Enqueue for a commit without a drover.yml.
var ErrNoPipeline = errors.New("the commit has no drover.yml")

// ErrFinished is returned when cancelling a run that already ended.
var ErrFinished = errors.New("the run has already finished")

// Config is what a Runner needs. Store, Logs, Repos, WorkDir and Backend are required.
type Config struct {
	Store     store.Store
	Logs      *steplog.Store
	Hub       *notify.Hub                 // told about every change; nil tells nobody
	Repos     func(project string) string // the bare repository of a project
	WorkDir   string                      // runs check out into WorkDir/<run id>
	Publisher *release.Publisher          // where runs publish their artifacts; nil fails steps with artifacts
	// Deploy carries out a run's deploy: step, deploying the artifact digest (already
	// published under the run's number) to env; nil skips deploy steps.
	Deploy func(ctx context.Context, run *store.Run, env, digest string, log func(string)) error
	// Environment lends an environment: step its environment, made with the artifact
	// digest ("" when the run has none yet, already published under the run's number);
	// nil skips such steps.
	Environment func(ctx context.Context, run *store.Run, name, digest string, log func(string)) (vars []string, release func(), err error)
	// Secrets resolves the secrets a step of run asks for (engine.Job.Secrets); nil
	// fails steps that ask for secrets.
	Secrets func(ctx context.Context, run *store.Run, req engine.SecretRequest) ([]string, error)
	// Postlude, when set, is asked after every run whose steps all passed for work Drover
	// does itself at the end of it (applying the system project's environments.yml): it
	// returns a step name and the work, or "" for none. The work shows as that step, with
	// its log; an error fails the run.
	Postlude func(ctx context.Context, run *store.Run) (step string, work func(log func(string)) error)
	// Released, when set, is told about every run that passed, after its release is
	// published (environments tracking its branch take it).
	Released func(run *store.Run)
	Backend  engine.Backend
	// Isolation, when set, keeps each run's steps from the server and other runs: a
	// user per worker (sandbox.StepUsers) or Landlock (sandbox.StepConfiner). nil runs
	// them as the server's user, unconfined.
	Isolation sandbox.Steps
	Workers   int // runs executing at once on this machine; 0 means the number of CPUs
	// Agents, when set, sends the compute steps of runs to agents once any is
	// registered (dispatch.Dispatcher.Remote); such runs take no worker of Workers:
	// up to RemoteRuns of them execute at once.
	Agents *dispatch.Dispatcher
	// RemoteRuns is how many runs whose steps go to agents execute at once; 0 means 256.
	RemoteRuns int
	Parallel   int // steps of one run executing at once; 0 means the number of CPUs
	Log        *slog.Logger
}

// Runner runs queued runs. Create it with New, then Start it.
type Runner struct {
	cfg  Config
	wake chan struct{}
	// wakeRemote wakes the workers beyond Workers, which take only runs whose steps
	// go to agents.
	wakeRemote chan struct{}
	wg         sync.WaitGroup

	mu      sync.Mutex
	cancels map[int64]context.CancelCauseFunc
	// cancelled holds cancels that came for a claimed run before execute registered its
	// cancel function; execute applies them at once.
	cancelled map[int64]error

	// StepDurations records how long every step that ran took, for /metrics.
	StepDurations *Histogram
}

// New returns a Runner; it does nothing until Start.
func New(cfg Config) *Runner {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.RemoteRuns <= 0 {
		cfg.RemoteRuns = 256
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Hub == nil {
		cfg.Hub = &notify.Hub{}
	}
	return &Runner{cfg: cfg, wake: make(chan struct{}, cfg.Workers), wakeRemote: make(chan struct{}, cfg.RemoteRuns), cancels: map[int64]context.CancelCauseFunc{},
		cancelled:     map[int64]error{},
		StepDurations: NewHistogram(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)}
}

// Start recovers from a previous stop and starts the workers, which run until ctx ends.
// Runs that were executing when the server stopped are queued again when nothing they
// did reached outside their workspace, and end in error otherwise (recover.go); queued
// runs are run, and so are waiting runs whose approvals were all decided.
func (r *Runner) Start(ctx context.Context) error {
	if err := r.recover(ctx); err != nil {
		return err
	}
	// Approvals decided while their run still ran, just before a stop.
	if err := r.resumeDecided(ctx); err != nil {
		return fmt.Errorf("resume runs whose approvals were decided: %w", err)
	}
	if u, ok := r.cfg.Isolation.(*sandbox.StepUsers); ok && u.UIDs.Len() < r.cfg.Workers {
		return fmt.Errorf("%d workers need %d step uids; the range %s has %d", r.cfg.Workers, r.cfg.Workers, u.UIDs, u.UIDs.Len())
	}
	workers := r.cfg.Workers
	if r.cfg.Agents != nil {
		workers += r.cfg.RemoteRuns
	}
	for slot := range workers {
		r.wg.Add(1)
		go r.worker(ctx, slot)
	}
	go r.expireApprovals(ctx, time.Second)
	r.kick()
	return nil
}

// Wait returns once every worker has stopped after Start's ctx ended.
func (r *Runner) Wait() { r.wg.Wait() }

// kick wakes one idle worker, without blocking.
func (r *Runner) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
	if r.cfg.Agents != nil {
		select {
		case r.wakeRemote <- struct{}{}:
		default:
		}
	}
}

// endSteps gives the steps still pending, running or waiting (approvals) a final status.
func (r *Runner) endSteps(ctx context.Context, runID int64, status, reason string) error {
	steps, err := r.cfg.Store.Steps(ctx, runID)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if s.Status != Pending && s.Status != Running && s.Status != Waiting {
			continue
		}
		s.Status, s.Reason = status, reason
		if s.Status == Errored && s.Started.IsZero() {
			s.Status = string(engine.Skipped)
		}
		if !s.Started.IsZero() {
			s.Finished = time.Now()
		}
		if err := r.cfg.Store.SaveStep(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// worker runs queued runs one after another; slot, from 0, picks its step user. Slots
// from Workers on take only runs whose steps go to agents.
func (r *Runner) worker(ctx context.Context, slot int) {
	defer r.wg.Done()
	wake := r.wake
	if slot >= r.cfg.Workers {
		wake = r.wakeRemote
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		if slot >= r.cfg.Workers && !r.remote() {
			continue // runs execute on this machine now: the first Workers take them
		}
		for ctx.Err() == nil {
			run, err := r.claim(ctx)
			if err != nil {
				// Nothing polls the queue: look again soon, or queued runs would wait
				// for the next push.
				r.cfg.Log.Error("claim a queued run; retrying in 2s", "err", err)
				time.AfterFunc(2*time.Second, r.kick)
				break
			}
			if run == nil {
				break
			}
			r.kick() // more may be queued: let another idle worker look
			r.execute(ctx, run, slot)
		}
	}
}

// claim takes the oldest queued run, or nil when none is queued.
func (r *Runner) claim(ctx context.Context) (*store.Run, error) {
	runs, err := r.cfg.Store.Runs(ctx, store.RunFilter{Status: []string{Pending}, Limit: 20, Oldest: true})
	if err != nil {
		return nil, err
	}
	for _, run := range runs {
		ok, err := r.cfg.Store.TransitionRun(ctx, run.ID, []string{Pending}, Running, "")
		if err != nil {
			return nil, err
		}
		if ok {
			run.Status = Running
			return run, nil
		}
	}
	return nil, nil
}

// remote reports whether new runs send their compute steps to agents.
func (r *Runner) remote() bool {
	return r.cfg.Agents != nil && r.cfg.Agents.Remote()
}

func (r *Runner) workspace(runID int64) string {
	return filepath.Join(r.cfg.WorkDir, fmt.Sprint(runID))
}

func runKey(id int64) string        { return fmt.Sprintf("run:%d", id) }
func projectKey(name string) string { return "project:" + name }

// RunKey is the notify key of a run's changes.
func RunKey(id int64) string { return runKey(id) }

// ProjectKey is the notify key of changes to a project's runs.
func ProjectKey(name string) string { return projectKey(name) }
