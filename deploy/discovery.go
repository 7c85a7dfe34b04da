package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/atomicfile"
	"github.com/drover-cd/drover/proxy"
)

// route is a proxy route's own loopback listener, the address instances reach it at.
type route struct {
	url string
	ln  net.Listener // nil with Config.ExternalDiscovery: a standalone proxy listens
	srv *http.Server
}

// close closes the route's listener and its connections at once.
func (rt *route) close() {
	if rt.srv != nil {
		rt.srv.Close()
	}
}

// shutdown closes the route's listener and lets requests in flight finish, up to ctx.
func (rt *route) shutdown(ctx context.Context) {
	if rt.srv != nil && rt.srv.Shutdown(ctx) != nil {
		rt.srv.Close()
	}
}

// URL returns the address instances reach service name of env at: a loopback port of
// its own on the proxy, so clients need not send a Host header (names under .localhost
// do not resolve everywhere). The port is kept across restarts (discovery.json): an
// instance that outlived the server reaches the services it requires at the same
// address once the server is back.
func (m *Manager) URL(env, name string) (string, error) {
	return m.routeURL(proxy.Key(name, env))
}

// routeURL is URL by route key. The route listener of a service on a Swarm listens on
// the host of Config.ClusterRegistry, where tasks on every node reach it; others on
// loopback.
func (m *Manager) routeURL(key string) (string, error) {
	host := "127.0.0.1"
	if m.runtimeOf(envOfKey(key)) == RuntimeSwarm {
		if host = hostOf(m.cfg.ClusterRegistry); host == "" {
			return "", fmt.Errorf("%s runs on a Swarm: start the server with --advertise so its tasks can reach the services they require: %w",
				key, ErrBadRequest)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if rt, ok := m.routes[key]; ok {
		return rt.url, nil
	}
	if m.cfg.ExternalDiscovery {
		addr, err := m.addrs.reserve(key, host)
		if err != nil {
			return "", fmt.Errorf("an address for %s: %w", key, err)
		}
		rt := &route{url: "http://" + addr}
		m.routes[key] = rt
		return rt.url, nil
	}
	ln := m.cfg.Inherited[routeSocket(key)]
	delete(m.cfg.Inherited, routeSocket(key))
	var err error
	if ln == nil {
		ln, err = m.addrs.listen(key, host)
	}
	if err != nil {
		return "", fmt.Errorf("listen for %s: %w", key, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.quiescing.Load() {
			w.Header().Set("Connection", "close") // see Quiesce
		}
		r.Host = key
		m.cfg.Proxy.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	rt := &route{url: "http://" + ln.Addr().String(), ln: ln, srv: srv}
	m.routes[key] = rt
	return rt.url, nil
}

// routeSocket names a route key's listener among the sockets a server hands over.
func routeSocket(key string) string { return "route:" + key }

// Listeners returns the route listeners by their handover names (see Config.Inherited),
// for a successor to take over.
func (m *Manager) Listeners() map[string]net.Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]net.Listener{}
	for key, rt := range m.routes {
		if rt.ln != nil {
			out[routeSocket(key)] = rt.ln
		}
	}
	return out
}

// Quiesce stops accepting on the route listeners (a successor took them over) and ends
// each of their connections after its next answer (Connection: close), so none is
// closed while a client sends on it; Shutdown closes those that stay idle.
func (m *Manager) Quiesce() {
	m.quiescing.Store(true)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rt := range m.routes {
		if rt.ln != nil {
			rt.ln.Close()
		}
	}
}

// closeRoutes closes the route listeners of every key in env, also those of services
// that were required there but never ran, and forgets their addresses: env is going away.
func (m *Manager) closeRoutes(env string) {
	suffix := "." + env + ".localhost"
	m.mu.Lock()
	var rts []*route
	for key, rt := range m.routes {
		if strings.HasSuffix(key, suffix) {
			rts = append(rts, rt)
			delete(m.routes, key)
		}
	}
	m.mu.Unlock()
	for _, rt := range rts {
		rt.close()
	}
	m.addrs.forgetSuffix(suffix)
}

// addressBook remembers the loopback address of each route key's listener in a file,
// so that a restarted server listens where instances already look.
type addressBook struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex
	addrs map[string]string // key -> 127.0.0.1:PORT
}

// openAddressBook reads the book at path; a missing or unreadable one starts empty. With
// path "" nothing is kept.
func openAddressBook(path string, log *slog.Logger) *addressBook {
	b := &addressBook{path: path, log: log, addrs: map[string]string{}}
	if path == "" {
		return b
	}
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &b.addrs)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("read the discovery addresses; services get new ones", "file", path, "err", err)
		b.addrs = map[string]string{}
	}
	return b
}

