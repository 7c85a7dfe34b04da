package edge

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Discovery serves service discovery from a proxy: for every route with a discovery
// address, a listener there whose requests go to that route whatever their Host, as
// the server's own route listeners do. Instances find the services they require at
// those addresses (<NAME>_URL), so with a proxy serving discovery they go on reaching
// each other while the server is down. Only one process on a machine can listen on an
// address: run one proxy with discovery per machine that runs instances.
type Discovery struct {
	// Proxy routes the requests, by Host.
	Proxy http.Handler
	// Log hears of addresses it cannot listen on; nil discards.
	Log *slog.Logger

	mu        sync.Mutex
	listeners map[string]*discoveryServer // by address
}

type discoveryServer struct {
	host string
	srv  *http.Server
}

// Apply listens on the discovery address of every route of t, routing it to the
// route's host, and stops listening on addresses t no longer has.
func (d *Discovery) Apply(t Table) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listeners == nil {
		d.listeners = map[string]*discoveryServer{}
	}
	want := map[string]string{}
	for _, r := range t.Routes {
		if r.Discovery != "" {
			want[r.Discovery] = r.Host
		}
	}
	for addr, ds := range d.listeners {
		if want[addr] != ds.host {
			ds.srv.Close()
			delete(d.listeners, addr)
		}
	}
	for addr, host := range want {
		if _, ok := d.listeners[addr]; ok {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			d.log().Warn("cannot serve a discovery address; instances requiring the service cannot reach it here",
				"host", host, "addr", addr, "err", err)
			continue
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Host = host
			d.Proxy.ServeHTTP(w, r)
		}), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log().Warn("discovery address stopped serving", "addr", addr, "err", err)
			}
		}()
		d.listeners[addr] = &discoveryServer{host: host, srv: srv}
	}
}

// Shutdown stops every discovery listener, letting requests in flight finish up to ctx.
func (d *Discovery) Shutdown(ctx context.Context) {
	d.mu.Lock()
	ls := d.listeners
	d.listeners = nil
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, ds := range ls {
		wg.Go(func() {
			if ds.srv.Shutdown(ctx) != nil {
				ds.srv.Close()
			}
		})
	}
	wg.Wait()
}

func (d *Discovery) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}
