// Package proxy is Drover's built-in reverse proxy: one http.Handler that routes each
// request, by its Host, to the healthy instances of a deployed service.
//
// The caller owns the routes. It names each one with a key (see Key) and replaces the
// route's whole backend set with Set; a set switch is atomic, so a request picks its
// backend from one consistent set. A blue-green deploy therefore runs:
//
//	p.Set(key, green)            // new requests go to the green instances only
//	p.Drain(ctx, blueIDs...)     // wait for requests still in flight on blue
//	stop the blue instances
//
// Within a route, a request goes to the backend with the fewest requests in flight, ties
// broken round robin. If connecting to the chosen backend fails (an instance that just
// died), a request whose body is untouched is retried once on another backend of the
// same route, so a switch loses no requests.
//
// Requests are forwarded by net/http/httputil.ReverseProxy. Plain HTTP/1.1 requests go
// over a lean transport of its own (pooled keep-alive connections, the request written
// and the answer read on the request's goroutine); upgrades and the rare request it does
// not handle go over one shared, tuned http.Transport. The backend sees the client's Host
// header unchanged, as behind Traefik or kamal-proxy, so it can build absolute URLs and
// route by host; the proxy also sets X-Forwarded-Host (the same Host), X-Forwarded-Proto
// and X-Forwarded-For, replacing whatever the client sent in them. WebSocket upgrades
// and streaming responses (server-sent events, chunked bodies) pass through unbuffered.
package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
)

// Backend is one instance of a service that the proxy can send requests to.
type Backend struct {
	// ID names the instance, e.g. its container ID. It is how InFlight and Drain find
	// the instance, so it must be unique across all routes (the same ID in two routes
	// must have the same Addr).
	ID string
	// Addr is where the instance listens for plain HTTP/1.1, as host:port.
	Addr string
}

// Key returns the route key, and so the Host users reach it at, of a service in an
// environment: "catalog.staging.localhost" for service catalog in environment staging.
func Key(service, env string) string {
	return service + "." + env + ".localhost"
}

// Proxy routes requests to backends by Host. Create one with New; all its methods are
// safe for concurrent use.
type Proxy struct {
	log   *slog.Logger
	rp    *httputil.ReverseProxy
	fast  *fastTransport
	table atomic.Pointer[table] // read on every request, replaced whole by Set

	mu       sync.Mutex            // serialises Set and guards the fields below
	live     map[string]*backend   // by ID: every backend some route of table holds
	retiring map[*backend]struct{} // removed by Set, maybe with requests in flight
}

var _ http.Handler = (*Proxy)(nil)

// New returns a proxy with no routes. A nil log discards the proxy's messages; failed
// requests to backends are logged at warn level.
func New(log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{
		log:      log,
		live:     map[string]*backend{},
		retiring: map[*backend]struct{}{},
	}
	p.table.Store(&table{})
	buffers := newBufferPool()
	p.fast = newFastTransport(newTransport(), buffers)
	p.rp = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    &retryTransport{p: p, base: p.fast},
		BufferPool:   buffers,
		ErrorHandler: p.proxyError,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// FlushInterval stays 0: ReverseProxy already flushes every write of a
		// text/event-stream response and of any response without a Content-Length
		// (chunked streams), and 101 upgrades are copied raw in both directions.
	}
	return p
}

// exchange is the state of one proxied request, shared by ServeHTTP, the Rewrite hook
// and the transport. All three run on the request's goroutine, so it needs no lock.
// It is itself the request's context (the client's, plus itself under exchangeKey):
// one allocation instead of context.WithValue's and a struct's.
type exchange struct {
	context.Context
	key     string
	backend *backend // holds one of the request's in-flight count
}

type exchangeKey struct{}

func (ex *exchange) Value(key any) any {
	if _, ok := key.(exchangeKey); ok {
		return ex
	}
	return ex.Context.Value(key)
}

// ServeHTTP forwards r to a backend of the route named by r's Host (its port ignored),
// or answers 502 with a plain-text explanation when no route has that name.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := hostKey(r.Host)
	b := p.acquire(key, nil)
	if b == nil {
		noRoute(w, key)
		return
	}
	ex := &exchange{Context: r.Context(), key: key, backend: b}
	// A deferred release also runs when ReverseProxy aborts the response with
	// panic(http.ErrAbortHandler) after a failed copy.
	defer func() { ex.backend.release() }()
	p.rp.ServeHTTP(w, r.WithContext(ex))
}

// rewrite points the outbound request at the backend ServeHTTP (or a retry) chose.
func rewrite(pr *httputil.ProxyRequest) {
	ex := pr.Out.Context().Value(exchangeKey{}).(*exchange)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = ex.backend.Addr
	// pr.Out.Host stays the client's Host (Out is a clone of In): the instance sees the
	// name it was reached by, as behind any other reverse proxy.
	pr.SetXForwarded()
}

// hostKey returns the route key of a Host header: lower case, without port or trailing dot.
func hostKey(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i] // "a.b:8080" and "[::1]:8080", but not the colons of "[::1]"
	}
	host = strings.TrimSuffix(host, ".")
	return strings.ToLower(host) // no allocation when already lower case
}

// noRoute answers a request whose Host names no route. It names the service and
// environment when the host has Key's form, and nothing else: no list of routes.
func noRoute(w http.ResponseWriter, key string) {
	msg := fmt.Sprintf("drover: no service is routed at host %q\n", key)
	if rest, ok := strings.CutSuffix(key, ".localhost"); ok {
		if i := strings.LastIndexByte(rest, '.'); i > 0 && i < len(rest)-1 {
			msg = fmt.Sprintf("drover: no service %s in environment %s is running\n", rest[:i], rest[i+1:])
		}
	}
	// 502 rather than 404: a 404 is cacheable by default (RFC 9110, 15.1), and a browser
	// that cached it would keep showing it after the service starts.
	plainError(w, msg, http.StatusBadGateway)
}

// plainError writes a short uncacheable plain-text answer.
func plainError(w http.ResponseWriter, msg string, code int) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg)) // the client may be gone; nothing to do about it
}
