package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/health"
	"github.com/drover-cd/drover/runtime/swarm"
)

// fleetPoll is how often a fleet lists its generation's tasks.
const fleetPoll = 250 * time.Millisecond

// fleet watches the tasks of one Swarm generation of a service: every task that runs
// and has an address is health-checked there, and while the generation is the live
// one, the healthy tasks are what the proxy routes to. Swarm replaces tasks that die
// or whose node is lost; the fleet drops those that stop answering and adds their
// replacements once healthy. That is the self-healing on a Swarm: Drover does not
// start tasks itself.
type fleet struct {
	s       *service
	cluster *swarm.Cluster
	name    string // the Swarm service
	t       *target
	// assume routes tasks found at the first listing before their first check passes:
	// an adopted generation was serving when the previous server stopped.
	assume bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	tasks map[string]*fleetTask // by task ID
	last  []swarm.Task          // the latest listing, for progress and errors
	err   error                 // the latest listing's error
}

// fleetTask is one task being checked.
type fleetTask struct {
	inst    *instance
	task    swarm.Task
	assumed bool // routed before its first check (see fleet.assume)
	// leaving: Swarm is stopping it (a start-first update replaced it). It takes traffic
	// only while no other task of the generation is healthy.
	leaving bool
}

// fleet returns the watcher of the generation called name, starting it if needed;
// assume is fleet.assume for a new one. Callers hold deployMu.
func (s *service) fleet(cl *swarm.Cluster, name string, t *target, assume bool) *fleet {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.fleets[name]; f != nil {
		f.mu.Lock()
		f.t = t
		f.mu.Unlock()
		return f
	}
	f := &fleet{s: s, cluster: cl, name: name, t: t, assume: assume, tasks: map[string]*fleetTask{}, done: make(chan struct{})}
	f.ctx, f.cancel = context.WithCancel(s.ctx)
	if s.fleets == nil {
		s.fleets = map[string]*fleet{}
	}
	s.fleets[name] = f
	go f.run()
	return f
}

// stop ends the fleet's watch and its health checks; the tasks are the cluster's.
func (f *fleet) stop() {
	f.s.mu.Lock()
	if f.s.fleets[f.name] == f {
		delete(f.s.fleets, f.name)
	}
	f.s.mu.Unlock()
	f.cancel()
	<-f.done
}

