// Command proxyload is the Go side of bench/proxy.sh: a tiny backend that answers every
// request with a small body, and the Drover proxy (package proxy) in front of it with
// one route. Each prints "listening http://ADDR" once it accepts connections and runs
// until SIGINT or SIGTERM.
//
// Usage:
//
//	proxyload backend LISTEN
//	proxyload proxy [-cpuprofile FILE] LISTEN HOST BACKEND   (route HOST to BACKEND)
//	proxyload port                                          (print a free loopback port)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/drover-cd/drover/proxy"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "proxyload:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: proxyload backend|proxy|port ...")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd, args := args[0], args[1:]; cmd {
	case "backend":
		if len(args) != 1 {
			return errors.New("usage: proxyload backend LISTEN")
		}
		body := []byte("hello from the backend\n")
		return serve(ctx, args[0], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(body)
		}))
	case "proxy":
		fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
		cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != 3 {
			return errors.New("usage: proxyload proxy [-cpuprofile FILE] LISTEN HOST BACKEND")
		}
		if *cpuprofile != "" {
			f, err := os.Create(*cpuprofile)
			if err != nil {
				return fmt.Errorf("cpu profile: %w", err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return fmt.Errorf("cpu profile: %w", err)
			}
			defer pprof.StopCPUProfile()
		}
		p := proxy.New(slog.New(slog.NewTextHandler(os.Stderr, nil)))
		p.Set(fs.Arg(1), []proxy.Backend{{ID: "backend", Addr: fs.Arg(2)}})
		return serve(ctx, fs.Arg(0), p)
	case "port":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		return ln.Close()
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// serve serves h on addr until ctx is done, then shuts down.
func serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Printf("listening http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
