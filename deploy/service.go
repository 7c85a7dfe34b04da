package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/health"
	"github.com/drover-cd/drover/proxy"
	"github.com/drover-cd/drover/runtime"
	"github.com/drover-cd/drover/runtime/container"
	"github.com/drover-cd/drover/store"
)

// maxEvents is how many events a service remembers for its status.
const maxEvents = 50

// service is what runs of one service in one environment: the live instances behind
// its proxy route and the deployment they belong to.
type service struct {
	m              *Manager
	env, name, key string
	// ctx ends when the service is forgotten: health waits of a deploy under way end
	// with it.
	ctx    context.Context
	cancel context.CancelFunc

	deployMu sync.Mutex // one deploy (or rollback) at a time

	mu        sync.Mutex
	current   *store.Deployment
	target    *target
	instances []*instance // the set behind the route
	switched  time.Time   // when current took the traffic
	gen       int         // bumped by each switch: healing an older generation stops
	// rollingBack is the deployment an automatic rollback is undoing, so the other
	// instances failing with it do not start more rollbacks.
	rollingBack int64
	// rollbackFailed is the deployment whose automatic rollback failed: its failing
	// instances are healed rather than rolled back again.
	rollbackFailed int64
	pending        map[int]int // replacements under way, by the generation they serve
	// deploying counts deploys to this service under way, waiting their turn included:
	// a deploy of a service requiring this one waits for them (requires.go).
	deploying int
	gone      bool // forgotten (its environment went away): nothing starts here again
	seq       int  // numbers instance names
	events    []Event

	// On a Swarm (runtime: swarm): the watchers of the generations in use, by Swarm
	// service name, and the live one, whose healthy tasks are instances.
	fleets map[string]*fleet
	live   *fleet
}

// errGone is why a deploy to a service whose environment was taken down meanwhile fails.
var errGone = errors.New("its environment was taken down")

// Event is something that happened to a service, for its status.
type Event struct {
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
}

// instance is one running instance and its health checker.
type instance struct {
	rt       runtime.Instance
	checker  *health.Checker
	started  time.Time
	restarts int           // how many instances this one's slot went through before it
	gen      int           // the generation it serves in (guarded by service.mu)
	retired  chan struct{} // closed when the instance leaves the live set on purpose
	once     sync.Once
}

func (i *instance) retire() { i.once.Do(func() { close(i.retired) }) }

func (s *service) event(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.m.cfg.Log.Info(msg, "env", s.env, "service", s.name)
	s.mu.Lock()
	s.events = append(s.events, Event{Time: time.Now(), Message: msg})
	if len(s.events) > maxEvents {
		s.events = s.events[len(s.events)-maxEvents:]
	}
	s.mu.Unlock()
	s.m.cfg.Notify(s.env)
}

// deploy replaces the live set with instances of t by d's strategy.
func (s *service) deploy(ctx context.Context, t *target, d *store.Deployment, log func(string)) error {
	s.mu.Lock()
	s.deploying++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.deploying--
		s.mu.Unlock()
	}()
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	return s.run(ctx, t, d, log, false)
}

// restore starts d's release as the live one after the server started, unless a deploy
// got there first (then it reports false). The restored release took the traffic when d
// finished, before the restart: a restart does not open a fresh rollback window.
func (s *service) restore(ctx context.Context, t *target, d *store.Deployment) (bool, error) {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	s.mu.Lock()
	busy := s.current != nil
	s.mu.Unlock()
	if busy {
		return false, nil
	}
	return true, s.run(ctx, t, d, func(string) {}, true)
}

// run deploys t by d's strategy; callers hold deployMu. restored says d's release took
// the traffic at d.Finished (Reconcile), not now.
func (s *service) run(ctx context.Context, t *target, d *store.Deployment, log func(string), restored bool) error {
	if s.isGone() {
		return fmt.Errorf("deploy %s to %s: %w", s.name, s.env, errGone)
	}
	replicas := max(1, t.service.Replicas)
	var err error
	if s.m.runtimeOf(s.env) == RuntimeSwarm {
		err = s.swarmRun(ctx, t, d, log, restored)
	} else if d.Strategy == Rolling {
		err = s.rolling(ctx, t, d, replicas, log, restored)
	} else {
		err = s.blueGreen(ctx, t, d, replicas, log, restored)
	}
	if err != nil && !errors.Is(err, errGone) && s.isGone() {
		err = fmt.Errorf("deploy %s to %s: %w (%v)", s.name, s.env, errGone, err)
	}
	return err
}

func (s *service) isGone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone
}

