package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/drover-cd/drover/deploy"
	"github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/edge"
	"github.com/drover-cd/drover/handover"
	"github.com/drover-cd/drover/notify"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/proxy"
	"github.com/drover-cd/drover/registry"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/runtime/container"
	"github.com/drover-cd/drover/runtime/process"
	"github.com/drover-cd/drover/sandbox"
	"github.com/drover-cd/drover/server"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/store"
)

// deployments is the server's deploy side: the runtime, the proxy and its listener, and
// the manager that ties them to the registry.
type deployments struct {
	st      store.Store
	manager *deploy.Manager
	secrets *secretScopes // resolves steps' and services' secrets
	proxy   *proxy.Proxy
	ln      net.Listener
	hs      *http.Server
	cancel  context.CancelFunc
	engine  *docker.Engine // nil unless services run as containers
}

// startDeployments kills instances a crashed server left running, opens the proxy's
// listener and returns the manager. Instances live until stop.
func (o *serverOptions) startDeployments(ctx context.Context, st store.Store, reg *registry.Registry, releases *release.Catalog,
	repos func(string) string, hub *notify.Hub, dockerEngine func(context.Context) (*docker.Engine, error), images docker.Registry,
	taken *handover.Taken, proxies *edge.Tracker, log *slog.Logger) (*deployments, error) {
	if o.runtime != deploy.RuntimeProcess && o.runtime != deploy.RuntimeDocker {
		return nil, badInput(fmt.Errorf("--runtime %q: choose process or docker", o.runtime))
	}
	// The engine is needed up front only with --runtime docker; environments with
	// runtime: docker connect on their first deploy, and say so if none answers.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	eng, err := dockerEngine(cctx)
	cancel()
	switch {
	case err != nil && o.runtime == deploy.RuntimeDocker:
		return nil, fmt.Errorf("--runtime docker: %w", err)
	case err == nil:
		// Step containers a stopped server left; service instances are adopted (Adopt).
		if n, err := eng.RemoveLeftovers(ctx, map[string]string{docker.LabelRun: ""}); err != nil {
			return nil, fmt.Errorf("remove containers a previous server left: %w", err)
		} else if n > 0 {
			log.Warn("removed step containers a previous server left", "containers", n)
		}
	}
	containers := &container.Runtime{Engine: dockerEngine, Network: "drover-services-" + shortHash(o.data)}
	// Instances run under a supervisor of their own (drover instance-shim) and outlive
	// the server: the next one adopts them. Those an older drover started as its children
	// are recorded in instances/ and stopped.
	rt := &process.Runtime{State: filepath.Join(o.data, "deploy", "running"), Leftovers: filepath.Join(o.data, "instances"), Log: log}
	if n, err := rt.KillLeftovers(); err != nil {
		return nil, fmt.Errorf("stop instances a previous server left running: %w", err)
	} else if n > 0 {
		log.Warn("stopped service instances an older server left running; they are started again", "instances", n)
	}
	var instanceUIDs sandbox.Range
	if o.serviceUIDs != "off" && os.Geteuid() == 0 && sandbox.Unreachable(filepath.Dir(o.reach)) == "" {
		if instanceUIDs, err = sandbox.ParseRange(o.serviceUIDs); err != nil {
			return nil, badInput(fmt.Errorf("--service-uids: %w", err))
		}
	}
	// A server that is not root confines instances as it does steps.
	var confine func(string) []string
	if os.Geteuid() != 0 && sandbox.LandlockABI() >= sandbox.MinLandlockABI {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		path := os.Getenv("PATH")
		confine = func(dir string) []string { return sandbox.Instance(self, path, o.data, dir, o.hide) }
	}
	ln, err := listenOr(taken.Listener("proxy"), o.proxyListen, log, "--proxy-listen")
	if err != nil {
		return nil, badInput(fmt.Errorf("--proxy-listen %s: %w", o.proxyListen, err))
	}
	// Instances outlive requests and the signal that stops the server: stop ends them.
	ctx, cancel = context.WithCancel(context.Background())
	px := proxy.New(log)
	// Services' secrets, resolved per environment when an instance starts.
	scopes := &secretScopes{st: st, vault: o.vault, ephemeralBase: o.ephemeralBase}
	m := deploy.New(ctx, deploy.Config{
		Secrets: scopes.forService,
		Store:   st, Registry: reg, Releases: releases, Repos: repos, Runtime: rt, Proxy: px,
		Containers: containers, DefaultRuntime: o.runtime,
		ImageRef: images.Ref,
		// Swarm nodes pull releases from the advertised address, with pull tokens.
		ClusterRegistry: o.advertisedHost(),
		NewToken:        server.NewToken,
		Dir:             filepath.Join(o.data, "deploy"), Log: log,
		ReleaseDir:        filepath.Join(o.reach, "deploy", "releases"),
		InstanceUIDs:      instanceUIDs,
		Confine:           confine,
		Notify:            func(env string) { hub.Notify(server.EnvKey(env), server.RoutesKey) },
		Switched:          proxies.Wait, // standalone proxies switch before the old instances go
		HealthTimeout:     o.healthTimeout,
		RollbackWindow:    o.rollbackWindow,
		Inherited:         inheritedRoutes(taken),
		ExternalDiscovery: o.externalDiscovery,
	})
	scopes.manager = m
	containers.Masker = m.MaskerOf // adopted containers' output, masked as before
	d := &deployments{st: st, manager: m, secrets: scopes, proxy: px, ln: ln, cancel: cancel, engine: eng,
		hs: &http.Server{Handler: &closing{h: px}, ReadHeaderTimeout: 10 * time.Second}}
	// What the previous server left serving is routed before the proxy serves.
	started := time.Now()
	if n, err := m.Adopt(ctx); err != nil {
		log.Error("adopt the instances the previous server left serving; they are started again", "err", err)
	} else if n > 0 {
		log.Info("adopted the instances the previous server left serving", "instances", n, "took", time.Since(started).Round(time.Millisecond))
	}
	go d.hs.Serve(ln)
	return d, nil
}

