package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// fastTransport is the RoundTripper behind ReverseProxy for the common request: plain
// HTTP/1.1 to a backend, no upgrade. It writes the request itself over a pooled
// keep-alive connection and reads the answer with http.ReadResponse on the same
// goroutine: no per-connection read and write loops and no channel hand-offs, which is
// most of what http.Transport costs per request. Everything else (WebSocket and other
// upgrades, CONNECT, Expect: 100-continue, trailers, odd headers) goes to fallback,
// the shared http.Transport.
//
// Semantics follow http.Transport: the same bytes on the wire for a request, a failed
// connect returned as the dialer's *net.OpError (retryTransport retries it on another
// backend), a request that finds its reused connection closed by the backend before
// any byte of the answer is sent again once on a new connection when that is safe, and
// the connection is closed when the request's context ends before the answer is read.
type fastTransport struct {
	fallback http.RoundTripper
	dialer   net.Dialer
	buffers  *bufferPool
	pools    sync.Map // backend address -> *connPool
}

// Pool settings; see newTransport for the fallback's equivalents.
const (
	idleTimeout = 90 * time.Second
	// maxBufferedBody is the largest request body, by Content-Length, the fast path
	// sends; larger ones go through http.Transport, which reads the answer while it
	// still writes (a backend may answer 413 before reading a big upload).
	maxBufferedBody = 1 << 20
	// connBufferSize is the size of each connection's bufio reader and writer, as in
	// http.Transport.
	connBufferSize = 4 << 10
	// max1xx is how many informational answers may precede the real one.
	max1xx = 5
)

func newFastTransport(fallback http.RoundTripper, buffers *bufferPool) *fastTransport {
	return &fastTransport{
		fallback: fallback,
		dialer:   net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		buffers:  buffers,
	}
}

var _ http.RoundTripper = (*fastTransport)(nil)

// fastConn is one keep-alive connection to a backend with its buffers.
type fastConn struct {
	net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	pool      *connPool
	idleSince time.Time
	reused    bool   // it has carried a request before
	closeFn   func() // c.Close as a func made once, for context.AfterFunc
}

// connPool holds one backend's idle connections, the most recently used on top, and
// knows those carrying a request (busy), so that a backend declared dead (abort) has
// every connection closed at once.
type connPool struct {
	t     *fastTransport
	addr  string
	mu    sync.Mutex
	idle  []*fastConn // idleSince grows from bottom to top
	timer *time.Timer // closes connections idle for idleTimeout; nil when idle is empty
	busy  map[*fastConn]struct{}
	// dead is set by abort: connecting fails at once, as a refused dial, until revive.
	dead atomic.Bool
}

func (t *fastTransport) pool(addr string) *connPool {
	if p, ok := t.pools.Load(addr); ok {
		return p.(*connPool)
	}
	p, _ := t.pools.LoadOrStore(addr, &connPool{t: t, addr: addr})
	return p.(*connPool)
}

// get returns an idle connection or nil.
func (p *connPool) get() *fastConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	p.markBusyLocked(c)
	return c
}

func (p *connPool) markBusyLocked(c *fastConn) {
	if p.busy == nil {
		p.busy = map[*fastConn]struct{}{}
	}
	p.busy[c] = struct{}{}
}

// Close closes the connection and forgets it as busy.
func (c *fastConn) Close() error {
	c.pool.mu.Lock()
	delete(c.pool.busy, c)
	c.pool.mu.Unlock()
	return c.Conn.Close()
}

// abort closes every connection of the pool, idle and busy, and makes connecting fail
// at once: requests in flight there fail now instead of waiting for an answer from a
// backend that is gone, and retryTransport sends the safe ones elsewhere.
func (p *connPool) abort() {
	p.dead.Store(true)
	p.closeIdle()
	p.mu.Lock()
	busy := make([]*fastConn, 0, len(p.busy))
	for c := range p.busy {
		busy = append(busy, c)
	}
	p.mu.Unlock()
	for _, c := range busy {
		_ = c.Conn.Close() // their request's own error path forgets them
	}
}

// abortTo aborts the fast-path connections to addr (see connPool.abort); with none,
// there is nothing to cut.
func (t *fastTransport) abortTo(addr string) {
	if p, ok := t.pools.Load(addr); ok {
		p.(*connPool).abort()
	}
}

