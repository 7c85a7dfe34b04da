package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/edge"
	"github.com/drover-cd/drover/proxy"
)

// proxyOptions are the flags of drover proxy.
type proxyOptions struct {
	client clientOptions
	listen string
	name   string
	state  string
	// discovery: also listen on the services' discovery addresses (<NAME>_URL).
	discovery bool
}

func proxyCommand() *cobra.Command {
	o := &proxyOptions{}
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run a standalone proxy that follows a server's route table",
		Long: `Run a standalone proxy in front of deployed services: it serves the route table of a
Drover server (http://SERVICE.ENV.localhost:PORT/ on --listen) and follows it, so a
deploy's switch reaches it before the deploy retires the old instances.

It keeps the last table in --state and loads it at start: a proxy started or running
while the server is down or restarting serves from that table, and routes around
instances that refuse connections. Run two or more behind a DNS or L4 balancer for an
edge that survives the server and each other; give each its own --name.

With --discovery it also listens on the addresses instances reach the services they
require at (<NAME>_URL), for a server started with --external-discovery on the same
machine: then service discovery goes on while the server is down too. One proxy per
machine can do that.

It needs a proxy machine token, which may only read the route table:

  drover token create --machine proxy`,
		Example: `  drover proxy --server http://drover.internal:8080 --token "$(cat proxy-token)"
  drover proxy --listen :80 --name edge-1 --state /var/lib/drover-proxy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.client.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:8001", "address to serve the deployed services on")
	f.StringVar(&o.name, "name", "", "this proxy's name for the server, distinct per proxy (default HOSTNAME/LISTEN)")
	f.StringVar(&o.state, "state", "drover-proxy", "folder the last route table is kept in")
	f.BoolVar(&o.discovery, "discovery", false,
		"also serve the services' <NAME>_URL addresses, for a server started with --external-discovery on this machine: discovery outlives the server")
	return cmd
}

func (o *proxyOptions) run(cmd *cobra.Command) error {
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: logLevel()}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	token, err := o.client.bearer()
	if err != nil {
		return err
	}
	state, err := filepath.Abs(o.state)
	if err != nil {
		return badInput(fmt.Errorf("--state %s: %w", o.state, err))
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return badInput(fmt.Errorf("--state %s: %w", o.state, err))
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return badInput(fmt.Errorf("--listen %s: %w", o.listen, err))
	}
	defer ln.Close()
	if o.name == "" {
		host, err := os.Hostname()
		if err != nil {
			return badInput(fmt.Errorf("no --name, and no hostname to make one of: %w", err))
		}
		o.name = host + "/" + ln.Addr().String() // the port chosen, for --listen :0
	}

	p := proxy.New(log)
	follower := &edge.Follower{Server: o.client.server, Token: token, Name: o.name, State: state, Proxy: p, Log: log}
	if o.discovery {
		follower.Discovery = &edge.Discovery{Proxy: p, Log: log}
		defer follower.Discovery.Shutdown(context.Background())
	}
	kept, err := follower.Load()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// A damaged file is no reason not to serve: the server's next table replaces it.
		log.Warn("could not load the kept route table; waiting for the server's", "err", err)
	}
	hs := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	followed := make(chan error, 1)
	go func() { followed <- follower.Run(ctx) }()

	fmt.Fprintf(cmd.OutOrStdout(), "drover proxy %s: following %s; serving %d routes on http://%s/\n",
		o.name, o.client.server, len(kept.Routes), ln.Addr())
	if kept.Version != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "the routes are the table kept in %s until the server answers\n", state)
	}
	log.Info("drover proxy listening", "url", "http://"+ln.Addr().String(), "server", o.client.server, "name", o.name, "state", state)

	var runErr error
	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case runErr = <-followed:
		if runErr != nil {
			runErr = fmt.Errorf("%w: it needs a proxy token (drover token create --machine proxy)", runErr)
		}
	case <-ctx.Done():
	}
	stop() // a second signal now ends the process at once
	log.Info("stopping: finishing requests in flight")
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		log.Warn("requests still in flight were cut", "err", err)
	}
	if runErr == nil {
		runErr = <-followed
	}
	return runErr
}
