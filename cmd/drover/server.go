package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/atomicfile"
	"github.com/drover-cd/drover/backend/container"
	"github.com/drover-cd/drover/backend/process"
	"github.com/drover-cd/drover/deploy"
	"github.com/drover-cd/drover/dispatch"
	"github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/edge"
	"github.com/drover-cd/drover/internal/datadir"
	"github.com/drover-cd/drover/internal/duration"
	"github.com/drover-cd/drover/notify"
	"github.com/drover-cd/drover/registry"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/sandbox"
	"github.com/drover-cd/drover/secret"
	"github.com/drover-cd/drover/server"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/steplog"
	"github.com/drover-cd/drover/store"
	"github.com/drover-cd/drover/store/sqlstore"
)

type serverOptions struct {
	data    string
	listen  string
	db      string
	public  bool
	workers int
	grace   time.Duration
	// noLocalSteps: compute steps always wait for agents.
	noLocalSteps bool
	leasePeriod  time.Duration
	agentRuns    int
	retention    server.Retention

	stepUIDs    string
	hide        []string // sockets confined steps and instances must not reach
	reach       string   // where workspaces, homes and unpacked releases live (reachable)
	serviceUIDs string
	runtime     string
	proxyListen string
	// externalDiscovery: drover proxy --discovery serves <NAME>_URL addresses.
	externalDiscovery bool
	ephemeralBase     string
	healthTimeout     time.Duration
	rollbackWindow    time.Duration

	// keepServices leaves deployed services serving when the server stops, for the next
	// one to adopt: drover server always, drover up with --keep-services.
	keepServices bool

	secretKeyFile string        // --secret-key-file; "" for DATA/secret.key
	vault         *secret.Vault // the server's secrets, once serve opened them

	// TLS (server_tls.go): --tls-listen serves the same handler over HTTPS, with the
	// certificate of --tls-cert and --tls-key, or one from the CA in DATA/ca. All ""
	// by default: no TLS listener.
	tlsListen, tlsCert, tlsKey string
	// advertise is --advertise, the URL other machines reach this server at ("" for
	// none); advertisedHost is its HOST:PORT.
	advertise string
}