// revive lets connections to addr be made again: a backend at an address that was
// aborted joined a route.
func (t *fastTransport) revive(addr string) {
	if p, ok := t.pools.Load(addr); ok {
		p.(*connPool).dead.Store(false)
	}
}

// put makes c idle, or closes it if the pool is full.
func (p *connPool) put(c *fastConn) {
	c.idleSince = time.Now()
	c.reused = true
	p.mu.Lock()
	delete(p.busy, c)
	if len(p.idle) >= maxIdlePerHost || p.dead.Load() {
		p.mu.Unlock()
		_ = c.Conn.Close()
		return
	}
	p.idle = append(p.idle, c)
	if p.timer == nil {
		p.timer = time.AfterFunc(idleTimeout, p.sweep)
	}
	p.mu.Unlock()
}

// sweep closes the connections idle for idleTimeout and forgets an empty pool.
func (p *connPool) sweep() {
	cutoff := time.Now().Add(-idleTimeout)
	p.mu.Lock()
	n := 0
	for n < len(p.idle) && !p.idle[n].idleSince.After(cutoff) {
		n++
	}
	expired := append([]*fastConn(nil), p.idle[:n]...)
	p.idle = append(p.idle[:0], p.idle[n:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	if len(p.idle) > 0 {
		p.timer.Reset(p.idle[0].idleSince.Sub(cutoff))
	} else {
		p.timer = nil
		// A request may still put a connection into this pool after it left the map;
		// put then starts a new timer, which closes it in time. A pool with connections
		// in use stays, so that abort finds them.
		if len(p.busy) == 0 {
			p.t.pools.CompareAndDelete(p.addr, p)
		}
	}
	p.mu.Unlock()
	for _, c := range expired {
		_ = c.Close()
	}
}

// closeIdle closes all of p's idle connections.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.Close()
	}
}

// closeIdleTo closes the idle fast-path connections to addr, a backend that left.
func (t *fastTransport) closeIdleTo(addr string) {
	if p, ok := t.pools.Load(addr); ok {
		p.(*connPool).closeIdle()
	}
}

// CloseIdleConnections closes the idle connections of both paths.
func (t *fastTransport) CloseIdleConnections() {
	t.pools.Range(func(_, p any) bool {
		p.(*connPool).closeIdle()
		return true
	})
	if ci, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// errAborted is why connecting to a backend declared dead fails.
var errAborted = errors.New("the backend was declared dead")

func (t *fastTransport) dial(ctx context.Context, p *connPool) (*fastConn, error) {
	if p.dead.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errAborted}
	}
	conn, err := t.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err // a *net.OpError with Op "dial", as http.Transport returns it
	}
	c := &fastConn{
		Conn: conn,
		br:   bufio.NewReaderSize(conn, connBufferSize),
		bw:   bufio.NewWriterSize(conn, connBufferSize),
		pool: p,
	}
	c.closeFn = func() { _ = conn.Close() }
	p.mu.Lock()
	p.markBusyLocked(c)
	p.mu.Unlock()
	return c, nil
}

// fastPathOK reports whether the fast path can send req exactly as http.Transport
// would; everything else takes the fallback.
func fastPathOK(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host == "" || req.URL.User != nil || req.Close ||
		len(req.Trailer) > 0 || req.Method == http.MethodConnect || !validToken(req.Method) {
		return false
	}
	if !validHost(req.Host) || !validHost(req.URL.Host) {
		return false
	}
	switch len(req.TransferEncoding) {
	case 0:
	case 1:
		if req.TransferEncoding[0] != "chunked" {
			return false
		}
	default:
		return false
	}
	if hasBody(req) {
		switch n := req.ContentLength; {
		case n > maxBufferedBody:
			return false
		case n <= 0 && len(req.TransferEncoding) == 0 && usuallyLacksBody(req.Method):
			return false // http.Transport probes such a body before it decides on chunking
		}
	} else if req.ContentLength != 0 {
		return false // an error, which http.Transport reports
	}
	for k, vv := range req.Header {
		switch k {
		case "Connection", "Upgrade", "Expect", "Te", "Trailer":
			if k != "Te" || len(vv) != 1 || vv[0] != "trailers" {
				return false
			}
		}
		if !validToken(k) {
			return false
		}
		for _, v := range vv {
			if !validHeaderValue(v) {
				return false
			}
		}
	}
	return true
}