// switchedAt is when d's release takes the traffic: now, or for a restored one when d
// finished.
func switchedAt(d *store.Deployment, restored bool) time.Time {
	if restored {
		return d.Finished
	}
	return time.Now()
}

// blueGreen starts the whole new set, switches the route to it at once, then drains
// and stops the old set. A new set that does not become healthy never gets traffic.
func (s *service) blueGreen(ctx context.Context, t *target, d *store.Deployment, replicas int, log func(string), restored bool) error {
	started := time.Now()
	fresh := make([]*instance, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { fresh[i], errs[i] = s.start(ctx, t, 0, log) })
	}
	wg.Wait()
	stopFresh := func() {
		for _, inst := range fresh {
			if inst != nil {
				s.stop(inst)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		stopFresh()
		s.event("deploy of %s failed before the switch; %s keeps the traffic", t.rel.Tag, s.currentTag())
		return err
	}
	log(fmt.Sprintf("%d of %d instances healthy in %s", replicas, replicas, time.Since(started).Round(time.Millisecond)))
	old, err := s.switchTo(t, d, fresh, switchedAt(d, restored))
	if err != nil {
		stopFresh()
		return err
	}
	s.m.switched(ctx)
	log(fmt.Sprintf("switched %s in %s to %s after %s", s.name, s.env, t.rel.Tag, time.Since(started).Round(time.Millisecond)))
	s.event("%s took the traffic (%d instances, %s)", t.rel.Tag, replicas, d.Strategy)
	s.retire(ctx, old, log)
	return nil
}

// rolling replaces the instances one at a time: start one, add it, remove an old one.
// The deploy's generation begins when its first instance takes traffic (the release's
// switch, which opens its rollback window); every instance of an older generation is
// old, whatever release it runs, and is retired by the end.
//
// A rolling deploy that fails halfway leaves the new instances that already took
// traffic serving beside the old ones still there, and the service on its previous
// deployment (the store's live one), which healing replaces failed instances with. A
// first deploy that fails halfway stops what it started: nothing ran before it.
func (s *service) rolling(ctx context.Context, t *target, d *store.Deployment, replicas int, log func(string), restored bool) error {
	s.mu.Lock()
	prevCurrent, prevTarget, prevSwitched := s.current, s.target, s.switched
	s.mu.Unlock()
	gen := 0 // this deploy's generation, once it took traffic
	for i := range replicas {
		inst, err := s.start(ctx, t, 0, log)
		s.mu.Lock()
		if err == nil && s.gone {
			s.mu.Unlock()
			s.stop(inst)
			s.mu.Lock()
			err = fmt.Errorf("deploy %s to %s: %w", s.name, s.env, errGone)
		}
		if err != nil {
			s.mu.Unlock()
			s.rollingFailed(ctx, t, gen, prevCurrent, prevTarget, prevSwitched, i, replicas, log)
			return err
		}
		if gen == 0 {
			s.gen++
			gen = s.gen
			s.target, s.current, s.switched = t, d, switchedAt(d, restored)
		}
		inst.gen = gen
		s.instances = append(s.instances, inst)
		var out *instance
		for _, o := range s.instances {
			if o.gen != gen {
				out = o
				break
			}
		}
		if out != nil {
			s.instances = slices.DeleteFunc(s.instances, func(x *instance) bool { return x == out })
		}
		s.publish()
		s.mu.Unlock()
		go s.supervise(inst)
		s.m.switched(ctx)
		log(fmt.Sprintf("instance %d of %d of %s is serving", i+1, replicas, t.rel.Tag))
		if out != nil {
			s.retire(ctx, []*instance{out}, log)
		}
	}
	// Old instances beyond the new replica count.
	s.mu.Lock()
	var extra []*instance
	s.instances = slices.DeleteFunc(s.instances, func(x *instance) bool {
		if x.gen != gen {
			extra = append(extra, x)
			return true
		}
		return false
	})
	s.publish()
	s.mu.Unlock()
	if len(extra) > 0 {
		s.m.switched(ctx)
	}
	s.retire(ctx, extra, log)
	s.event("%s took the traffic (%d instances, rolling)", t.rel.Tag, replicas)
	return nil
}

// rollingFailed leaves the service as a rolling deploy that failed at instance i
// (0-based) left it: on its previous deployment, the instances serving now all healed
// at gen (the failed deploy's generation, 0 when none of its instances took traffic).
func (s *service) rollingFailed(ctx context.Context, t *target, gen int, prevCurrent *store.Deployment, prevTarget *target,
	prevSwitched time.Time, i, replicas int, log func(string)) {
	if gen == 0 {
		s.event("rolling deploy of %s failed at its first instance; %s keeps the traffic", t.rel.Tag, s.currentTag())
		return
	}
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return
	}
	if prevTarget == nil {
		// Nothing ran before: the failed deploy leaves nothing running.
		fresh := s.instances
		s.instances = nil
		s.current, s.target, s.switched = nil, nil, time.Time{}
		s.gen++
		s.publish()
		s.mu.Unlock()
		s.retire(ctx, fresh, log)
		s.event("rolling deploy of %s stopped at instance %d of %d; its first instances were stopped", t.rel.Tag, i+1, replicas)
		return
	}
	s.current, s.target, s.switched = prevCurrent, prevTarget, prevSwitched
	for _, x := range s.instances {
		x.gen = gen
	}
	s.mu.Unlock()
	s.event("rolling deploy of %s stopped at instance %d of %d; %d of its instances serve beside %s's", t.rel.Tag, i+1,
		replicas, i, prevCurrent.Tag)
	s.topUp() // old instances that failed before its first switch were not replaced
}