func serverCommand() *cobra.Command {
	o := &serverOptions{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Drover server: git hosting, runs, API and web UI",
		Long: `Run the Drover server with embedded defaults: SQLite and everything else in --data,
listening on 127.0.0.1:8080. Push a repository with a drover.yml to run its pipeline:

  git push http://127.0.0.1:8080/git/NAME.git main

On first start the server creates an admin token in DATA/admin-token (mode 0600);
git takes it as the password of HTTP basic auth, the API as a bearer token.

Secrets (drover secret set) are encrypted under the key in DATA/secret.key, made at
first start with mode 0600, or in --secret-key-file. Back the key file up with the
database: without it no secret can be read. A rekey cut short (drover secret rekey)
is finished at the next start.`,
		Example: `  drover server
  drover server --data /var/lib/drover --listen :8080 --db postgres://drover@localhost/drover`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.flags(cmd)
	o.keepServices = true // SIGTERM stops the server, not production: drover env stop does that
	return cmd
}

// flags adds the server's flags to cmd (drover server, drover up).
func (o *serverOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "drover-data", "folder for the database, repositories, logs and artifacts")
	f.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to serve HTTP on")
	f.StringVar(&o.db, "db", "", "database: a postgres:// URL, or empty for SQLite in --data")
	f.BoolVar(&o.public, "public", false, "let anonymous users read projects, runs and logs")
	f.IntVar(&o.workers, "workers", runtime.NumCPU(), "runs executing at once on this machine")
	f.BoolVar(&o.noLocalSteps, "no-local-steps", false, "agents: never run compute steps on this machine, even with no agent registered")
	f.Var(duration.Flag(&o.leasePeriod, dispatch.DefaultPeriod), "lease-period", "agents: how long an agent may stay silent before its steps run again elsewhere")
	f.IntVar(&o.agentRuns, "agent-runs", 256, "agents: runs whose steps go to agents executing at once")
	f.Var(duration.Flag(&o.grace, 10*time.Second), "grace", "time a stopped step gets between SIGTERM and SIGKILL")
	f.IntVar(&o.retention.KeepRuns, "keep-runs", 20, "registry: keep the artifacts of each project's last N runs (drover project set overrides)")
	f.Var(duration.Flag(&o.retention.KeepFor, 30*duration.Day), "keep-for", "registry: keep artifacts younger than this")
	f.Var(duration.Flag(&o.retention.Every, time.Hour), "gc-every", "registry: collect garbage this often; 0 only on request (drover registry gc)")
	f.Var(duration.Flag(&o.retention.Grace, time.Hour), "gc-grace", "registry: never collect what a client pushed or looked at this recently")
	f.StringVar(&o.stepUIDs, "step-uids", "20000-20063", "as root: each worker runs its steps as its own unprivileged uid from this range (off: as the server's user)")
	f.StringVar(&o.serviceUIDs, "service-uids", "21000-21999", "as root: each environment's service instances run as its own unprivileged uid from this range (off: as the server's user)")
	f.StringVar(&o.runtime, "runtime", deploy.RuntimeProcess, "where deployed services run: process (from the unpacked release) or docker (containers of the release's image)")
	f.StringVar(&o.proxyListen, "proxy-listen", "127.0.0.1:8000", "address of the proxy in front of deployed services (http://SERVICE.ENV.localhost:PORT/)")
	f.BoolVar(&o.externalDiscovery, "external-discovery", false,
		"a standalone proxy on this machine (drover proxy --discovery) serves the <NAME>_URL addresses instances reach each other at, so discovery outlives the server; the server only records them")
	f.StringVar(&o.ephemeralBase, "ephemeral-base", "staging", "environment: ephemeral steps get every service of this environment at its live release")
	f.Var(duration.Flag(&o.healthTimeout, time.Minute), "health-timeout", "deploys: how long new instances get to become healthy")
	f.Var(duration.Flag(&o.rollbackWindow, 5*time.Minute), "rollback-window", "deploys: a release that turns unhealthy this soon after its switch is rolled back")
	f.StringVar(&o.secretKeyFile, "secret-key-file", "", "the key secrets are encrypted with (64 hex digits, mode 0600; made if missing); default DATA/secret.key")
	o.tlsFlags(cmd)
}

func (o *serverOptions) run(cmd *cobra.Command) error {
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: logLevel()}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return o.serve(ctx, log, stop, nil)
}

// serverInfo is what a started server tells its caller.
type serverInfo struct {
	URL, Proxy, Token, Data string
}

