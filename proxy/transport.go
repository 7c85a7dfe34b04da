package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Transport settings for the connections to backends, all on the local host or network.
const (
	// dialTimeout bounds connecting to a backend. Instances are local, so a connect that
	// takes this long means the instance is gone; the request then retries elsewhere.
	dialTimeout = 3 * time.Second
	// maxIdlePerHost keeps enough idle keep-alive connections per backend for bursts of
	// a few hundred concurrent requests without reconnecting (Go's default is 2).
	maxIdlePerHost = 256
	// bufferSize is the size of the pooled buffers that copy bodies, ReverseProxy's own
	// default.
	bufferSize = 32 << 10
)

// newTransport returns the one http.Transport all routes share for what the fast path
// (fastTransport) leaves to it: upgrades such as WebSocket, and unusual requests. There
// is no response header timeout: long polls and event streams are legitimate.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // backends are local: never send them through $HTTP_PROXY
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          16 * maxIdlePerHost,
		MaxIdleConnsPerHost:   maxIdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Bodies pass through as the backend encoded them; the Transport must not ask
		// for gzip on the client's behalf and decode it.
		DisableCompression: true,
		// Plain HTTP/1.1 to backends: no HTTP/2, no TLS.
		ForceAttemptHTTP2: false,
	}
}

// retryTransport sends a request to the backend its exchange chose and, if connecting
// fails, once more to another backend of the same route: then not a byte of the request
// has left, so even a POST cannot run twice. A bodiless GET, HEAD or OPTIONS is also
// retried when the backend failed without answering (an instance killed mid-request):
// those methods are safe to repeat.
type retryTransport struct {
	p    *Proxy
	base http.RoundTripper
}

var _ http.RoundTripper = (*retryTransport)(nil)

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ex, _ := req.Context().Value(exchangeKey{}).(*exchange)
	if ex == nil {
		return t.base.RoundTrip(req)
	}
	// A body without GetBody can be sent again only if the first attempt never read it.
	var tracked *untouchedBody
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		tracked = &untouchedBody{rc: req.Body}
		req = req.WithContext(req.Context()) // a shallow copy: a RoundTripper must not modify req
		req.Body = tracked
	}
	res, err := t.base.RoundTrip(req)
	if err == nil {
		return res, nil
	}
	dial := isDialError(err)
	if !dial && !(safeMethod(req.Method) && (req.Body == nil || req.Body == http.NoBody)) {
		return nil, err
	}
	failed := ex.backend
	if dial {
		failed.markDown()
	}
	retry, ok := replayable(req, tracked)
	if !ok || req.Context().Err() != nil {
		return nil, err
	}
	next := t.p.acquire(ex.key, failed)
	if next == nil {
		return nil, err
	}
	failed.release()
	ex.backend = next
	t.p.log.Debug("proxy: backend refused the connection, retrying on another",
		"route", ex.key, "failed", failed.ID, "backend", next.ID, "err", err)
	u := *retry.URL
	u.Host = next.Addr
	retry.URL = &u
	res, err = t.base.RoundTrip(retry)
	if err != nil && isDialError(err) {
		next.markDown()
	}
	return res, err
}

// safeMethod reports methods that change nothing on the server, so repeating them is
// harmless.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// replayable returns a copy of req to send again after a failed dial, or false if its
// body cannot be sent again (then it closes the body, as RoundTrip must).
func replayable(req *http.Request, tracked *untouchedBody) (*http.Request, bool) {
	retry := req.WithContext(req.Context())
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		return retry, true
	case req.GetBody != nil:
		body, err := req.GetBody()
		if err != nil {
			return nil, false
		}
		retry.Body = body
		return retry, true
	case tracked != nil && !tracked.read.Load():
		retry.Body = tracked.rc
		return retry, true
	}
	if tracked != nil {
		_ = tracked.rc.Close() // its Close was held back; nothing reads it now
	}
	return nil, false
}

// untouchedBody records whether a request body was read at all. Its Close does not
// close an unread body, so the body is still whole for a retry after a failed dial.
type untouchedBody struct {
	rc   io.ReadCloser
	read atomic.Bool // the Transport reads on its own goroutine
}

func (b *untouchedBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *untouchedBody) Close() error {
	if b.read.Load() {
		return b.rc.Close()
	}
	return nil
}

// isDialError reports whether err is a failure to connect, before anything was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// proxyError answers a request the backend did not answer: 502 with a plain-text
// reason that names neither the instance nor its address, which go to the log.
func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ex, _ := r.Context().Value(exchangeKey{}).(*exchange)
	route, id, addr := "", "", ""
	if ex != nil {
		route, id, addr = ex.key, ex.backend.ID, ex.backend.Addr
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; nobody reads the answer and nothing is wrong upstream.
		p.log.Debug("proxy: client canceled the request", "route", route, "backend", id)
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	reason := "the service's instance failed to answer"
	var timeout interface{ Timeout() bool }
	switch {
	case isDialError(err):
		reason = "could not connect to any instance of the service"
	case errors.As(err, &timeout) && timeout.Timeout():
		reason = "the service's instance timed out"
	}
	p.log.Warn("proxy: request to backend failed", "route", route, "backend", id, "addr", addr,
		"method", r.Method, "path", r.URL.Path, "err", err)
	plainError(w, "drover: bad gateway: "+route+": "+reason+"\n", http.StatusBadGateway)
}

// bufferPool lends ReverseProxy the buffers it copies bodies through, so a request does
// not allocate 32 KiB. It pools array pointers: a slice converts back to one without
// the allocation that pooling a *[]byte of the returned slice would cost.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([bufferSize]byte) }}}
}

func (bp *bufferPool) Get() []byte { return bp.pool.Get().(*[bufferSize]byte)[:] }

func (bp *bufferPool) Put(b []byte) {
	if cap(b) >= bufferSize {
		bp.pool.Put((*[bufferSize]byte)(b[:bufferSize]))
	}
}
