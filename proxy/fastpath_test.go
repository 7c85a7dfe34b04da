package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingRT counts the requests that reach the fallback transport.
type countingRT struct {
	rt http.RoundTripper
	n  atomic.Int64
}

func (c *countingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(req)
}

// fastOf returns p's fast transport, with its fallback replaced by a counting one.
func fastOf(t *testing.T, p *Proxy) (*fastTransport, *countingRT) {
	t.Helper()
	ft := p.rp.Transport.(*retryTransport).base.(*fastTransport)
	fb := &countingRT{rt: ft.fallback}
	ft.fallback = fb
	t.Cleanup(ft.CloseIdleConnections)
	return ft, fb
}

// newFast returns a fast transport as New builds it, with a counting fallback.
func newFast(t *testing.T) (*fastTransport, *countingRT) {
	t.Helper()
	fb := &countingRT{rt: newTransport()}
	ft := newFastTransport(fb, newBufferPool())
	t.Cleanup(ft.CloseIdleConnections)
	return ft, fb
}

// countConns starts a backend with h and counts the connections it accepts.
func countConns(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

func idleCount(ft *fastTransport, addr string) int {
	v, ok := ft.pools.Load(addr)
	if !ok {
		return 0
	}
	p := v.(*connPool)
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

func send(t *testing.T, ft http.RoundTripper, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := ft.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func TestFastPathKeepsOneConnectionForSequentialRequests(t *testing.T) {
	srv, conns := countConns(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "hello %s", r.URL.Path)
	})
	p := New(nil)
	ft, fallback := fastOf(t, p)
	key := Key("catalog", "staging")
	p.Set(key, []Backend{{ID: "b", Addr: srv.Listener.Addr().String()}})
	url := startProxy(t, p)

	for i := range 20 {
		path := fmt.Sprintf("/r%d", i)
		if code, body := get(t, http.DefaultClient, url, key, path); code != http.StatusOK || body != "hello "+path {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("backend saw %d connections for 20 sequential requests, want 1", n)
	}
	if n := fallback.n.Load(); n != 0 {
		t.Errorf("%d requests took the fallback", n)
	}
	if n := idleCount(ft, srv.Listener.Addr().String()); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

func TestFastPathRetriesStaleConnection(t *testing.T) {
	var posts atomic.Int64
	srv, conns := countConns(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		_, _ = fmt.Fprintf(w, "%s %s", r.Method, body)
	})
	ft, _ := newFast(t)
	url := srv.URL + "/"

	for i, method := range []string{"GET", "GET", "POST", "DELETE", "POST"} {
		// The backend closes every idle connection, among them the pooled one.
		srv.CloseClientConnections()
		var body io.Reader
		if method == "POST" {
			body = io.NopCloser(strings.NewReader("payload")) // no GetBody: not replayable
		}
		req, _ := http.NewRequest(method, url, body)
		if method == "POST" {
			req.ContentLength = int64(len("payload"))
		}
		want := method + " "
		if method == "POST" {
			want += "payload"
		}
		if res, got := send(t, ft, req); res.StatusCode != http.StatusOK || got != want {
			t.Fatalf("request %d: %d %q, want %q", i, res.StatusCode, got, want)
		}
	}
	if n := conns.Load(); n != 5 {
		t.Errorf("backend saw %d connections, want 5 (one per request)", n)
	}
	if n := posts.Load(); n != 2 {
		t.Errorf("backend saw %d POSTs, want 2", n)
	}
}

// TestFastPathRetriesOnlyWhatIsSafe runs a backend that reads each request on a reused
// connection and then closes it without an answer, as a backend does whose idle
// timeout strikes as the request arrives.
func TestFastPathRetriesOnlyWhatIsSafe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var requests atomic.Int64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					requests.Add(1)
					if i > 0 {
						return // the second request on a connection: hang up
					}
					_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	ft, _ := newFast(t)
	url := "http://" + ln.Addr().String() + "/"

	get, _ := http.NewRequest(http.MethodGet, url, nil)
	if _, body := send(t, ft, get); body != "ok" {
		t.Fatalf("first GET: %q", body)
	}
	// Reused connection, hang-up, retried on a new connection.
	if _, body := send(t, ft, get); body != "ok" {
		t.Fatalf("second GET: %q", body)
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("backend read %d requests, want 3", n)
	}
	// A POST is not retried: the backend may have acted on it.
	requests.Store(0)
	post, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("x"))
	post.GetBody = nil
	_, err = ft.RoundTrip(post)
	if err == nil {
		t.Fatal("POST on a connection the backend hung up on succeeded")
	}
	if errors.Is(err, errStale) || isDialError(err) {
		t.Errorf("error %v", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("backend read %d POSTs, want exactly 1", n)
	}
}

func TestFastPathPostBodySentOnce(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies []string
	)
	b, _ := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(body))
		mu.Unlock()
		_, _ = fmt.Fprintf(w, "got %d bytes", len(body))
	})
	p := New(nil)
	_, fallback := fastOf(t, p)
	key := Key("catalog", "staging")
	p.Set(key, []Backend{b})
	url := startProxy(t, p)

	payload := strings.Repeat("abcdefgh", 10000) // 80 kB: several buffer fills
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodPost, url+"/upload", strings.NewReader(payload))
		req.Host = key
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := fmt.Sprintf("got %d bytes", len(payload)); string(got) != want {
			t.Fatalf("request %d: %q, want %q", i, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 3 {
		t.Fatalf("backend saw %d bodies, want 3", len(bodies))
	}
	for _, body := range bodies {
		if body != payload {
			t.Fatalf("backend saw a body of %d bytes, want %d", len(body), len(payload))
		}
	}
	if n := fallback.n.Load(); n != 0 {
		t.Errorf("%d requests took the fallback", n)
	}
}

func TestFastPathChunkedBodies(t *testing.T) {
	srv, conns := countConns(t, func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" {
			http.Error(w, fmt.Sprintf("request not chunked: %q", r.TransferEncoding), http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		rc := http.NewResponseController(w)
		for line := range strings.Lines(string(body)) { // each flushed: a chunked answer
			_, _ = fmt.Fprintf(w, "echo %s", line)
			_ = rc.Flush()
		}
	})
	ft, fallback := newFast(t)
	for i := range 3 {
		pr, pw := io.Pipe()
		go func() {
			for j := range 3 {
				fmt.Fprintf(pw, "line %d.%d\n", i, j)
			}
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/echo", pr)
		if req.ContentLength != -1 && req.ContentLength != 0 {
			t.Fatalf("ContentLength %d", req.ContentLength)
		}
		res, body := send(t, ft, req)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", res.Status, body)
		}
		if len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" {
			t.Errorf("answer's Transfer-Encoding %q, want chunked", res.TransferEncoding)
		}
		want := fmt.Sprintf("echo line %d.0\necho line %d.1\necho line %d.2\n", i, i, i)
		if body != want {
			t.Fatalf("body %q, want %q", body, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("backend saw %d connections, want 1: chunked answers end cleanly", n)
	}
	if n := fallback.n.Load(); n != 0 {
		t.Errorf("%d requests took the fallback", n)
	}
}

// rawBackend accepts connections and answers each request with answer, then calls
// after(conn). It returns its address and a channel of the connections' read results
// after the last answer (io.EOF when the proxy closed the connection).
func rawBackend(t *testing.T, answer string, closeAfter bool) (string, *atomic.Int64, chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	ends := make(chan error, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						ends <- err
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					_, _ = io.WriteString(conn, answer)
					if closeAfter {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), &accepted, ends
}

func TestFastPathBodyUntilEOFClosesConnection(t *testing.T) {
	addr, accepted, _ := rawBackend(t, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nno length, read to the end", true)
	ft, _ := newFast(t)
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		res, body := send(t, ft, req)
		if body != "no length, read to the end" || !res.Close {
			t.Fatalf("request %d: %q, Close %v", i, body, res.Close)
		}
		if n := idleCount(ft, addr); n != 0 {
			t.Fatalf("%d idle connections after an answer delimited by EOF", n)
		}
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("backend accepted %d connections, want 2", n)
	}
}

func TestFastPathConnectionCloseNotPooled(t *testing.T) {
	addr, accepted, ends := rawBackend(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", false)
	ft, _ := newFast(t)
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		if res, body := send(t, ft, req); body != "ok" || !res.Close {
			t.Fatalf("request %d: %q, Close %v", i, body, res.Close)
		}
		// The backend keeps its side open; the proxy must close its own.
		select {
		case err := <-ends:
			if !errors.Is(err, io.EOF) {
				t.Fatalf("backend's read after the answer: %v, want EOF", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the proxy kept a connection the backend asked to close")
		}
	}
	if n := idleCount(ft, addr); n != 0 {
		t.Errorf("%d idle connections", n)
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("backend accepted %d connections, want 2", n)
	}
}

func TestFastPathCancelMidAnswerClosesConnection(t *testing.T) {
	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			gone := make(chan struct{})
			srv, _ := countConns(t, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "first part\n")
				_ = http.NewResponseController(w).Flush()
				<-r.Context().Done() // the connection closed
				close(gone)
			})
			ft, _ := newFast(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/stream", nil)
			res, err := ft.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(res.Body)
			if line, err := br.ReadString('\n'); err != nil || line != "first part\n" {
				t.Fatalf("%q %v", line, err)
			}
			if how == "cancel" {
				cancel()
				if _, err := br.ReadString('\n'); !errors.Is(err, context.Canceled) {
					t.Errorf("read after cancel: %v, want context.Canceled", err)
				}
			}
			res.Body.Close()
			select {
			case <-gone:
			case <-time.After(5 * time.Second):
				t.Fatal("the backend's connection stayed open")
			}
			if n := idleCount(ft, srv.Listener.Addr().String()); n != 0 {
				t.Errorf("%d idle connections", n)
			}
		})
	}
}

func TestFastPathCancelBeforeAnswer(t *testing.T) {
	release := make(chan struct{})
	srv, _ := countConns(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	ft, _ := newFast(t)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/", nil)
	start := time.Now()
	if _, err := ft.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("RoundTrip returned after %v", d)
	}
}

func TestFastPathForwards1xx(t *testing.T) {
	b, _ := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "final")
	})
	p := New(nil)
	key := Key("catalog", "staging")
	p.Set(key, []Backend{b})
	url := startProxy(t, p)

	var got []int
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
			got = append(got, code)
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Host = key
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(body) != "final" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	if !reflect.DeepEqual(got, []int{http.StatusEarlyHints}) {
		t.Errorf("informational answers %v, want [103]", got)
	}
}