// switchTo makes fresh the live set of t and d, atomically for the proxy, and returns
// the set it replaced. It refuses when the service is gone.
func (s *service) switchTo(t *target, d *store.Deployment, fresh []*instance, at time.Time) ([]*instance, error) {
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return nil, fmt.Errorf("deploy %s to %s: %w", s.name, s.env, errGone)
	}
	old := s.instances
	s.instances = fresh
	s.target, s.current, s.switched = t, d, at
	s.gen++
	for _, inst := range fresh {
		inst.gen = s.gen
	}
	s.publish()
	s.mu.Unlock()
	for _, inst := range fresh {
		go s.supervise(inst)
	}
	return old, nil
}

// publish gives the proxy the live set. Callers hold s.mu.
func (s *service) publish() {
	backends := make([]proxy.Backend, 0, len(s.instances))
	for _, inst := range s.instances {
		backends = append(backends, proxy.Backend{ID: inst.rt.Name(), Addr: inst.rt.Addr()})
	}
	s.m.cfg.Proxy.Set(s.key, backends)
	s.m.routesChanged()
	s.m.cfg.Notify(s.env)
}

// retire lets the old instances finish their in-flight requests, then stops them.
func (s *service) retire(ctx context.Context, old []*instance, log func(string)) {
	if len(old) == 0 {
		return
	}
	ids := make([]string, 0, len(old))
	for _, inst := range old {
		inst.retire()
		ids = append(ids, inst.rt.Name())
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.m.cfg.DrainTimeout)
	if err := s.m.cfg.Proxy.Drain(dctx, ids...); err != nil {
		log(fmt.Sprintf("draining the old instances took longer than %s; stopping them anyway", s.m.cfg.DrainTimeout))
	}
	cancel()
	var wg sync.WaitGroup
	for _, inst := range old {
		wg.Go(func() { s.stop(inst) })
	}
	wg.Wait()
	log(fmt.Sprintf("stopped %d old instances", len(old)))
}

// stop stops an instance and its checker.
func (s *service) stop(inst *instance) {
	inst.retire()
	inst.checker.Stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(s.m.ctx), 2*time.Minute)
	defer cancel()
	if err := inst.rt.Stop(sctx); err != nil {
		s.m.cfg.Log.Warn("stop an instance", "instance", inst.rt.Name(), "err", err)
	}
}

// stopAll stops every live instance (on a Swarm: removes every generation); the route
// goes away.
func (s *service) stopAll(ctx context.Context) {
	if s.m.runtimeOf(s.env) == RuntimeSwarm {
		s.mu.Lock()
		s.live = nil // before the route goes: the fleet publishes nothing from now on
		s.instances = nil
		s.gen++
		s.m.cfg.Proxy.Set(s.key, nil)
		s.m.routesChanged()
		s.mu.Unlock()
		s.swarmStopAll(ctx) // stops every fleet, the live one's included
		return
	}
	s.mu.Lock()
	old := s.instances
	s.instances = nil
	s.gen++
	s.m.cfg.Proxy.Set(s.key, nil)
	s.m.routesChanged()
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, inst := range old {
		wg.Go(func() { s.stop(inst) })
	}
	wg.Wait()
}