// listen listens on key's recorded address, or on a new port of host that it records.
// A recorded address another program took meanwhile is given up for a new one.
func (b *addressBook) listen(key, host string) (net.Listener, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if addr := b.addrs[key]; addr != "" && hostOf(addr) == host {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln, nil
		}
		b.log.Warn("a service's discovery address is taken; it gets a new one, and instances that outlived the server lose it",
			"route", key, "addr", addr, "err", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, err
	}
	b.addrs[key] = ln.Addr().String()
	b.save()
	return ln, nil
}

// reserve returns key's recorded address, or records a free port of host for it, for
// a standalone proxy to listen on.
func (b *addressBook) reserve(key, host string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if addr := b.addrs[key]; addr != "" && hostOf(addr) == host {
		return addr, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	b.addrs[key] = addr
	b.save()
	return addr, nil
}

// address is key's recorded address, "" when it has none.
func (b *addressBook) address(key string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addrs[key]
}

// forget drops key's address.
func (b *addressBook) forget(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.addrs[key]; ok {
		delete(b.addrs, key)
		b.save()
	}
}

// forgetSuffix drops the addresses of every key ending in suffix.
func (b *addressBook) forgetSuffix(suffix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.addrs)
	maps.DeleteFunc(b.addrs, func(k, _ string) bool { return strings.HasSuffix(k, suffix) })
	if len(b.addrs) != n {
		b.save()
	}
}

// save writes the book atomically; callers hold b.mu. A book that cannot be written
// costs only stable addresses across a restart.
func (b *addressBook) save() {
	if b.path == "" {
		return
	}
	data, err := json.MarshalIndent(b.addrs, "", "  ")
	if err == nil {
		err = os.MkdirAll(filepath.Dir(b.path), 0o700)
	}
	if err == nil {
		err = atomicfile.Write(b.path, data, 0o600)
	}
	if err != nil {
		b.log.Warn("record the discovery addresses", "file", b.path, "err", err)
	}
}

// bookPath is where a Manager with folder dir keeps its address book; "" when dir is.
func bookPath(dir string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "discovery.json")
}

// listenRecorded opens the route listeners of every recorded address whose environment
// still exists, so instances that outlived the previous server reach what they require
// at once, also those of services that do not run here; the addresses of environments
// that are gone are forgotten. Handed-over listeners nobody claimed are closed.
func (m *Manager) listenRecorded(envs map[string]bool) {
	for _, key := range m.addrs.keys() {
		if !envs[envOfKey(key)] {
			m.addrs.forget(key)
			continue
		}
		if _, err := m.routeURL(key); err != nil {
			m.cfg.Log.Warn("listen on a recorded discovery address", "route", key, "err", err)
		}
	}
	m.mu.Lock()
	left := m.cfg.Inherited
	m.cfg.Inherited = nil
	m.mu.Unlock()
	for _, ln := range left {
		ln.Close()
	}
}

// keys are the route keys with a recorded address.
func (b *addressBook) keys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.addrs))
}

// envOfKey is the environment of a route key SERVICE.ENV.localhost.
func envOfKey(key string) string {
	base := strings.TrimSuffix(key, ".localhost")
	return base[strings.LastIndexByte(base, '.')+1:]
}

// hostOf is the host of HOST:PORT.
func hostOf(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	return host
}
