// Package agent is the machine side of Drover's distributed builds (drover agent run):
// it connects out to a Drover server, asks it for work with one long poll always in
// flight (which is also its heartbeat), and runs the compute steps of pipelines the
// server leases to it on a local engine.Backend. Each lease gets a workspace checked out
// from the server's git, the artifacts it needs from the server's registry, and streams
// its output, masked, back to the server; its reports and artifacts are read and pushed
// from here and its result is reported once every byte of its log was taken. The agent
// never opens a port. The wire protocol is agentproto's.
package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/drover-cd/drover/agentproto"
	"github.com/drover-cd/drover/artifact"
	"github.com/drover-cd/drover/engine"
)

// Config is what an agent needs to run.
type Config struct {
	// Server is the Drover server's URL, e.g. https://drover.example.com.
	Server string
	// Token is an agent machine token (drover token create --machine agent).
	Token string
	// Name is how the server knows this agent; unique among its agents.
	Name string
	// Labels are what steps may select this agent by.
	Labels map[string]string
	// Capacity is how many steps run at once. Default: 1.
	Capacity int
	// WorkDir holds the workspaces (WorkDir/workspaces/NAME) and the artifacts being
	// pushed. Its workspaces are removed at start: leftovers of an earlier life.
	WorkDir string
	// Backend runs the steps. Required.
	Backend engine.Backend
	// ForRegistry, when set, gives the backend for a step that pushes or pulls the run's
	// images in the server's registry (build:, image: self): host is the registry's
	// host:port, token the lease's credential to sign in with. done releases it.
	ForRegistry func(host, token string) (b engine.Backend, done func(), err error)
	// Client makes every request to the server. Default: a client with the system's
	// roots plus CAFile's; requests are bounded by their own deadlines.
	Client *http.Client
	// CAFile is a PEM bundle of CAs to trust the server's TLS with, besides the
	// system's: for the default Client and for git.
	CAFile string
	// LogBuffer is how many bytes of a step's output are held while the server cannot
	// take them; past it the newest bytes are dropped (the log says how many). Default:
	// 8 MiB.
	LogBuffer int64
	// Version is the agent's version, for the server's agent list.
	Version string
	// Log receives what the agent does. Default: discarded.
	Log *slog.Logger
}

// Timings of the protocol.
const (
	pollWait       = 10 * time.Second // Poll.Wait
	pollSlack      = 15 * time.Second // a poll's deadline past pollWait
	requestTimeout = 30 * time.Second // a log chunk's or a result's deadline
	pollBackoffMin = 200 * time.Millisecond
	pollBackoffMax = 5 * time.Second
)

// errStopped is why a step the server stopped ended.
var errStopped = errors.New("stopped by the server")

// agent is one Run.
type agent struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	dir    string // WorkDir, absolute
	spaces string // WorkDir/workspaces
	trash  string // WorkDir/trash: forgotten workspaces on their way out
	slots  chan struct{}

	storeOnce sync.Once
	store     *artifact.Store
	storeErr  error

	mu         sync.Mutex
	leases     map[int64]*lease       // run or still to report
	workspaces map[string]*workspace  // known workspaces, by name
	repoLocks  map[string]*sync.Mutex // of the repository cache's repositories, by folder
	packing    int                    // leases packing or pushing artifacts
	drained    bool

	wg sync.WaitGroup // lease goroutines and workspace removals
}

// Run runs the agent until ctx ends, then waits for its steps to stop (the backend kills
// them) and returns nil. It returns an error at once for a bad Config, a WorkDir it
// cannot prepare, or a server that refuses the token before accepting it once.
func Run(ctx context.Context, cfg Config) error {
	a, err := newAgent(cfg)
	if err != nil {
		return err
	}
	if err := a.prepareDir(); err != nil {
		return err
	}
	a.log.Info("agent started", "server", cfg.Server, "name", cfg.Name, "capacity", cfg.Capacity,
		"labels", cfg.Labels, "workdir", a.dir)
	err = a.pollLoop(ctx)
	a.wg.Wait()
	return err
}