func TestFastPathWebSocketTakesFallback(t *testing.T) {
	p := New(nil)
	_, fallback := fastOf(t, p)
	ws, _ := startBackend(t, "ws", wsEcho)
	key := Key("chat", "prod")
	p.Set(key, []Backend{ws})
	url := startProxy(t, p)

	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /socket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %s", res.Status)
	}
	if err := writeFrame(conn, "ping", []byte{9, 8, 7, 6}); err != nil {
		t.Fatal(err)
	}
	if got, err := readFrame(br); err != nil || got != "ping" {
		t.Fatalf("echo %q %v", got, err)
	}
	if n := fallback.n.Load(); n != 1 {
		t.Errorf("%d requests took the fallback, want the upgrade's 1", n)
	}
}

// TestFastPathWritesWhatTransportWrites sends the same requests through both paths to
// a backend that records what it parsed.
func TestFastPathWritesWhatTransportWrites(t *testing.T) {
	type seen struct {
		Method, URI, Host, Proto string
		Header                   http.Header
		ContentLength            int64
		TransferEncoding         []string
		Body                     string
	}
	got := make(chan seen, 1)
	srv, _ := countConns(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, r.Host, r.Proto, r.Header, r.ContentLength, r.TransferEncoding, string(body)}
	})
	ft, fallback := newFast(t)
	type build func() *http.Request
	// body: "" none, "=text" sized, "~text" of unknown length.
	newReq := func(method, path string, body string, header ...string) build {
		return func() *http.Request {
			var rd io.Reader
			switch {
			case strings.HasPrefix(body, "="):
				rd = strings.NewReader(body[1:])
			case strings.HasPrefix(body, "~"):
				rd = io.MultiReader(strings.NewReader(body[1:]))
			}
			req, _ := http.NewRequest(method, srv.URL+path, rd)
			for i := 0; i+1 < len(header); i += 2 {
				req.Header.Add(header[i], header[i+1])
			}
			return req
		}
	}
	cases := map[string]build{
		"GET with query":     newReq("GET", "/a/b%20c?x=1&y=%2F", "", "Accept", "*/*", "X-Multi", "1", "X-Multi", "2"),
		"GET empty UA":       newReq("GET", "/", "", "User-Agent", ""),
		"HEAD with UA":       newReq("HEAD", "/", "", "User-Agent", "curl/8"),
		"POST sized body":    newReq("POST", "/p", "=hello", "Content-Type", "text/plain"),
		"POST empty":         newReq("POST", "/p", ""),
		"DELETE":             newReq("DELETE", "/d", ""),
		"PUT chunked":        newReq("PUT", "/u", "~chunked"),
		"OPTIONS empty path": func() *http.Request { r := newReq("OPTIONS", "/", "")(); r.URL.Path = ""; return r },
		"Host given":         func() *http.Request { r := newReq("GET", "/h", "")(); r.Host = "example.test:81"; return r },
		"Te trailers header": newReq("GET", "/t", "", "Te", "trailers"),
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			var results [2]seen
			for i, rt := range []http.RoundTripper{fallback.rt, ft} {
				before := fallback.n.Load()
				res, err := rt.RoundTrip(mk())
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				results[i] = <-got
				if i == 1 && fallback.n.Load() != before {
					t.Fatal("the request took the fallback")
				}
			}
			if !reflect.DeepEqual(results[0], results[1]) {
				t.Errorf("http.Transport sent %+v\nfast path sent     %+v", results[0], results[1])
			}
		})
	}
}

