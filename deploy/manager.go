// Package deploy runs releases as services in environments: it resolves a release in
// the registry, starts its instances through a runtime, waits for their health checks,
// switches the built-in proxy to them atomically (blue-green) or one at a time
// (rolling), drains and stops the old ones, heals instances that die or fail their
// liveness checks, rolls back automatically when a new release turns unhealthy soon
// after its switch, and records every deployment in the store so a restarted server
// can bring environments back to what they should run.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-cd/drover/internal/words"
	"github.com/drover-cd/drover/proxy"
	"github.com/drover-cd/drover/registry"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/runtime"
	"github.com/drover-cd/drover/runtime/swarm"
	"github.com/drover-cd/drover/sandbox"
	"github.com/drover-cd/drover/store"
)

// Deployment strategies.
const (
	BlueGreen = "blue-green" // start the whole new set, switch at once, drain and stop the old
	Rolling   = "rolling"    // replace instances one at a time
)

// Deployment statuses.
const (
	StatusRunning    = "running"
	StatusSuccess    = "success"
	StatusFailure    = "failure"
	StatusRolledBack = "rolled-back"
	// StatusStopped records that a person stopped the service (drover env stop): a
	// restarted server does not start it again; the next deploy of it does.
	StatusStopped = "stopped"
)

// The runtimes an environment's instances run on.
const (
	RuntimeProcess = "process" // process groups on this machine, from the unpacked release
	RuntimeDocker  = "docker"  // containers of the release's image
)

// ErrBadRequest is wrapped by errors the caller can fix: an unknown release, a release
// without a service: section, a bad strategy.
var ErrBadRequest = errors.New("bad deploy request")

// Config is what a Manager needs. Every field but Log, Notify and the durations is
// required.
type Config struct {
	Store    store.Store
	Registry *registry.Registry
	Releases *release.Catalog
	Repos    func(project string) string // the bare repository of a project
	Runtime  runtime.Runtime
	// Containers runs the instances of environments on the docker runtime; nil when the
	// server has none.
	Containers runtime.Runtime
	// DefaultRuntime is RuntimeProcess (the default) or RuntimeDocker: where instances
	// of every environment run.
	DefaultRuntime string
	// ImageRef turns a release's image (REPO@DIGEST in the registry) into a reference
	// the engine pulls. Required with Containers.
	ImageRef func(image string) string
	// ClusterRegistry is HOST:PORT of this server's registry as other machines reach it
	// over TLS (--advertise): Swarm nodes pull releases from there, and the route
	// listeners of services on a Swarm (what <NAME>_URL names there) listen on its HOST.
	// "" refuses deploys to runtime: swarm, saying why.
	ClusterRegistry string
	// NewToken makes a random token and the hash the store keeps of it: the pull
	// credentials of Swarm generations.
	NewToken func() (token string, hash []byte, err error)
	Proxy    *proxy.Proxy
	Dir      string // releases are unpacked in Dir/releases, instance logs go to Dir/logs
	// ReleaseDir, when set, is where releases are unpacked instead of Dir/releases: a
	// folder the instances' users can reach.
	ReleaseDir string
	// InstanceUIDs, when its First is not 0, runs each environment's instances as a
	// user of its own: First + the environment's id modulo the range's length. The
	// zero Range runs them as the server's user.
	InstanceUIDs sandbox.Range
	// Confine, when set, returns the launcher an instance of the release unpacked in
	// dir is started through (Landlock, for a server that is not root); nil starts
	// instances unconfined.
	Confine func(dir string) []string
	Log     *slog.Logger
	// Secrets resolves a service's secrets for an environment as KEY=VALUE, in the
	// order asked; an error keeps the instance from starting. nil fails services that
	// ask for secrets.
	Secrets func(ctx context.Context, req SecretsRequest) ([]string, error)
	// Notify is told the environment's name whenever what runs there changes.
	Notify func(env string)
	// ExternalDiscovery: a standalone proxy on this machine (drover proxy --discovery)
	// listens on the addresses <NAME>_URL names, so discovery goes on while the server
	// is down; the server only records them and publishes them in the route table.
	ExternalDiscovery bool
	// Inherited are route listeners a previous server handed over (see Listeners), by
	// name: each route takes its own instead of listening anew. The manager owns them.
	Inherited map[string]net.Listener
	// Switched, when set, is called after a deploy switched a route and before it
	// retires the instances it replaced, with the route table's version then: it waits
	// until standalone proxies serve that version (or gives up with an error, which is
	// logged).
	Switched func(ctx context.Context, version string) error

	HealthTimeout  time.Duration // new instances get this long to become healthy; default 60s
	RollbackWindow time.Duration // a release unhealthy this soon after its switch is rolled back; default 5m
	DrainTimeout   time.Duration // in-flight requests on replaced instances get this long; default 30s
	// ProgressInterval is how often a deploy waiting for an instance's health says how
	// long it has waited and what the last probe said; default 5s.
	ProgressInterval time.Duration
}