func newAgent(cfg Config) (*agent, error) {
	u, err := url.Parse(cfg.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("agent: server %q is not an http or https URL", cfg.Server)
	}
	switch {
	case cfg.Token == "":
		return nil, errors.New("agent: no token")
	case cfg.Name == "":
		return nil, errors.New("agent: no name")
	case cfg.Backend == nil:
		return nil, errors.New("agent: no backend")
	case cfg.WorkDir == "":
		return nil, errors.New("agent: no work folder")
	}
	cfg.Capacity = max(cfg.Capacity, 1)
	if cfg.LogBuffer <= 0 {
		cfg.LogBuffer = 8 << 20
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := cfg.Client
	if client == nil {
		if client, err = defaultClient(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(cfg.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("agent: work folder %s: %w", cfg.WorkDir, err)
	}
	return &agent{
		cfg: cfg, log: log, client: client, dir: dir,
		spaces: filepath.Join(dir, "workspaces"), trash: filepath.Join(dir, "trash"),
		slots:  make(chan struct{}, cfg.Capacity),
		leases: map[int64]*lease{}, workspaces: map[string]*workspace{}, repoLocks: map[string]*sync.Mutex{},
	}, nil
}

// defaultClient is the client of a Config without one: the system's roots plus caFile's.
// Requests carry their own deadlines, which the poll's long wait rules out here.
func defaultClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("agent: CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("agent: CA file %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}, nil
}

// prepareDir removes what an earlier life left and makes the folders.
func (a *agent) prepareDir() error {
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return fmt.Errorf("agent: work folder: %w", err)
	}
	if err := os.Chmod(a.dir, 0o700); err != nil {
		return fmt.Errorf("agent: work folder: %w", err)
	}
	unfinished, _ := filepath.Glob(filepath.Join(a.dir, "pristine", "*.new")) // checkouts a crash cut short
	for _, d := range append([]string{a.spaces, a.trash, filepath.Join(a.dir, "layout")}, unfinished...) {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("agent: remove leftovers: %w", err)
		}
	}
	for _, d := range []string{a.spaces, a.trash} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("agent: work folder: %w", err)
		}
	}
	return nil
}

// url is the server's URL of path (which starts with "/").
func (a *agent) url(path string) string {
	return trimSlash(a.cfg.Server) + path
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// pollLoop keeps one poll in flight until ctx ends.
func (a *agent) pollLoop(ctx context.Context) error {
	bo := backoff{min: pollBackoffMin, max: pollBackoffMax}
	accepted := false // the server took the token once
	var failingSince, warned time.Time
	var period time.Duration
	for ctx.Err() == nil {
		reply, status, err := a.poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if status == http.StatusUnauthorized || status == http.StatusForbidden {
				err = fmt.Errorf("%w: is it an agent token? Make one with: drover token create --machine agent", err)
				if !accepted {
					return err
				}
			}
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			attrs := []any{"err", err, "retry_in", bo.d()}
			if period > 0 && time.Since(failingSince) > period {
				attrs = append(attrs, "note", "longer than the lease period: the server may have given this agent's steps to others")
			}
			// Every failure at first, then one in a while: a server down for an hour
			// is not worth a line every few seconds.
			level := slog.LevelWarn
			if time.Since(failingSince) > time.Minute && time.Since(warned) < time.Minute {
				level = slog.LevelDebug
			} else {
				warned = time.Now()
			}
			a.log.Log(ctx, level, "poll the server", attrs...)
			bo.wait(ctx)
			continue
		}
		if !failingSince.IsZero() {
			a.log.Info("the server answers again", "after", time.Since(failingSince).Round(time.Millisecond))
			failingSince = time.Time{}
		}
		accepted = true
		bo.reset()
		period = reply.LeasePeriod
		a.handle(ctx, reply)
	}
	return nil
}