// start starts one instance of t and waits until it is healthy. The instance lives on
// the server's context, not the request's: a deploy request that ends does not stop
// what it started.
//
// While it waits, log hears every Config.ProgressInterval how long it has waited and what the
// last health probe said.
func (s *service) start(ctx context.Context, t *target, restarts int, log func(string)) (*instance, error) {
	rtName := s.m.runtimeOf(s.env)
	docker := rtName == RuntimeDocker
	env, err := s.environ(t, rtName)
	if err != nil {
		return nil, err
	}
	secrets, masker, err := s.secrets(ctx, t)
	if err != nil {
		return nil, err
	}
	env = append(env, secrets...) // over env: and Drover's variables
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("%s.%s.%s.%d", s.name, s.env, short(t.rel.Digest.String())[:8], s.seq)
	s.mu.Unlock()
	spec := runtime.Spec{Name: name, Dir: t.dir, Command: t.service.Command, Env: env, StopTimeout: t.service.StopTimeout,
		LogFile: filepath.Join(s.m.cfg.Dir, "logs", s.env, s.name, name+".log"), Masker: masker,
		Labels: s.labels(t)}
	if spec.UID, err = s.m.instanceUID(ctx, s.env); err != nil {
		return nil, err
	}
	spec.GID = spec.UID
	if s.m.cfg.Confine != nil {
		spec.Launcher = s.m.cfg.Confine(t.dir)
	}
	run := s.m.cfg.Runtime
	if docker {
		if run = s.m.cfg.Containers; run == nil {
			return nil, errors.New("the docker runtime is not available on this server")
		}
		if err := s.containerSpec(&spec, t); err != nil {
			return nil, err
		}
	} else if spec.Command == "" {
		return nil, fmt.Errorf("%s of %s runs as a process here and has no service.command", s.name, t.rel.Tag)
	}
	rt, err := run.Start(s.m.ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	inst := s.watch(rt, t, time.Now(), s.m.cfg.HealthTimeout)
	inst.restarts = restarts
	checker := inst.checker
	wctx, cancel := context.WithTimeout(ctx, s.m.cfg.HealthTimeout)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)() // the service forgotten meanwhile
	healthy := make(chan error, 1)
	go func() { healthy <- health.WaitHealthy(wctx, checker) }()
	tick := time.NewTicker(cmp.Or(s.m.cfg.ProgressInterval, 5*time.Second))
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case err = <-healthy:
			waiting = false
		case <-rt.Done():
			err, waiting = fmt.Errorf("exited: %v", rt.Err()), false
		case <-tick.C:
			probe := "none failed yet"
			if last := checker.LastError(); last != "" {
				probe = last
			}
			log(fmt.Sprintf("waiting for %s in %s to become healthy: %s, last probe: %s", s.name, s.env,
				time.Since(inst.started).Round(time.Second), probe))
		}
	}
	if err != nil {
		s.stop(inst)
		return nil, fmt.Errorf("%s of %s never became healthy: %v%s", name, t.rel.Tag, err, tail(rt))
	}
	return inst, nil
}

// tail is the instance's last output lines, for error messages.
func tail(rt runtime.Instance) string {
	lines := rt.Tail(10)
	if len(lines) == 0 {
		return " (it printed nothing)"
	}
	return "; its last output:\n  " + strings.Join(lines, "\n  ")
}

// environ is an instance's environment: a minimal inherited one, the service's env:,
// what Drover knows about the deployment, and <NAME>_URL for every required service.
func (s *service) environ(t *target, runtimeName string) ([]string, error) {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok && runtimeName != RuntimeSwarm { // a task keeps its image's
			env = append(env, k+"="+v)
		}
	}
	for _, v := range t.service.Env {
		env = append(env, v.Name+"="+os.Expand(v.Value, func(k string) string { return lookup(env, k) }))
	}
	env = append(env, "DROVER_ENV="+s.env, "DROVER_SERVICE="+s.name, "DROVER_RELEASE="+t.rel.Tag,
		"DROVER_DIGEST="+t.rel.Digest.String(), fmt.Sprintf("DROVER_RUN=%d", t.rel.Run))
	for _, req := range t.service.Requires {
		if runtimeName == RuntimeDocker {
			// Containers cannot reach the host's loopback; they reach each other by alias.
			env = append(env, fmt.Sprintf("%s_URL=http://%s:%d", envName(req), alias(req, s.env), container.ContainerPort))
			continue
		}
		u, err := s.m.URL(s.env, req)
		if err != nil {
			return nil, err
		}
		env = append(env, envName(req)+"_URL="+u)
	}
	return env, nil
}

// envName turns a service name into an environment variable name: INVENTORY for
// inventory, USER_API for user-api.
func envName(service string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, service)
}

// lookup finds KEY in a KEY=VALUE list, the last one winning.
func lookup(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == key {
			return v
		}
	}
	return ""
}

func (s *service) currentTag() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return "nothing"
	}
	return s.current.Tag
}