// serve runs the server until ctx ends, then stops it: it calls stopping at once (so a
// second Ctrl-C can end the process) and returns when requests and steps have stopped.
// ready, when set, is called once the server listens.
func (o *serverOptions) serve(ctx context.Context, log *slog.Logger, stopping func(), ready func(serverInfo)) error {
	// Ends on a signal, or when a successor asks to take over (server_handover.go).
	ctx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	// Absolute, so that workspaces, DROVER_WORKSPACE and leftover detection agree.
	data, err := filepath.Abs(o.data)
	if err != nil {
		return badInput(fmt.Errorf("--data %s: %w", o.data, err))
	}
	o.data = data
	if err := o.checkTLS(); err != nil {
		return err
	}
	if n, err := datadir.Tighten(o.data, dataLayout()); err != nil {
		return badInput(fmt.Errorf("--data %s: %w", o.data, err))
	} else if n > 0 {
		log.Warn("tightened the data folder: folders 0700, files 0600, only work/, home/ and deploy/releases/ reachable by steps and services",
			"data", o.data, "changed", n)
	}
	if o.reach, err = o.reachable(); err != nil {
		return err
	}
	if o.reach != o.data {
		log.Info("workspaces, homes and unpacked releases live where the step users can reach them: they cannot pass a folder above the data folder",
			"folder", o.reach)
	}
	dsn := o.db
	if dsn == "" {
		dsn = filepath.Join(o.data, "drover.db")
		// SQLite gives its -wal and -shm files the database file's mode.
		if f, err := os.OpenFile(dsn, os.O_CREATE|os.O_WRONLY, datadir.File); err == nil {
			f.Close()
		}
	}
	st, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		return fmt.Errorf("open the database: %w", err)
	}
	defer st.Close()
	if err := ensureAdminToken(ctx, st, o.data, log); err != nil {
		return err
	}
	if o.vault, err = o.openSecrets(ctx, st, log); err != nil {
		return err
	}
	logs, err := steplog.New(filepath.Join(o.data, "logs"))
	if err != nil {
		return err
	}
	tlsLn, err := o.loadTLS(log)
	if err != nil {
		return err
	}
	// A server already running here hands over its sockets: an in-place upgrade. Asked
	// once what can fail on a bad flag or database has passed, and before anything that
	// would touch the running server's steps.
	taken, err := o.takeOver(ctx, log)
	if err != nil {
		return err
	}
	defer taken.Close() // sockets it did not pass on, if this server fails to start
	work := filepath.Join(o.reach, "work")
	leftovers := &process.Leftovers{Dir: filepath.Join(o.data, "pids"), Marker: "DROVER_WORKSPACE=" + work + string(filepath.Separator)}
	if n, err := leftovers.Kill(); err != nil {
		return err
	} else if n > 0 {
		log.Warn("stopped steps a previous server left running", "process_groups", n)
	}
	reg, err := registry.New(filepath.Join(o.data, "registry"))
	if err != nil {
		return err
	}
	reg.Immutable, reg.Log = release.Immutable, log
	// Listening first: the Docker Engine pulls and pushes through this address.
	ln, err := listenOr(taken.Listener("api"), o.listen, log, "--listen")
	if err != nil {
		return badInput(fmt.Errorf("--listen %s: %w", o.listen, err))
	}
	defer ln.Close()
	if tlsLn != nil {
		if err := tlsLn.listen(taken.Listener("tls"), o.tlsListen, log); err != nil {
			return err
		}
		defer tlsLn.close()
	}
	engineToken := rand.Text()
	images := docker.Registry{Host: loopback(ln.Addr()), Token: engineToken}
	dockerEngine := docker.Lazy(docker.Owner(o.data), images)
	hub := &notify.Hub{}
	hosting := &source.Hosting{Root: filepath.Join(o.data, "git"), Log: log}
	releases := &release.Catalog{Registry: reg}
	proxies := &edge.Tracker{} // standalone proxies following the route table
	deps, err := o.startDeployments(ctx, st, reg, releases, hosting.RepoPath, hub, dockerEngine, images, taken, proxies, log)
	if err != nil {
		return err
	}
	keep := o.keepServices // a server that hands over keeps them whatever it was told
	defer func() { deps.stop(keep) }()
	o.retention.Deployed = deployed(st)
	isolation, isolationWarning, err := o.isolation(log)
	if err != nil {
		return err
	}
	local := &container.Backend{Engine: dockerEngine, Grace: o.grace,
		Local: &process.Backend{Grace: o.grace, Leftovers: leftovers}}
	cfg := dispatch.Config{Store: st, Local: local, Period: o.leasePeriod, GitURL: server.GitPath, Log: log}
	if o.noLocalSteps {
		cfg.Local = nil
	}
	agents := dispatch.New(cfg)
	if err := agents.Start(ctx); err != nil {
		return err
	}
	run := runner.New(runner.Config{
		Store: st, Logs: logs, Hub: hub, Publisher: &release.Publisher{Registry: reg}, Deploy: deps.deployRun,
		Environment: deps.environmentFor(o.ephemeralBase),
		Secrets:     deps.secrets.forStep,
		Postlude:    deps.postlude(hosting.RepoPath),
		Released: func(run *store.Run) {
			deps.manager.Track(context.Background(), run.Project, run.Branch, run.Number)
		},
		Repos:      hosting.RepoPath,
		WorkDir:    work,
		Backend:    local,
		Agents:     agents,
		RemoteRuns: o.agentRuns,
		Isolation:  isolation,
		Workers:    o.workers,
		Log:        log,
	})
	srv := server.New(server.Config{Store: st, Runner: run, Logs: logs, Hub: hub, Hosting: hosting, Registry: reg,
		Releases: releases, Retention: o.retention, Deploys: deps.manager, Proxies: proxies, Secrets: o.vault, ProxyHost: portOf(deps.ln.Addr()),
		Log: log, Public: o.public, Started: time.Now(), EngineToken: engineToken, IsolationWarning: isolationWarning, CA: tlsLn.caPEM(),
		Agents: agents})
	hosting.OnPush, hosting.AllowCreate = srv.OnPush, srv.AllowCreate
	if err := srv.ReportNames(ctx); err != nil {
		return err
	}
	if err := srv.NoteDefaultBranches(ctx); err != nil {
		return err
	}

	if err := run.Start(ctx); err != nil {
		return err
	}
	go srv.Follow(ctx)
	go srv.CollectGarbageEvery(ctx)
	go func() {
		if err := deps.manager.Reconcile(ctx); err != nil {
			log.Error("bring environments back to what they ran", "err", err)
		}
		deps.applyAtStart(ctx, st, hosting.RepoPath, o.data, log)
		deps.manager.ReapIdle(ctx, time.Second)
	}()
	// Requests keep their context until the server shuts its listener down: during a
	// handover it goes on answering after ctx ended.
	reqCtx, endRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer endRequests()
	hs := &http.Server{Handler: &closing{h: srv}, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return reqCtx }}
	log.Info("drover server listening", "url", "http://"+ln.Addr().String(), "proxy", "http://"+deps.ln.Addr().String(), "data", o.data)
	errc := make(chan error, 2)
	if tlsLn != nil {
		hs.TLSConfig = tlsLn.config // before either Serve reads it
		log.Info("drover server listening over TLS", tlsLn.logAttrs(o.tlsCert)...)
		go func() { errc <- hs.ServeTLS(tlsLn.ln, "", "") }()
	}
	go func() { errc <- hs.Serve(ln) }()
	if ready != nil {
		token, err := os.ReadFile(filepath.Join(o.data, "admin-token"))
		if err != nil {
			return err
		}
		ready(serverInfo{URL: "http://" + ln.Addr().String(), Proxy: "http://" + deps.ln.Addr().String(),
			Token: strings.TrimSpace(string(token)), Data: o.data})
	}
	if err := taken.Ready(); err != nil {
		log.Warn("tell the previous server this one serves; it stops on its own", "err", err)
	}
	succ := o.offerSockets(log, stopAll)
	defer succ.close()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stopping()   // a second signal now ends the process at once
	succ.close() // a server started from now on waits for the ports, not for sockets
	if req := succ.pending(); req != nil {
		// Runs end first, and healing and deploys, so that the successor's recovery and
		// adoption race nothing of this server's; its proxy and API go on serving
		// meanwhile (deploys asked now are refused with 503: try again).
		waitRuns(run, o.grace, log)
		deps.cancel()
		deps.manager.Freeze()
		sockets := deps.manager.Listeners()
		sockets["api"], sockets["proxy"] = ln, deps.ln
		if tlsLn != nil {
			sockets["tls"] = tlsLn.ln
		}
		if handOver(req, sockets, log) {
			keep = true // the successor adopted them
			quiesce(hs, ln)
			tlsLn.close() // the successor accepts on it now
			deps.quiesce()
			time.Sleep(acceptedGrace)
		}
	}
	log.Info("stopping: finishing requests and stopping steps; a second Ctrl-C quits at once")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Streams and long polls (live logs, proxies following routes) end now, so that
	// Shutdown need not wait for them; their clients come back to the next server. Other
	// requests finish (up to the bound), then what is left is cut.
	srv.EndStreams()
	err = hs.Shutdown(shutdown)
	endRequests()
	waitRuns(run, o.grace, log)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// waitRuns waits until the runner's workers have stopped, up to grace and a bit.