// poll sends one Poll and returns the reply; status is the HTTP status of a refusal.
func (a *agent) poll(ctx context.Context) (*agentproto.PollReply, int, error) {
	a.mu.Lock()
	running := make([]int64, 0, len(a.leases))
	for id := range a.leases {
		running = append(running, id)
	}
	a.mu.Unlock()
	slices.Sort(running)
	body, err := json.Marshal(agentproto.Poll{
		Name: a.cfg.Name, Labels: a.cfg.Labels, Version: a.cfg.Version,
		Capacity: a.cfg.Capacity, Free: max(a.cfg.Capacity-len(running), 0), Running: running,
		Wait: pollWait,
	})
	if err != nil {
		return nil, 0, err
	}
	pctx, cancel := context.WithTimeout(ctx, pollWait+pollSlack)
	defer cancel()
	resp, err := a.do(pctx, http.MethodPost, a.url(agentproto.PollPath), a.cfg.Token, bytes.NewReader(body),
		map[string]string{"Content-Type": "application/json"})
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, resp.StatusCode, answerError(resp)
	}
	var reply agentproto.PollReply
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&reply); err != nil {
		return nil, 0, fmt.Errorf("read the server's answer: %w", err)
	}
	return &reply, resp.StatusCode, nil
}

// handle acts on a poll's reply.
func (a *agent) handle(ctx context.Context, reply *agentproto.PollReply) {
	a.mu.Lock()
	if reply.Drained != a.drained {
		a.drained = reply.Drained
		if a.drained {
			a.log.Info("drained: the server gives this agent no new steps until it is resumed")
		} else {
			a.log.Info("resumed: the server gives this agent steps again")
		}
	}
	for _, id := range reply.Stop {
		if l := a.leases[id]; l != nil {
			a.log.Info("the server stops a step", "lease", id, "step", l.p.Name)
			l.cancel(errStopped)
		}
	}
	a.mu.Unlock()
	for _, name := range reply.Forget {
		a.forget(name)
	}
	for _, p := range reply.Leases {
		a.start(ctx, p)
	}
}

// start runs a lease in a goroutine of its own.
func (a *agent) start(ctx context.Context, p agentproto.Lease) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.leases[p.ID]; ok {
		a.log.Warn("the server leased a step this agent runs already; ignored", "lease", p.ID)
		return
	}
	if len(a.leases) >= a.cfg.Capacity {
		// Usual for a moment: the server frees a slot once it takes a result, before
		// the agent has heard that it did.
		a.log.Debug("the server leased more steps than this agent has free slots; the step waits for one",
			"lease", p.ID, "capacity", a.cfg.Capacity)
	}
	l := newLease(ctx, a, p)
	a.leases[p.ID] = l
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		l.run(ctx)
		a.mu.Lock()
		delete(a.leases, p.ID)
		a.mu.Unlock()
		a.log.Debug("slot free", "lease", p.ID) // bench/agents.sh times dispatch from here
		l.cancel(nil)
	}()
}

// artifacts is the store artifacts are packed into before they are pushed, opened once.
func (a *agent) artifacts() (*artifact.Store, error) {
	a.storeOnce.Do(func() { a.store, a.storeErr = artifact.Open(filepath.Join(a.dir, "layout")) })
	return a.store, a.storeErr
}

// beginPacking and endPacking bracket a lease's packing and pushing; once none is, the
// packed blobs, all pushed, are removed.
func (a *agent) beginPacking() {
	a.mu.Lock()
	a.packing++
	a.mu.Unlock()
}

func (a *agent) endPacking() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.packing--; a.packing > 0 {
		return
	}
	blobs := filepath.Join(a.dir, "layout", "blobs", "sha256")
	entries, _ := os.ReadDir(blobs)
	for _, e := range entries {
		os.Remove(filepath.Join(blobs, e.Name()))
	}
}