// deployRun is the runner's hook for deploy: steps. An environment with an approval role
// (declared, or production's default) takes a run's release only once the run passed an
// approval: step asking for that role. The run itself has not passed yet, and need not.
func (d *deployments) deployRun(ctx context.Context, run *store.Run, env, digest string, log func(string)) error {
	role, _, err := d.manager.ApprovalRole(ctx, env)
	if err != nil {
		return fmt.Errorf("the approval role %s asks for: %w", env, err) // when unsure, refuse
	}
	if role != "" {
		approvals, err := d.st.Approvals(ctx, run.ID)
		if err != nil {
			return err
		}
		ok := false
		for _, a := range approvals {
			ok = ok || (a.Role == role && a.Decision == "approved")
		}
		if !ok {
			return fmt.Errorf("%s takes releases approved by a %s: add a step `approval: {role: %s}` before this one",
				env, role, role)
		}
	}
	_, err = d.manager.Deploy(ctx, deploy.Request{Env: env, Project: run.Project, Ref: digest,
		Trigger: fmt.Sprintf("run %s #%d", run.Project, run.Number), Log: log})
	return err
}

// environmentFor is the runner's hook for environment: steps; ephemeral ones are made
// from base.
func (d *deployments) environmentFor(base string) func(context.Context, *store.Run, string, string, func(string)) ([]string, func(), error) {
	return func(ctx context.Context, run *store.Run, name, digest string, log func(string)) ([]string, func(), error) {
		lease, err := d.manager.ForStep(ctx, run.Project, run.Number, name, base, digest, log)
		if err != nil {
			return nil, nil, err
		}
		return lease.Vars(), lease.Release, nil
	}
}

// deployed reports whether a project's run was ever live somewhere, for retention.
func deployed(st store.Store) func(project string, run int) bool {
	return func(project string, run int) bool {
		ds, err := st.Deployments(context.Background(), store.DeploymentFilter{Project: project, Run: run,
			Status: []string{deploy.StatusSuccess, deploy.StatusRolledBack}, Limit: 1})
		return err != nil || len(ds) > 0 // when unsure, keep
	}
}

// quiesce stops accepting on the proxy's and the routes' listeners, which a successor
// took over, and closes their connections as their requests end (see quiesce).
func (d *deployments) quiesce() {
	quiesce(d.hs, d.ln)
	d.manager.Quiesce()
}