func waitRuns(run *runner.Runner, grace time.Duration, log *slog.Logger) {
	waited := make(chan struct{})
	go func() { run.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(grace + 5*time.Second):
		log.Warn("steps did not stop in time; the next start stops what is left")
	}
}

// isolation is how steps are kept from the server and each other: as root, a user per
// worker from --step-uids; else Landlock where the kernel has it; else not at all. It
// also returns what is missing, for the log and every run page ("" when nothing is).
func (o *serverOptions) isolation(log *slog.Logger) (sandbox.Steps, string, error) {
	if os.Geteuid() == 0 && o.stepUIDs != "off" {
		r, err := sandbox.ParseRange(o.stepUIDs)
		if err != nil {
			return nil, "", badInput(fmt.Errorf("--step-uids: %w", err))
		}
		if r.Len() < o.workers {
			return nil, "", badInput(fmt.Errorf("--step-uids %s has %d uids for %d workers: give a range of at least --workers uids", r, r.Len(), o.workers))
		}
		// Above the data folder (0711 itself), something like /root (0700) may keep the
		// step users out of their workspaces. Opening it up is the operator's call.
		if p := sandbox.Unreachable(filepath.Dir(o.reach)); p != "" {
			return nil, unisolated(log, "Steps are not isolated: they run as root, since the step users cannot enter "+p+" on the way to the data folder. Give it o+x, or put --data where others may pass."), nil
		}
		log.Info("steps run as users of their own", "uids", r.String())
		return &sandbox.StepUsers{UIDs: r, Home: filepath.Join(o.reach, "home")}, "", nil
	}
	if os.Geteuid() != 0 {
		if abi := sandbox.LandlockABI(); abi >= sandbox.MinLandlockABI {
			self, err := os.Executable()
			if err != nil {
				return nil, "", err
			}
			log.Info("steps run confined by Landlock", "abi", abi)
			c := &sandbox.StepConfiner{Self: self, Home: filepath.Join(o.data, "home"), Path: os.Getenv("PATH"), Data: o.data}
			// Landlock (before ABI 9) does not confine connecting to a socket by its path:
			// the sockets the server's user reaches are covered in a namespace of the
			// step's own, where this machine lets an ordinary user make one.
			o.hide = reachableSockets()
			if len(o.hide) > 0 {
				probe := exec.Command(self, sandbox.Confinement{ReadOnly: []string{"/"}, Hide: o.hide}.Command(self, []string{"/bin/sh", "-c", "exit 0"})[1:]...)
				if out, err := probe.CombinedOutput(); err != nil {
					return c, unisolated(log, fmt.Sprintf("Steps are confined by Landlock, but can reach %s (the Docker Engine can read anything): this machine does not let them be hidden in a namespace (%v: %s). Run the server as root, or without access to those sockets.",
						strings.Join(o.hide, ", "), err, strings.TrimSpace(string(out)))), nil
				}
				c.Hide = o.hide
				log.Info("sockets the server's user reaches are hidden from steps and instances", "sockets", strings.Join(o.hide, ", "))
			}
			return c, "", nil
		}
	}
	return nil, unisolated(log, "Steps are not isolated: they run as the server's own user and can read its data folder, tokens included. Start the server as root (--step-uids) or on Linux 6.12+ (Landlock)."), nil
}