func (f *fleet) run() {
	defer close(f.done)
	defer func() {
		f.mu.Lock()
		for id, ft := range f.tasks {
			ft.inst.checker.Stop()
			ft.inst.retire()
			delete(f.tasks, id)
		}
		f.mu.Unlock()
	}()
	tick := time.NewTicker(fleetPoll)
	defer tick.Stop()
	for {
		if err := f.refresh(f.ctx); err != nil && f.ctx.Err() == nil {
			f.s.m.cfg.Log.Debug("list a Swarm generation's tasks", "generation", f.name, "err", err)
		}
		select {
		case <-f.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refresh lists the tasks, starts checking new ones, drops gone ones and, when the
// fleet is live, publishes the routable set if it changed.
func (f *fleet) refresh(ctx context.Context) error {
	tasks, err := f.cluster.Tasks(ctx, f.name)
	f.mu.Lock()
	f.err = err
	if err != nil {
		f.mu.Unlock()
		return err
	}
	f.last = tasks
	seen := map[string]bool{}
	var joined []string
	for _, task := range tasks {
		if task.State != "running" || task.Addr == "" {
			continue
		}
		seen[task.ID] = true
		leaving := task.Desired != "running"
		if ft := f.tasks[task.ID]; ft != nil {
			ft.task, ft.leaving = task, leaving
			continue
		}
		if leaving {
			continue // never routed: nothing to keep
		}
		rt := &taskInstance{task: task, name: f.name + "." + fmt.Sprint(task.Slot) + "." + task.ID[:min(8, len(task.ID))],
			done: make(chan struct{})}
		// A task gets the health timeout from its creation to pass its first check.
		inst := f.s.watch(rt, f.t, task.Created, max(0, f.s.m.cfg.HealthTimeout-time.Since(task.Created)))
		f.tasks[task.ID] = &fleetTask{inst: inst, task: task, assumed: f.assume}
		joined = append(joined, rt.name+" on "+task.Node)
	}
	var left []string
	gone := map[string]string{} // instance name -> node ID
	for id, ft := range f.tasks {
		if !seen[id] {
			ft.inst.checker.Stop()
			ft.inst.rt.(*taskInstance).end(ft.task)
			ft.inst.retire()
			delete(f.tasks, id)
			left = append(left, ft.inst.rt.Name()+" on "+ft.task.Node)
			gone[ft.inst.rt.Name()] = ft.task.NodeID
		}
	}
	f.assume = false
	f.mu.Unlock()
	var lost []string // on a node that is down: requests in flight there get no answer
	for name, node := range gone {
		if ready, err := f.cluster.NodeReady(ctx, node); err == nil && !ready {
			lost = append(lost, name)
		}
	}
	f.s.mu.Lock()
	if f.s.live == f {
		f.publishLocked()
	}
	f.s.mu.Unlock()
	if len(lost) > 0 {
		f.s.m.cfg.Proxy.Abort(lost...)
	}
	f.rollBackIfSick()
	if f.s.isLive(f) {
		if len(left) > 0 {
			f.s.event("Swarm tasks gone: %s", strings.Join(left, ", "))
		}
		if len(joined) > 0 {
			f.s.event("Swarm tasks running: %s", strings.Join(joined, ", "))
		}
	}
	return nil
}

func (s *service) isLive(f *fleet) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live == f
}

// routable is the fleet's tasks that take traffic: healthy ones, and those assumed
// healthy until their first check says otherwise; tasks Swarm is replacing only while
// no other is.
func (f *fleet) routable() []*instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out, leaving []*instance
	for _, ft := range f.tasks {
		st := ft.inst.checker.State()
		if st != health.Healthy && !(ft.assumed && st == health.Unknown) {
			continue
		}
		if ft.leaving {
			leaving = append(leaving, ft.inst)
		} else {
			out = append(out, ft.inst)
		}
	}
	if len(out) == 0 {
		out = leaving
	}
	slices.SortFunc(out, func(a, b *instance) int { return strings.Compare(a.rt.Name(), b.rt.Name()) })
	return out
}

// publishLocked makes the fleet's routable tasks the service's live set, telling the
// proxy when it changed. Callers hold s.mu.
//
// A task that leaves because it stopped answering its checks at all (its node is gone,
// say: no connection, or no answer in time) is declared dead to the proxy: requests in
// flight there would wait for an answer that never comes, so they are cut and the safe
// ones sent to another task. One that answers its checks with an error status, or that
// Swarm stops on purpose, keeps its requests in flight and finishes them.
func (f *fleet) publishLocked() {
	next := f.routable()
	if slices.Equal(next, f.s.instances) {
		return
	}
	var dead []string
	for _, inst := range f.s.instances {
		if !slices.Contains(next, inst) && inst.checker.State() == health.Unhealthy && !answers(inst.checker.LastError()) {
			dead = append(dead, inst.rt.Name())
		}
	}
	f.s.instances = next
	f.s.publish()
	if len(dead) > 0 {
		f.s.m.cfg.Proxy.Abort(dead...)
	}
}

// ids are the proxy backend IDs of the fleet's tasks.
func (f *fleet) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ft := range f.tasks {
		out = append(out, ft.inst.rt.Name())
	}
	return out
}

// waitReady waits until n tasks that run spec (a swarm fingerprint) are healthy, and
// no update is under way, for up to timeout; log hears how it goes every progress
// interval.
func (f *fleet) waitReady(ctx context.Context, spec string, n int, timeout time.Duration, log func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer context.AfterFunc(f.s.ctx, cancel)()
	tick := time.NewTicker(fleetPoll)
	defer tick.Stop()
	progress := time.NewTicker(cmp.Or(f.s.m.cfg.ProgressInterval, 5*time.Second))
	defer progress.Stop()
	started := time.Now()
	for {
		healthy, status := f.readiness(spec)
		if healthy >= n {
			svc, err := f.cluster.Inspect(ctx, f.name)
			if err == nil && !svc.Updating {
				return nil
			}
			if err == nil && svc.UpdateError != "" {
				return fmt.Errorf("Swarm stopped its update: %s", svc.UpdateError)
			}
		}
		select {
		case <-ctx.Done():
			if f.s.ctx.Err() != nil {
				return errGone
			}
			return fmt.Errorf("%d of %d tasks healthy after %s: %s", healthy, n, time.Since(started).Round(time.Second), status)
		case <-progress.C:
			log(fmt.Sprintf("waiting for %s: %d of %d tasks healthy after %s; %s", f.name, healthy, n,
				time.Since(started).Round(time.Second), status))
		case <-tick.C:
		}
	}
}