func TestFastPathSweepsIdleConnections(t *testing.T) {
	srv, _ := countConns(t, func(w http.ResponseWriter, r *http.Request) {})
	ft, _ := newFast(t)
	addr := srv.Listener.Addr().String()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	send(t, ft, req)
	p := ft.pool(addr)
	p.mu.Lock()
	if len(p.idle) != 1 || p.timer == nil {
		p.mu.Unlock()
		t.Fatalf("%d idle connections, timer %v", len(p.idle), p.timer != nil)
	}
	c := p.idle[0]
	c.idleSince = c.idleSince.Add(-idleTimeout - time.Second)
	p.mu.Unlock()
	p.sweep()
	if n := idleCount(ft, addr); n != 0 {
		t.Fatalf("%d idle connections after the sweep", n)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("the swept connection is still open")
	}
	if _, ok := ft.pools.Load(addr); ok {
		t.Error("the empty pool stayed in the map")
	}
	// The transport still works after its pool went away.
	if res, _ := send(t, ft, req); res.StatusCode != http.StatusOK {
		t.Fatalf("%s", res.Status)
	}
}

func TestFastPathDialErrorIsDialError(t *testing.T) {
	ft, _ := newFast(t)
	req, _ := http.NewRequest(http.MethodGet, "http://"+deadAddr(t)+"/", nil)
	_, err := ft.RoundTrip(req)
	if !isDialError(err) {
		t.Fatalf("err %v, want a dial error", err)
	}
}