func hasBody(req *http.Request) bool { return req.Body != nil && req.Body != http.NoBody }

// usuallyLacksBody is net/http's list of methods whose body it probes before it sends
// one of unknown length.
func usuallyLacksBody(method string) bool {
	switch method {
	case "", "GET", "HEAD", "DELETE", "OPTIONS", "PROPFIND", "SEARCH":
		return true
	}
	return false
}

// retryable reports whether req may be sent again after its reused connection turned
// out closed: http.Transport's rule, a replayable body and an idempotent request.
func retryable(req *http.Request) bool {
	if hasBody(req) && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return req.Header["Idempotency-Key"] != nil || req.Header["X-Idempotency-Key"] != nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || isSeparator(c) {
			return false
		}
	}
	return true
}

func isSeparator(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}':
		return true
	}
	return false
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' {
			return false
		}
	}
	return true
}

func (t *fastTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !fastPathOK(req) {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	p := t.pool(req.URL.Host)
	canRetry := retryable(req)
	c := p.get()
	// A request that cannot be sent twice checks that the connection it takes is
	// still open, so it does not find out by losing its body to a closed one.
	for c != nil && !canRetry && !c.alive() {
		_ = c.Close()
		c = p.get()
	}
	if c == nil {
		var err error
		if c, err = t.dial(ctx, p); err != nil {
			closeBody(req)
			return nil, err
		}
	}
	res, err := t.exchange(ctx, c, req)
	if err != nil && errors.Is(err, errStale) {
		if !canRetry || ctx.Err() != nil {
			closeBody(req)
			return nil, errors.Unwrap(err)
		}
		retry := req
		if hasBody(req) {
			body, gerr := req.GetBody()
			if gerr != nil {
				closeBody(req)
				return nil, errors.Unwrap(err)
			}
			retry = req.WithContext(ctx)
			retry.Body = body
			closeBody(req)
		}
		if c, err = t.dial(ctx, p); err != nil {
			closeBody(retry)
			return nil, err
		}
		res, err = t.exchange(ctx, c, retry)
		if errors.Is(err, errStale) {
			err = errors.Unwrap(err) // a new connection is never stale; report the cause
		}
		if res != nil {
			res.Request = req
		}
	}
	return res, err
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// staleError marks a failure on a reused connection before any byte of the answer:
// the backend most likely closed the idle connection, and did not see the request.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }
func (e *staleError) Is(target error) bool {
	_, ok := target.(*staleError)
	return ok
}

var errStale = &staleError{}

// exchange sends req on c and reads the answer's header. It owns c: on success the
// answer's body returns c to the pool or closes it, on failure c is closed.
func (t *fastTransport) exchange(ctx context.Context, c *fastConn, req *http.Request) (*http.Response, error) {
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, c.closeFn)
	}
	fail := func(err error, stale bool) (*http.Response, error) {
		if stop != nil {
			stop()
		}
		_ = c.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if stale && c.reused {
			return nil, &staleError{err: err}
		}
		return nil, err
	}

	if err := t.writeRequest(c.bw, req); err != nil {
		var we *writeError
		return fail(err, errors.As(err, &we))
	}
	// Wait for the first byte apart from the parsing, so a reused connection that the
	// backend had closed shows as such.
	if _, err := c.br.Peek(1); err != nil {
		return fail(err, true)
	}
	var res *http.Response
	for n1xx := 0; ; n1xx++ {
		var err error
		if res, err = http.ReadResponse(c.br, req); err != nil {
			return fail(err, false)
		}
		code := res.StatusCode
		if code < 100 || code > 199 {
			break
		}
		if code == http.StatusSwitchingProtocols || n1xx >= max1xx {
			return fail(fmt.Errorf("proxy: unexpected %s from the backend", res.Status), false)
		}
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(res.Header)); err != nil {
				return fail(err, false)
			}
		}
	}
	keep := !res.Close
	if res.Body == http.NoBody || res.Body == nil {
		c.done(keep, stop)
		return res, nil
	}
	res.Body = &fastBody{rc: res.Body, c: c, ctx: ctx, keep: keep, stop: stop}
	return res, nil
}