// stop stops the proxy and health checks and healing; with keep, instances that outlive
// the server go on serving (deploy.Manager.Shutdown), else every instance stops.
func (d *deployments) stop(keep bool) {
	// Bounded: a stream through the proxy (server-sent events, say) must not keep the
	// server from exiting; what is still open then is cut.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.manager.Shutdown(ctx, keep)
	if d.hs.Shutdown(ctx) != nil {
		d.hs.Close()
	}
	d.cancel()
	if d.engine != nil && !keep {
		// The instances' network, and whatever a failed stop left.
		rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d.engine.RemoveLeftovers(rctx, nil)
	}
}

// SystemProject is the project whose environments.yml declares the environments.
const SystemProject = "system"

// postlude applies the system project's environments.yml at the end of its passing runs,
// as a step called "environments" that logs the plan.
func (d *deployments) postlude(repos func(string) string) func(context.Context, *store.Run) (string, func(func(string)) error) {
	return func(ctx context.Context, run *store.Run) (string, func(func(string)) error) {
		if run.Project != SystemProject {
			return "", nil
		}
		data, err := source.ReadFileLimit(ctx, repos(run.Project), run.Commit, pipeline.EnvironmentsFile, pipeline.MaxFileSize)
		if err != nil {
			return "", nil // the commit has no environments.yml
		}
		return "environments", func(log func(string)) error {
			if err := d.mayApply(ctx, run); err != nil {
				return err
			}
			envs, err := pipeline.ParseEnvironments(pipeline.EnvironmentsFile, data)
			if err != nil {
				return err
			}
			_, err = d.manager.Apply(ctx, envs, fmt.Sprintf("%s #%d", run.Project, run.Number), log)
			return err
		}
	}
}

// mayApply says why run's environments.yml may not change the environments, or returns
// nil. Changing them is an admin's act (POST /environments/apply): a hosted system
// project's file applies only from a run an admin started (pushed, triggered or re-ran),
// or a developer could declare production without its approval role. A followed system
// project was an admin's choice, as is what its remote holds.
func (d *deployments) mayApply(ctx context.Context, run *store.Run) error {
	p, err := d.st.Project(ctx, run.Project)
	if err != nil {
		return err
	}
	if p.URL != "" {
		return nil
	}
	u, err := d.st.User(ctx, run.Trigger)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("environments.yml changes environments, which only an admin may do, and %q, who started this run, is no user: ask an admin to push it, re-run it, or apply it with drover env apply", run.Trigger)
	case err != nil:
		return err
	case u.Role != server.RoleAdmin:
		return fmt.Errorf("environments.yml changes environments, which only an admin may do; %s, who started this run, has the %s role: ask an admin to push it, re-run it, or apply it with drover env apply", u.Name, u.Role)
	}
	return nil
}

// applyAtStart applies the environments.yml that declares the environments when the
// server starts: the system project's newest passing run's, else DATA/environments.yml.
func (d *deployments) applyAtStart(ctx context.Context, st store.Store, repos func(string) string, data string, log *slog.Logger) {
	var file []byte
	from := filepath.Join(data, pipeline.EnvironmentsFile)
	runs, err := st.Runs(ctx, store.RunFilter{Project: SystemProject, Status: []string{"success"}, Limit: 1})
	if err == nil && len(runs) > 0 {
		from = fmt.Sprintf("%s #%d", SystemProject, runs[0].Number)
		file, err = source.ReadFileLimit(ctx, repos(SystemProject), runs[0].Commit, pipeline.EnvironmentsFile, pipeline.MaxFileSize)
	} else {
		file, err = os.ReadFile(from)
	}
	if err != nil {
		return // nothing declared
	}
	envs, err := pipeline.ParseEnvironments(pipeline.EnvironmentsFile, file)
	if err != nil {
		log.Error("environments.yml is invalid; environments stay as they are", "from", from, "err", err)
		return
	}
	if _, err := d.manager.Apply(ctx, envs, "drover", func(line string) { log.Info("environments: "+line, "from", from) }); err != nil {
		log.Error("apply environments.yml", "from", from, "err", err)
	}
}

// shortHash is a short stable name for s, for Docker object names.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:10]
}
