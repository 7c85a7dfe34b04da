package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/agent"
	"github.com/drover-cd/drover/backend/container"
	"github.com/drover-cd/drover/backend/process"
	"github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/internal/duration"
)

// agentRunOptions are the flags of drover agent run.
type agentRunOptions struct {
	client    clientOptions
	name      string
	labels    []string
	capacity  int
	workdir   string
	ca        string
	logBuffer byteSize
	grace     time.Duration
}

func agentRunCommand() *cobra.Command {
	o := &agentRunOptions{logBuffer: 8 << 20}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run this machine as a build agent of a server",
		Long: `Run this machine as a build agent: it runs the compute steps of pipelines (steps with
run:, in a container when they have image: or services:) that the server leases to it,
and sends their output, reports, artifacts and results back.

The agent connects out to the server and never opens a port: it keeps one long poll
open, which is also how the server knows it is alive. Each step runs in a workspace
under --workdir, checked out from the server's git, with the artifacts of the steps it
needs unpacked into it. While the server cannot be reached, up to --log-buffer bytes of
each step's output are held; results are kept and sent once it answers again.

Steps pick agents by label (--labels); --capacity steps run at once. Stopping the agent
(Ctrl-C, SIGTERM) stops the steps it runs; the server counts them lost once the agent
stops polling, and may run them again elsewhere.

It needs an agent machine token, which may only take and report work:

  drover token create --machine agent`,
		Example: `  drover agent run --server https://drover.example.com --token "$(cat agent-token)"
  drover agent run --name builder-1 --labels os=linux,arch=arm64 --labels gpu=true --capacity 4
  DROVER_TOKEN=... drover agent run --server https://drover.internal:8443 --ca ca.pem --workdir /var/lib/drover-agent`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.client.flags(cmd)
	f := cmd.Flags()
	f.Lookup("token").Usage = "agent token (env DROVER_TOKEN; drover token create --machine agent makes one)"
	f.StringVar(&o.name, "name", "", "this agent's name for the server, distinct per agent (default: the hostname)")
	f.StringArrayVar(&o.labels, "labels", nil, "labels steps select this agent by, KEY=VALUE,KEY=VALUE (repeatable)")
	f.IntVar(&o.capacity, "capacity", 1, "how many steps run at once")
	f.StringVar(&o.workdir, "workdir", "drover-agent", "folder of the workspaces; emptied of old workspaces at start")
	f.StringVar(&o.ca, "ca", os.Getenv("DROVER_CA"), "PEM file of CAs to trust the server's TLS certificate with (env DROVER_CA)")
	f.Var(&o.logBuffer, "log-buffer", "bytes of each step's output held while the server cannot be reached (e.g. 8MiB)")
	f.Var(duration.Flag(&o.grace, 10*time.Second), "grace", "time a stopped step gets between SIGTERM and SIGKILL")
	return cmd
}

func (o *agentRunOptions) run(cmd *cobra.Command) error {
	bad := func(format string, args ...any) error { return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)} }
	if o.client.token == "" {
		return badInput(errors.New("no token: pass --token or set DROVER_TOKEN to an agent token (drover token create --machine agent)"))
	}
	if u, err := url.Parse(o.client.server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("--server %q: not an http:// or https:// URL", o.client.server)
	}
	if o.capacity < 1 {
		return bad("--capacity %d: must be 1 or more", o.capacity)
	}
	if o.logBuffer < 1 {
		return bad("--log-buffer %s: must be more than 0 bytes", o.logBuffer.String())
	}
	if o.grace <= 0 {
		return bad("--grace must be more than 0")
	}
	labels, err := parseLabels(o.labels)
	if err != nil {
		return bad("--labels: %w", err)
	}
	if o.name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			return badInput(fmt.Errorf("no --name, and no hostname to use as one: %v", err))
		}
		o.name = host
	}
	if o.ca != "" {
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			return badInput(fmt.Errorf("--ca: %w", err))
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return badInput(fmt.Errorf("--ca %s: no PEM certificate in it", o.ca))
		}
	}
	workdir, err := filepath.Abs(o.workdir)
	if err != nil {
		return badInput(fmt.Errorf("--workdir %s: %w", o.workdir, err))
	}

	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: logLevel()}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A signal stops the agent: its steps are killed (the backend's grace applies) and
	// Run returns once they have. A second signal ends the process at once.
	ran := make(chan struct{})
	defer close(ran)
	go func() {
		select {
		case <-ctx.Done():
			stop()
			log.Info("stopping: stopping the steps that run")
		case <-ran:
		}
	}()
	local := &process.Backend{Grace: o.grace}
	backend := &container.Backend{
		// Steps that neither build nor use image: self need no registry.
		Engine: docker.Lazy(docker.Owner(workdir), docker.Registry{}),
		Grace:  o.grace,
		Local:  local,
	}
	// A build: step pushes to the server's registry, and image: self pulls from it, signed
	// in with the step's own credential: an engine connection of their own each.
	forRegistry := func(host, token string) (engine.Backend, func(), error) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		e, err := docker.Connect(cctx, docker.Owner(workdir), docker.Registry{Host: host, Token: token})
		if err != nil {
			return nil, nil, err
		}
		b := &container.Backend{Engine: func(context.Context) (*docker.Engine, error) { return e, nil }, Grace: o.grace, Local: local}
		return b, func() { e.Close() }, nil
	}
	fmt.Fprintf(cmd.OutOrStdout(), "drover agent %s: running steps of %s, %d at once, in %s\n", o.name, o.client.server, o.capacity, workdir)
	// Stopped by a signal, it returns nil, as drover server and drover proxy do.
	return agent.Run(ctx, agent.Config{
		Server: o.client.server, Token: o.client.token, Name: o.name, Labels: labels,
		Capacity: o.capacity, WorkDir: workdir, Backend: backend, ForRegistry: forRegistry, CAFile: o.ca,
		LogBuffer: int64(o.logBuffer), Version: versionString(), Log: log,
	})
}

// parseLabels reads --labels values: KEY=VALUE pairs separated by commas.
func parseLabels(values []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, v := range values {
		for _, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
			k, val = strings.TrimSpace(k), strings.TrimSpace(val)
			switch {
			case !ok:
				return nil, fmt.Errorf("%q is not KEY=VALUE", kv)
			case k == "":
				return nil, fmt.Errorf("%q has no key", kv)
			case val == "":
				return nil, fmt.Errorf("label %s has no value", k)
			}
			if old, dup := labels[k]; dup {
				return nil, fmt.Errorf("label %s is given twice (%s and %s)", k, old, val)
			}
			labels[k] = val
		}
	}
	return labels, nil
}

// byteSize is a size flag: a number of bytes, with an optional unit (KiB, MiB, GiB, or
// K, M, G, KB, MB, GB as the same powers of 1024).
type byteSize int64

func (b *byteSize) Set(s string) error {
	t := strings.TrimSpace(s)
	num := strings.TrimRightFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToUpper(strings.TrimSpace(t[len(num):]))
	mult := map[string]int64{"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10,
		"M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mult == 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size like 8MiB or 524288", s)
	}
	*b = byteSize(n * mult)
	return nil
}

func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Type() string { return "size" }
