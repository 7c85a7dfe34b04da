package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/steplog"
	"github.com/drover-cd/drover/store"
)

var _ engine.Sink = (*sink)(nil)

// sink records a run's events: step states in the store, lines in the step logs, and a
// notification for watchers. The engine calls it from one goroutine at a time.
type sink struct {
	r   *Runner
	run *store.Run
	rec context.Context
	// server ends when the server stops: a step cancelled by that was interrupted,
	// not cancelled by anyone.
	server    context.Context
	positions map[string]int
	needs     map[string][]string
	logs      map[string]*steplog.Writer
	started   map[string]time.Time // when each step's first attempt started
}

func (s *sink) Handle(e engine.Event) {
	switch e.Type {
	case engine.StepStarted:
		s.r.cfg.Log.Debug("step started", "project", s.run.Project, "run", s.run.Number, "step", e.Step) // bench/agents.sh
		if s.started[e.Step].IsZero() {
			s.started[e.Step] = e.Time
		}
		s.save(&store.Step{Name: e.Step, Status: Running, Attempts: e.Attempt, Started: e.Time})
		if s.logs[e.Step] == nil {
			w, err := s.r.cfg.Logs.Create(s.run.ID, s.positions[e.Step])
			if err != nil {
				s.r.cfg.Log.Error("open step log", "step", e.Step, "err", err)
				return
			}
			s.logs[e.Step] = w
		}
	case engine.StepLog:
		if w := s.logs[e.Step]; w != nil {
			w.WriteLine(e.Line)
		}
	case engine.StepNote:
		if w := s.logs[e.Step]; w != nil {
			w.WriteLine("drover: " + e.Line)
		}
	case engine.StepLost:
		if w := s.logs[e.Step]; w != nil {
			w.WriteLine(fmt.Sprintf("drover: attempt %d %s; the step runs again", e.Attempt, e.Line))
		}
		s.save(&store.Step{Name: e.Step, Status: Lost, Reason: e.Line, Attempts: e.Attempt, Started: s.started[e.Step]})
	case engine.StepFinished:
		res := e.Result
		st := &store.Step{Name: res.Name, Status: string(res.Status), Allowed: res.Allowed, Reason: res.Reason,
			ExitCode: res.ExitCode, Attempts: res.Attempts, Started: res.Started, Finished: res.Finished, Agent: res.Agent}
		if res.Status == engine.Cancelled && s.server != nil && s.server.Err() != nil {
			st.Status, st.Reason = Errored, stepInterrupted
		}
		if res.Reports != nil {
			st.Reports, _ = json.Marshal(res.Reports)
		}
		if len(res.Artifacts) > 0 {
			st.Artifacts, _ = json.Marshal(res.Artifacts)
		}
		s.save(st)
		if d := res.Duration(); d > 0 {
			s.r.StepDurations.Observe(d)
		}
		if w := s.logs[e.Step]; w != nil {
			if err := w.Close(); err != nil {
				s.r.cfg.Log.Error("close step log", "step", e.Step, "err", err)
			}
			delete(s.logs, e.Step)
		}
	}
}

// save writes a step's state with the needs from the graph.
func (s *sink) save(st *store.Step) {
	st.RunID, st.Position, st.Needs = s.run.ID, s.positions[st.Name], s.needs[st.Name]
	if err := s.r.cfg.Store.SaveStep(s.rec, st); err != nil {
		s.r.cfg.Log.Error("record step", "step", st.Name, "err", err)
	}
	s.r.cfg.Hub.Notify(runKey(s.run.ID))
}

func (s *sink) closeAll() {
	for name, w := range s.logs {
		_ = w.Close()
		delete(s.logs, name)
	}
}

// postlude runs Drover's own end-of-run work as one more step called name, at position
// pos, logging into it like any step.
func (s *sink) postlude(name string, pos int, work func(log func(string)) error) error {
	s.positions[name] = pos
	started := time.Now()
	s.Handle(engine.Event{Type: engine.StepStarted, Step: name, Attempt: 1, Time: started})
	err := work(func(line string) { s.Handle(engine.Event{Type: engine.StepLog, Step: name, Attempt: 1, Line: line}) })
	res := &engine.StepResult{Name: name, Status: engine.Success, Attempts: 1, Started: started, Finished: time.Now()}
	if err != nil {
		res.Status, res.Reason, res.ExitCode = engine.Failure, err.Error(), 1
	}
	s.Handle(engine.Event{Type: engine.StepFinished, Step: name, Result: res, Time: res.Finished})
	return err
}