// done ends c's exchange after the whole answer was read: back to the pool if the
// answer allowed it and the context did not close c meanwhile, else closed.
func (c *fastConn) done(keep bool, stop func() bool) {
	if stop != nil && !stop() {
		keep = false // the context's callback closed c, or is about to
	}
	if keep && c.br.Buffered() == 0 { // bytes after the answer: a confused backend
		c.pool.put(c)
		return
	}
	_ = c.Close()
}

// writeError is a failure to write the request line and header, when no byte of the
// body was consumed yet.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// writeRequest writes req as http.Request.Write would for http.Transport (header
// order aside), and closes its body.
func (t *fastTransport) writeRequest(bw *bufio.Writer, req *http.Request) error {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	if u := req.URL; u.Opaque != "" {
		bw.WriteString(u.RequestURI())
	} else {
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		bw.WriteString(path)
		if u.ForceQuery || u.RawQuery != "" {
			bw.WriteByte('?')
			bw.WriteString(u.RawQuery)
		}
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	ua := "Go-http-client/1.1"
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	if ua != "" {
		bw.WriteString("User-Agent: ")
		bw.WriteString(ua)
		bw.WriteString("\r\n")
	}
	body := hasBody(req)
	length := req.ContentLength // http.Request.outgoingLength
	if !body {
		length = 0
	} else if length == 0 {
		length = -1
	}
	chunked := len(req.TransferEncoding) == 1 || length < 0
	switch {
	case chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case length > 0 || method == "POST" || method == "PUT" || method == "PATCH":
		var num [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], length, 10))
		bw.WriteString("\r\n")
	}
	for k, vv := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	if !body {
		if err := bw.Flush(); err != nil {
			return &writeError{err}
		}
		return nil
	}
	defer req.Body.Close()
	if chunked && bw.Buffered() > 0 {
		// The header goes out before a body that may be slow to arrive.
		if err := bw.Flush(); err != nil {
			return &writeError{err}
		}
	}
	buf := t.buffers.Get()
	defer t.buffers.Put(buf)
	if chunked {
		cw := httputil.NewChunkedWriter(bw)
		if _, err := io.CopyBuffer(cw, req.Body, buf); err != nil {
			return err
		}
		if err := cw.Close(); err != nil {
			return err
		}
		if _, err := bw.WriteString("\r\n"); err != nil { // no trailer
			return err
		}
	} else {
		n, err := io.CopyBuffer(writerOnly{bw}, io.LimitReader(req.Body, length), buf)
		if err != nil {
			return err
		}
		if n != length {
			return fmt.Errorf("http: ContentLength=%d with Body length %d", length, n)
		}
	}
	if err := bw.Flush(); err != nil {
		return &writeError{err}
	}
	return nil
}

// writerOnly hides bufio.Writer's ReadFrom, which hands large copies to the socket's
// ReadFrom and its unpooled 32 KiB buffer.
type writerOnly struct{ io.Writer }

// fastBody is an answer's body on the fast path. At EOF it gives the connection back
// to the pool; a read error or a Close before EOF closes the connection.
type fastBody struct {
	rc       io.ReadCloser
	c        *fastConn
	ctx      context.Context
	stop     func() bool
	keep     bool
	finished atomic.Bool // the connection was released or closed
}

func (b *fastBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == nil {
		return n, nil
	}
	if err == io.EOF {
		if b.finished.CompareAndSwap(false, true) {
			b.c.done(b.keep, b.stop)
		}
		return n, io.EOF
	}
	b.abort()
	if cerr := b.ctx.Err(); cerr != nil {
		err = cerr
	}
	return n, err
}

func (b *fastBody) Close() error {
	b.abort()
	return nil
}

// abort closes the connection unless the body already released it. The inner body's
// own Close would read the rest of the answer, which for a stream never ends.
func (b *fastBody) abort() {
	if b.finished.CompareAndSwap(false, true) {
		if b.stop != nil {
			b.stop()
		}
		_ = b.c.Close()
	}
}
