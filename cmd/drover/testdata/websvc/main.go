// Command websvc is the service deploy tests run (and, as "websvc get URL", the client
// their pipeline steps use): it answers with its release's
// version (dist/version), fails its health check when dist/unhealthy exists or once it
// has been up longer than dist/fail-after, calls $API_URL on /up, and finishes
// in-flight requests on SIGTERM.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func read(name string) string {
	b, _ := os.ReadFile(name)
	return strings.TrimSpace(string(b))
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" { // a client, for pipeline steps
		resp, err := http.Get(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		io.Copy(os.Stdout, resp.Body)
		if resp.StatusCode != http.StatusOK {
			os.Exit(1)
		}
		return
	}
	start := time.Now()
	version := read("dist/version")
	failAfter, _ := time.ParseDuration(read("dist/fail-after"))
	_, err := os.Stat("dist/unhealthy")
	unhealthy := err == nil
	if unhealthy {
		fmt.Println("starting with a broken health check")
	}
	if key := os.Getenv("API_KEY"); key != "" {
		fmt.Println("starting with API_KEY=" + key) // the server must mask it in the output it keeps
	}
	mux := http.NewServeMux()
	// /env?name=NAME answers the instance's variable, for the tests of secrets.
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, os.Getenv(r.URL.Query().Get("name")))
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if unhealthy || (failAfter > 0 && time.Since(start) > failAfter) {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(os.Getenv("API_URL") + "/")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	// /probe?read=PATH&write=PATH says who the instance runs as and whether it may
	// read and write those paths, for the tests of what instances can reach.
	mux.HandleFunc("/probe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "uid=%d\n", os.Getuid())
		if p := r.URL.Query().Get("read"); p != "" {
			_, err := os.ReadFile(p)
			fmt.Fprintf(w, "read %s: %v\n", p, err)
		}
		if p := r.URL.Query().Get("write"); p != "" {
			err := os.WriteFile(p, []byte("x"), 0o644)
			fmt.Fprintf(w, "write %s: %v\n", p, err)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s\n", version, os.Getenv("DROVER_ENV"))
	})
	host := os.Getenv("HOST") // 0.0.0.0 in a container, whose port is published on loopback
	if host == "" {
		host = "127.0.0.1"
	}
	srv := &http.Server{Addr: host + ":" + os.Getenv("PORT"), Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	fmt.Println("serving", version, "on", srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Println(err)
		os.Exit(1)
	}
}