// readiness counts the healthy tasks running spec and says what the others do.
func (f *fleet) readiness(spec string) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err.Error()
	}
	healthy := 0
	var others []string
	for _, task := range f.last {
		if task.Spec != spec || task.Desired != "running" {
			continue
		}
		ft := f.tasks[task.ID]
		switch {
		case ft != nil && ft.inst.checker.State() == health.Healthy:
			healthy++
		case ft != nil:
			probe := ft.inst.checker.LastError()
			if probe == "" {
				probe = "no check passed yet"
			}
			others = append(others, fmt.Sprintf("task %d on %s: %s", task.Slot, task.Node, probe))
		default:
			what := task.State
			if task.Err != "" {
				what += ": " + task.Err
			}
			if task.Node != "" {
				what += " on " + task.Node
			}
			others = append(others, fmt.Sprintf("task %d: %s", task.Slot, what))
		}
	}
	if len(others) == 0 {
		return healthy, "waiting for Swarm to schedule the tasks"
	}
	return healthy, strings.Join(others, "; ")
}

// taskInstance is a Swarm task as a runtime.Instance, for the health checks, the proxy
// and the status. Swarm starts and stops tasks; Stop does nothing.
type taskInstance struct {
	task swarm.Task
	name string
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	err  error
}

func (ti *taskInstance) Name() string                   { return ti.name }
func (ti *taskInstance) Addr() string                   { return ti.task.Addr }
func (ti *taskInstance) Pid() int                       { return 0 }
func (ti *taskInstance) Node() string                   { return ti.task.Node }
func (ti *taskInstance) Done() <-chan struct{}          { return ti.done }
func (ti *taskInstance) Stop(ctx context.Context) error { return nil }

func (ti *taskInstance) Err() error {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return ti.err
}

func (ti *taskInstance) Tail(int) []string {
	if err := ti.Err(); err != nil {
		return []string{err.Error()}
	}
	return nil
}

// end marks the task gone, as last seen.
func (ti *taskInstance) end(last swarm.Task) {
	ti.once.Do(func() {
		ti.mu.Lock()
		why := "task " + last.State
		if last.Err != "" {
			why += ": " + last.Err
		}
		ti.err = errors.New(why)
		ti.mu.Unlock()
		close(ti.done)
	})
}

// answers reports whether a health check's failure came with an HTTP answer ("GET
// /healthz: 500 Internal Server Error"): the instance is there, only unwell.
func answers(lastErr string) bool {
	_, rest, ok := strings.Cut(lastErr, ": ")
	return ok && len(rest) >= 4 && rest[3] == ' ' && strings.Trim(rest[:3], "0123456789") == ""
}

// rollBackIfSick rolls the service back when a task of the live generation fails its
// checks with an answer of its own (an error status: the release's doing, not a lost
// node's) within the rollback window after the switch, as on one machine. Swarm itself
// restarts tasks that exit.
func (f *fleet) rollBackIfSick() {
	f.mu.Lock()
	why := ""
	for _, ft := range f.tasks {
		if last := ft.inst.checker.LastError(); ft.inst.checker.State() == health.Unhealthy && answers(last) {
			why = ft.inst.rt.Name() + " failed its health check (" + last + ")"
			break
		}
	}
	f.mu.Unlock()
	if why == "" {
		return
	}
	s := f.s
	s.mu.Lock()
	current := s.current
	if s.live != f || current == nil || current.ID == 0 || current.RollbackOf != 0 || s.gone ||
		time.Since(s.switched) >= s.m.cfg.RollbackWindow || s.rollingBack == current.ID || s.rollbackFailed == current.ID {
		s.mu.Unlock()
		return
	}
	s.rollingBack = current.ID
	s.mu.Unlock()
	if prev := s.previous(current); prev != nil {
		go s.autoRollback(current, prev, why)
		return
	}
	s.mu.Lock()
	s.rollingBack = 0
	s.rollbackFailed = current.ID // nothing to go back to: do not look again
	s.mu.Unlock()
}