// Manager deploys releases and keeps them running. Create it with New.
type Manager struct {
	cfg Config
	ctx context.Context // the server's: instances and supervisors live until it ends

	mu            sync.Mutex
	ephemeralBase string                    // from environments.yml; "" for the caller's default
	services      map[string]*service       // by proxy key (service.env.localhost)
	uids          map[string]int            // the user each environment's instances run as (users.go)
	routes        map[string]*route         // by proxy key: the key's own listener (discovery.go)
	addrs         *addressBook              // the address each key's listener had, kept across restarts
	epoch         int64                     // when the manager started, in ns: the route table's versions start with it
	routesVersion atomic.Uint64             // bumped by every change of a route's backends
	quiescing     atomic.Bool               // the route listeners went to a successor (Quiesce)
	frozen        atomic.Bool               // no change of what runs from now on (Freeze)
	ephemeral     map[string]string         // ephemeral environments lent out, to the one each copies
	clusters      map[string]*swarm.Cluster // Swarm managers connected to, by host and TLS folder
}

// New returns a Manager whose instances and supervisors live until ctx ends.
func New(ctx context.Context, cfg Config) *Manager {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Notify == nil {
		cfg.Notify = func(string) {}
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = 60 * time.Second
	}
	if cfg.RollbackWindow <= 0 {
		cfg.RollbackWindow = 5 * time.Minute
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	return &Manager{cfg: cfg, ctx: ctx, services: map[string]*service{}, uids: map[string]int{}, routes: map[string]*route{},
		ephemeral: map[string]string{}, clusters: map[string]*swarm.Cluster{}, addrs: openAddressBook(bookPath(cfg.Dir), cfg.Log), epoch: time.Now().UnixNano()}
}

// Request asks for a release of a project to run in an environment.
type Request struct {
	Env      string
	Project  string
	Ref      string // r12, 12, a commit or a digest; "" for the newest release
	Strategy string // "" for the environment's
	Trigger  string // who or what asks, for the history
	Action   string // for the audit log: "deploy" (the default) or "promote"
	Message  string // why, for the audit log
	Log      func(line string)
	// RequirePassed refuses, with a *NotPassedError, a release whose run has not passed
	// (it failed, or still waits at a gate, runs or is queued). Deploys people ask for
	// set it; a run's own deploy: steps do not: they deploy before their run passed.
	RequirePassed bool
	// Force lets such a release through anyway, saying so in the log and the audit
	// log. Only admins may (the server checks).
	Force bool
	// WithoutRequires deploys even when services the release requires run nowhere in
	// the environment, saying so; otherwise that is refused with a *RequiresError.
	WithoutRequires bool
	// together marks a deploy of a set coming up at once (env up, env apply, a tracking
	// branch): what it requires is not checked, as it may be on its way.
	together bool
}

// Deploy runs the release in the environment, creating the environment on first use,
// and returns the deployment once the new release takes all traffic (or has failed
// without ever taking any).
func (m *Manager) Deploy(ctx context.Context, req Request) (*store.Deployment, error) {
	if err := m.changing(); err != nil {
		return nil, err
	}
	if req.Log == nil {
		req.Log = func(string) {}
	}
	if !validEnvName(req.Env) {
		return nil, fmt.Errorf("environment %q: use lower-case letters, digits and '-': %w", req.Env, ErrBadRequest)
	}
	rel, err := m.lookup(ctx, req.Project, req.Ref)
	if err != nil {
		return nil, err
	}
	forced := ""
	if req.RequirePassed {
		if forced, err = m.checkPassed(ctx, req.Project, rel.Run, req.Force); err != nil {
			return nil, err
		}
	}
	env, err := m.environment(ctx, req.Env, req.Strategy)
	if err != nil {
		return nil, err
	}
	strategy := req.Strategy
	if strategy == "" {
		strategy = env.Strategy
	}
	if strategy != BlueGreen && strategy != Rolling {
		return nil, fmt.Errorf("strategy %q: use %s or %s: %w", strategy, BlueGreen, Rolling, ErrBadRequest)
	}
	t, err := m.prepare(ctx, req.Project, rel)
	if err != nil {
		return nil, err
	}
	t = m.sized(ctx, env, req.Project, t)
	if err := m.fits(req.Env, t); err != nil {
		return nil, err
	}
	switch {
	case req.together:
	case req.WithoutRequires:
		if missing := m.Missing(req.Env, t.service.Requires); len(missing) > 0 {
			req.Log(fmt.Sprintf("without %s, which %s requires: its calls to them fail until they run in %s",
				words.And(missing), t.name, req.Env))
		}
	default:
		if err := m.checkRequires(ctx, req.Env, t.name, t.service.Requires, req.Log); err != nil {
			return nil, err
		}
	}
	d := &store.Deployment{Environment: req.Env, Service: t.name, Project: req.Project, Digest: t.rel.Digest.String(),
		Tag: t.rel.Tag, Run: t.rel.Run, Strategy: strategy, Status: StatusRunning, Trigger: req.Trigger}
	if err := m.cfg.Store.CreateDeployment(ctx, d); err != nil {
		return nil, err
	}
	if forced != "" {
		req.Log(fmt.Sprintf("forced: %s; deploying it anyway, as %s asked", forced, strings.TrimPrefix(req.Trigger, upTrigger)))
	}
	req.Log(fmt.Sprintf("deploying %s:%s (%s) to %s, %s", req.Project, t.rel.Tag, short(d.Digest), req.Env, strategy))
	svc := m.service(req.Env, t.name)
	err = svc.deploy(ctx, t, d, req.Log)
	m.finish(d, err)
	action := req.Action
	if action == "" {
		action = "deploy"
	}
	m.audit(d, action, forcedNote(forced, req.Message))
	if err != nil {
		return d, err
	}
	return d, nil
}

// audit records a deployment's outcome in the audit log.
func (m *Manager) audit(d *store.Deployment, action, message string) {
	if message == "" {
		message = d.Reason
	} else if d.Reason != "" {
		message += "; " + d.Reason
	}
	actor := d.Trigger
	if why, ok := strings.CutPrefix(actor, "automatic rollback: "); ok {
		actor, message = "drover", "automatic rollback: "+why+"; "+message
	} else if who, ok := strings.CutPrefix(actor, upTrigger); ok {
		actor = who
	}
	e := &store.AuditEntry{Actor: actor, Action: action, Environment: d.Environment, Project: d.Project,
		Digest: d.Digest, Run: d.Run, Deployment: d.ID, Result: d.Status, Message: message}
	if err := m.cfg.Store.AppendAudit(context.WithoutCancel(m.ctx), e); err != nil {
		m.cfg.Log.Error("append to the audit log", "action", action, "env", d.Environment, "err", err)
	}
}

// PromoteRequest asks for the release of a project that runs in one environment to run
// in another.
type PromoteRequest struct {
	Project string
	From    string // the environment whose release is promoted
	To      string
	Trigger string // who asks, for the history
	Message string // why, for the audit log
	Force   bool   // promote a release whose run has not passed: see Request.Force
	// WithoutRequires promotes although services it requires run nowhere in To: see
	// Request.WithoutRequires.
	WithoutRequires bool
	Log             func(line string)
}

// Promote deploys to req.To exactly the digest of req.Project that runs in req.From. It
// refuses, unless forced, a release whose run did not pass its pipeline.
func (m *Manager) Promote(ctx context.Context, req PromoteRequest) (*store.Deployment, error) {
	live, err := m.live(ctx, req.From)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(live, func(d *store.Deployment) bool { return d.Project == req.Project })
	if i < 0 {
		return nil, fmt.Errorf("%s runs nothing of %s to promote: %w", req.From, req.Project, ErrBadRequest)
	}
	src := live[i]
	message := "promoted from " + req.From
	if req.Message != "" {
		message += ": " + req.Message
	}
	// The digest that ran in From is what gets promoted. A deploy step deploys the run's
	// artifact as it stands, so the run's release (tagged when it passed) can hold more
	// (a later step's report or layer); what counts is that the run passed, which
	// RequirePassed checks.
	d, err := m.Deploy(ctx, Request{Env: req.To, Project: req.Project, Ref: src.Digest, Trigger: req.Trigger, Action: "promote",
		Message: message, Log: req.Log, RequirePassed: true, Force: req.Force, WithoutRequires: req.WithoutRequires})
	if errors.Is(err, ErrNotPassed) {
		return nil, fmt.Errorf("%s runs %s:%s: %w", req.From, req.Project, src.Tag, err)
	}
	return d, err
}

// finish records a deployment's end.
func (m *Manager) finish(d *store.Deployment, err error) {
	d.Status, d.Reason, d.Finished = StatusSuccess, "", time.Now()
	if err != nil {
		d.Status, d.Reason = StatusFailure, err.Error()
	}
	if uerr := m.cfg.Store.UpdateDeployment(context.WithoutCancel(m.ctx), d); uerr != nil {
		m.cfg.Log.Error("record a deployment's end", "env", d.Environment, "service", d.Service, "err", uerr)
	}
	m.cfg.Notify(d.Environment)
}

// environment returns the environment called name, creating it with strategy (or
// blue-green) on first use.
func (m *Manager) environment(ctx context.Context, name, strategy string) (*store.Environment, error) {
	env, err := m.cfg.Store.Environment(ctx, name)
	if !errors.Is(err, store.ErrNotFound) {
		return env, err
	}
	if strategy == "" {
		strategy = BlueGreen
	}
	env = &store.Environment{Name: name, Strategy: strategy}
	err = m.cfg.Store.CreateEnvironment(ctx, env)
	if errors.Is(err, store.ErrExists) {
		return m.cfg.Store.Environment(ctx, name)
	}
	return env, err
}

// RollbackRequest asks for a project's service in an environment to go back to the
// release it ran before.
type RollbackRequest struct {
	Env     string
	Project string
	Trigger string // who asks, for the history
	// Force rolls back to a release whose run has not passed: see Request.Force.
	Force bool
	Log   func(line string)
}

// Rollback returns a service of req.Project in req.Env to the release it ran before
// its current one: the same digest, nothing rebuilt. It refuses, unless forced, to go
// back to a release whose run did not pass (one a deploy: step put there before its
// run failed, say).
func (m *Manager) Rollback(ctx context.Context, req RollbackRequest) (*store.Deployment, error) {
	if err := m.changing(); err != nil {
		return nil, err
	}
	envName, project := req.Env, req.Project
	live, err := m.cfg.Store.Deployments(ctx, store.DeploymentFilter{Environment: envName, Project: project,
		Status: []string{StatusSuccess}, Limit: 50})
	if err != nil {
		return nil, err
	}
	if len(live) == 0 {
		return nil, fmt.Errorf("%s runs nothing of %s: %w", envName, project, ErrBadRequest)
	}
	current := live[0]
	var previous *store.Deployment
	for _, d := range live[1:] {
		if d.Service == current.Service && d.Digest != current.Digest {
			previous = d
			break
		}
	}
	if previous == nil {
		return nil, fmt.Errorf("%s has run only %s:%s of %s; there is nothing to roll back to: %w",
			envName, project, current.Tag, current.Service, ErrBadRequest)
	}
	forced, err := m.checkPassed(ctx, project, previous.Run, req.Force)
	if err != nil {
		return nil, fmt.Errorf("roll %s in %s back to %s: %w", current.Service, envName, previous.Tag, err)
	}
	if forced != "" && req.Log != nil {
		req.Log(fmt.Sprintf("forced: %s; rolling back to it anyway, as %s asked", forced, req.Trigger))
	}
	return m.rollback(ctx, nil, current, previous, req.Trigger, forced, req.Log)
}

// errSuperseded is why a rollback is abandoned: the deployment it would undo no longer
// runs.
var errSuperseded = errors.New("superseded")

// rollback deploys previous's release in place of current's and marks current rolled
// back. s is the service to roll back; nil looks it up (creating it when the server runs
// nothing of it, say after a failed restart). forced is what a person forced to get
// there, for the audit log ("" for nothing). The rollback is abandoned, with an error
// wrapping errSuperseded and ErrBadRequest, when the service runs another deployment
// than current by the time it is its turn: it never undoes a newer deploy.
func (m *Manager) rollback(ctx context.Context, s *service, current, previous *store.Deployment, trigger, forced string, log func(string)) (*store.Deployment, error) {
	if log == nil {
		log = func(string) {}
	}
	if s == nil {
		s = m.service(current.Environment, current.Service)
	}
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	s.mu.Lock()
	live, gone := s.current, s.gone
	s.mu.Unlock()
	if gone {
		return nil, fmt.Errorf("roll %s in %s back: %w", s.name, s.env, errGone)
	}
	if live != nil && live.ID != current.ID {
		return nil, fmt.Errorf("roll %s in %s back from %s: it runs %s (deployment #%d) now: %w: %w", s.name, s.env,
			current.Tag, live.Tag, live.ID, errSuperseded, ErrBadRequest)
	}
	t, err := m.resolve(ctx, previous.Project, previous.Digest)
	if err != nil {
		return nil, fmt.Errorf("roll back to %s:%s: %w", previous.Project, previous.Tag, err)
	}
	if env, err := m.cfg.Store.Environment(ctx, current.Environment); err == nil {
		t = m.sized(ctx, env, previous.Project, t)
	}
	d := &store.Deployment{Environment: current.Environment, Service: s.name, Project: previous.Project,
		Digest: previous.Digest, Tag: previous.Tag, Run: previous.Run, Strategy: BlueGreen, Status: StatusRunning,
		Trigger: trigger, RollbackOf: current.ID}
	if err := m.cfg.Store.CreateDeployment(ctx, d); err != nil {
		return nil, err
	}
	log(fmt.Sprintf("rolling %s in %s back from %s to %s", s.name, current.Environment, current.Tag, previous.Tag))
	err = s.run(ctx, t, d, log, false)
	m.finish(d, err)
	m.audit(d, "rollback", forcedNote(forced, fmt.Sprintf("from %s to %s", current.Tag, previous.Tag)))
	if err != nil {
		return d, err
	}
	current.Status, current.Reason = StatusRolledBack, "rolled back to "+previous.Tag+" by "+trigger
	if current.Finished.IsZero() {
		current.Finished = time.Now()
	}
	if err := m.cfg.Store.UpdateDeployment(context.WithoutCancel(ctx), current); err != nil {
		m.cfg.Log.Error("mark a deployment rolled back", "id", current.ID, "err", err)
	}
	return d, nil
}

// Reconcile brings every environment back to what the store says it runs: it marks
// deployments a stopped server left running as failed and starts the live release of
// every service that Adopt did not find running. A service a deploy reached since the server started is left alone,
// and a restored release keeps the switch time it had (when its deployment finished):
// a restart does not open a new rollback window.
func (m *Manager) Reconcile(ctx context.Context) error {
	stale, err := m.cfg.Store.Deployments(ctx, store.DeploymentFilter{Status: []string{StatusRunning}, Limit: 1000})
	if err != nil {
		return err
	}
	for _, d := range stale {
		d.Status, d.Reason, d.Finished = StatusFailure, "the server stopped during this deploy", time.Now()
		if err := m.cfg.Store.UpdateDeployment(ctx, d); err != nil {
			return err
		}
	}
	envs, err := m.cfg.Store.Environments(ctx)
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, env := range envs {
		live, err := m.live(ctx, env.Name)
		if err != nil {
			return err
		}
		for _, d := range live {
			// All at once: services find each other through the proxy, so none waits
			// for another to start.
			wg.Go(func() {
				t, err := m.resolve(ctx, d.Project, d.Digest)
				restored := false
				if err == nil {
					restored, err = m.service(env.Name, d.Service).restore(ctx, m.sized(ctx, env, d.Project, t), d)
				}
				if err == nil && !restored {
					m.cfg.Log.Info("already running: adopted, or deployed since the server started",
						"env", env.Name, "service", d.Service, "release", d.Tag)
					return
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("restart %s in %s at %s: %w", d.Service, env.Name, d.Tag, err))
					mu.Unlock()
					return
				}
				m.cfg.Log.Info("restarted a service after the server started", "env", env.Name, "service", d.Service, "release", d.Tag)
			})
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// forget stops a service's instances and drops it and its route listener. A deploy
// under way there fails (its health waits end) and stops what it started; nothing
// starts there again: not a replacement, not a rollback.
func (m *Manager) forget(ctx context.Context, s *service) {
	s.mu.Lock()
	s.gone = true
	s.mu.Unlock()
	s.cancel()
	s.stopAll(ctx) // what serves now, without waiting for a deploy under way
	s.deployMu.Lock()
	s.stopAll(ctx) // whatever that deploy left
	s.deployMu.Unlock()
	m.mu.Lock()
	if m.services[s.key] == s {
		delete(m.services, s.key)
	}
	rt := m.routes[s.key]
	delete(m.routes, s.key)
	m.mu.Unlock()
	if rt != nil {
		rt.close()
	}
}

// service returns the live state of a service in an environment. A forgotten service
// stays until forget is done with it: deploys to it fail meanwhile.
func (m *Manager) service(env, name string) *service {
	key := proxy.Key(name, env)
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.services[key]
	if s == nil {
		s = &service{m: m, env: env, name: name, key: key, pending: map[int]int{}}
		s.ctx, s.cancel = context.WithCancel(m.ctx)
		m.services[key] = s
	}
	return s
}

// withReplicas is t with service.Replicas n (0: one instance): t itself when it has n
// already, else a copy, the release's own service left as it is.
func withReplicas(t *target, n int) *target {
	if t.service.Replicas == n {
		return t
	}
	svc := *t.service
	svc.Replicas = n
	t2 := *t
	t2.service = &svc
	return &t2
}

// validEnvName reports whether name can name an environment (and a host name label).
func validEnvName(name string) bool {
	if name == "" || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// short is a digest's first 12 hex digits.
func short(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