// unisolated logs warning and returns it.
func unisolated(log *slog.Logger, warning string) string {
	log.Warn(warning)
	return warning
}

// reachableSockets are the sockets this process can connect to that would let a step
// act outside its sandbox: the Docker Engine's, and the user's session bus (systemd-run
// --user starts unconfined processes).
func reachableSockets() []string {
	socks := []string{"/var/run/docker.sock", fmt.Sprintf("/run/user/%d/bus", os.Getuid())}
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		socks = append(socks, h)
	}
	var out []string
	for _, s := range socks {
		if c, err := net.DialTimeout("unix", s, time.Second); err == nil {
			c.Close()
			out = append(out, s)
		}
	}
	return out
}

// dataLayout is what in the data folder steps and service instances reach: their
// workspaces and homes, and the unpacked releases; the rest is the server's alone.
func dataLayout() datadir.Layout {
	return datadir.Layout{Shared: []string{"work", "home", "deploy/releases"}}
}

// reachable returns the folder for what steps and instances reach (workspaces, homes,
// unpacked releases): the data folder, or, where the server gives steps users of their
// own and they could not pass a folder above it (a data folder in /root, 0700), a folder
// of the server's in /var/tmp, laid out as the data folder's passages are. Opening /root
// up is the operator's call, not ours.
func (o *serverOptions) reachable() (string, error) {
	if os.Geteuid() != 0 || o.stepUIDs == "off" || sandbox.Unreachable(filepath.Dir(o.data)) == "" ||
		sandbox.Unreachable("/var/tmp") != "" {
		return o.data, nil
	}
	dir := filepath.Join("/var/tmp", "drover-"+shortHash(o.data))
	if _, err := datadir.Tighten(dir, dataLayout()); err != nil {
		return "", fmt.Errorf("a folder the step users reach: %w", err)
	}
	return dir, nil
}

// portOf is ":PORT" of a listener's address.
func portOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return fmt.Sprintf(":%d", ta.Port)
	}
	return ""
}

// ensureAdminToken creates an admin token, of the user admin, when no admin token
// works (on first start, or once every one was revoked or expired), and writes it to
// DATA/admin-token for the CLI and the person starting the server.
func ensureAdminToken(ctx context.Context, st store.Store, data string, log *slog.Logger) error {
	need, err := server.NeedsAdminToken(ctx, st)
	if err != nil || !need {
		return err
	}
	token, err := server.AdminToken(ctx, st)
	if err != nil {
		return err
	}
	path := filepath.Join(data, "admin-token")
	if err := atomicfile.Write(path, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	log.Info("created the admin token", "file", path)
	return nil
}

// openSecrets opens the secrets' key file (--secret-key-file, else DATA/secret.key,
// made on first start) and the vault over st, and finishes a rekey that was cut short.
// One that cannot be finished now is logged: both keys stay and every value opens.
func (o *serverOptions) openSecrets(ctx context.Context, st store.Store, log *slog.Logger) (*secret.Vault, error) {
	path := o.secretKeyFile
	if path == "" {
		path = filepath.Join(o.data, "secret.key")
	}
	keys, err := secret.OpenKeyring(path)
	if err != nil {
		return nil, badInput(err)
	}
	vault := secret.NewVault(st, keys)
	n, err := vault.FinishRekey(ctx)
	switch {
	case err != nil:
		log.Error("finish the secrets' rekey that was cut short; secrets still open with either key", "key_file", path, "err", err)
	case n > 0:
		log.Warn("finished the secrets' rekey that was cut short", "key_file", path, "key", keys.ID(), "values", n)
	}
	return vault, nil
}

// loopback is addr as this machine reaches it: an unspecified host (":8080",
// "0.0.0.0:8080") becomes 127.0.0.1.
func loopback(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() || tcp.IP == nil {
		_, port, _ := net.SplitHostPort(addr.String())
		return "127.0.0.1:" + port
	}
	return tcp.String()
}
