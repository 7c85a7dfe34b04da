package proxy

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startBackend starts an HTTP server on 127.0.0.1 that answers with its ID, or with h.
func startBackend(t *testing.T, id string, h http.HandlerFunc) (Backend, *httptest.Server) {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, id) }
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return Backend{ID: id, Addr: srv.Listener.Addr().String()}, srv
}

// deadAddr returns a loopback address nothing listens on: connecting is refused.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// startProxy serves p on 127.0.0.1 and returns its URL.
func startProxy(t *testing.T, p *Proxy) string {
	t.Helper()
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

// logBuffer collects a logger's output for the test to inspect.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogged() (*Proxy, *logBuffer) {
	var lb logBuffer
	return New(slog.New(slog.NewTextHandler(&lb, &slog.HandlerOptions{Level: slog.LevelDebug}))), &lb
}

// get sends a GET for path with the given Host through the proxy at url.
func get(t *testing.T, c *http.Client, url, host, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

func TestKey(t *testing.T) {
	if got := Key("catalog", "staging"); got != "catalog.staging.localhost" {
		t.Fatalf("Key = %q", got)
	}
}

func TestHostKeyDropsPortCaseAndTrailingDot(t *testing.T) {
	for host, want := range map[string]string{
		"catalog.staging.localhost":      "catalog.staging.localhost",
		"catalog.staging.localhost:8080": "catalog.staging.localhost",
		"Catalog.Staging.LOCALHOST.:80":  "catalog.staging.localhost",
		"[::1]:8080":                     "[::1]",
		"[::1]":                          "[::1]",
		"":                               "",
		"example.com":                    "example.com",
	} {
		if got := hostKey(host); got != want {
			t.Errorf("hostKey(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestRoutesByHost(t *testing.T) {
	p := New(nil)
	catalog, _ := startBackend(t, "catalog-1", nil)
	shop, _ := startBackend(t, "shop-1", nil)
	p.Set(Key("catalog", "staging"), []Backend{catalog})
	p.Set(Key("shop", "prod"), []Backend{shop})
	url := startProxy(t, p)

	for host, want := range map[string]string{
		"catalog.staging.localhost":      "catalog-1",
		"catalog.staging.localhost:8080": "catalog-1",
		"SHOP.prod.localhost":            "shop-1",
	} {
		if code, body := get(t, http.DefaultClient, url, host, "/"); code != http.StatusOK || body != want {
			t.Errorf("Host %s: %d %q, want 200 %q", host, code, body, want)
		}
	}
	if got := p.Backends(Key("shop", "prod")); len(got) != 1 || got[0] != shop {
		t.Errorf("Backends = %v, want [%v]", got, shop)
	}

	p.Set(Key("shop", "prod"), nil)
	if got := p.Backends(Key("shop", "prod")); got != nil {
		t.Errorf("Backends after Set(nil) = %v", got)
	}
	if code, _ := get(t, http.DefaultClient, url, "shop.prod.localhost", "/"); code != http.StatusBadGateway {
		t.Errorf("removed route answered %d, want 502", code)
	}
	if code, body := get(t, http.DefaultClient, url, "catalog.staging.localhost", "/"); body != "catalog-1" {
		t.Errorf("other route after a removal: %d %q", code, body)
	}
}

func TestUnknownHostExplainsInPlainText(t *testing.T) {
	p := New(nil)
	secret, _ := startBackend(t, "secret-1", nil)
	p.Set(Key("secret", "prod"), []Backend{secret})
	url := startProxy(t, p)

	for host, want := range map[string]string{
		"catalog.staging.localhost:9000": "drover: no service catalog in environment staging is running\n",
		"example.com":                    "drover: no service is routed at host \"example.com\"\n",
		"localhost":                      "drover: no service is routed at host \"localhost\"\n",
	} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadGateway || string(body) != want {
			t.Errorf("Host %s: %d %q, want 502 %q", host, res.StatusCode, body, want)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q", ct)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
		if strings.Contains(string(body), "secret") {
			t.Errorf("the answer leaks another route: %q", body)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	p := New(nil)
	var got http.Header
	var gotHost string
	b, _ := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		got, gotHost = r.Header.Clone(), r.Host
	})
	p.Set(Key("catalog", "staging"), []Backend{b})
	url := startProxy(t, p)

	req, _ := http.NewRequest(http.MethodGet, url+"/x?y=1", nil)
	req.Host = "catalog.staging.localhost:8443"
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // a client's claim the edge proxy must not pass on
	req.Header.Set("X-Forwarded-Host", "evil.example")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	for name, want := range map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  "catalog.staging.localhost:8443",
		"X-Forwarded-Proto": "http",
	} {
		if v := got.Values(name); len(v) != 1 || v[0] != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	if gotHost != "catalog.staging.localhost:8443" {
		t.Errorf("backend saw Host %q, want the client's %q", gotHost, "catalog.staging.localhost:8443")
	}
}

// TestInstanceSeesClientHost checks that the client's Host reaches the instance
// unchanged on every path: the fast path, the fallback (an upload too large for the
// fast path) and a retry on another backend after a refused connection.
func TestInstanceSeesClientHost(t *testing.T) {
	type seen struct{ host, fwdHost, proto, path string }
	got := make(chan seen, 1)
	h := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got <- seen{r.Host, r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"), r.URL.Path}
	}
	p := New(nil)
	b, _ := startBackend(t, "b", h)
	p.Set(Key("web", "prod"), []Backend{b})
	p.Set(Key("web", "retry"), []Backend{{ID: "dead", Addr: deadAddr(t)}, b})
	url := startProxy(t, p)

	for _, tc := range []struct {
		name, host string
		bodySize   int // a POST of this many bytes; 0 for a GET
		times      int
	}{
		{"fast path", "Web.Prod.localhost:8080", 0, 1},
		{"fallback", "web.prod.localhost", maxBufferedBody + 1, 1},
		// Twice: one of the two turns picks the dead backend first and retries.
		{"retry", "web.retry.localhost:80", 0, 2},
	} {
		for range tc.times {
			method, body := http.MethodGet, io.Reader(nil)
			if tc.bodySize > 0 {
				method, body = http.MethodPost, bytes.NewReader(make([]byte, tc.bodySize))
			}
			req, _ := http.NewRequest(method, url+"/p", body)
			req.Host = tc.host
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d", tc.name, res.StatusCode)
			}
			want := seen{tc.host, tc.host, "http", "/p"}
			if s := <-got; s != want {
				t.Errorf("%s: instance saw Host %q, X-Forwarded-Host %q, -Proto %q, path %q; want %+v",
					tc.name, s.host, s.fwdHost, s.proto, s.path, want)
			}
		}
	}
}

func TestBalancingSpreadsRequests(t *testing.T) {
	p := New(nil)
	var set []Backend
	for i := range 3 {
		b, _ := startBackend(t, fmt.Sprintf("b%d", i), nil)
		set = append(set, b)
	}
	key := Key("catalog", "staging")
	p.Set(key, set)
	url := startProxy(t, p)

	hits := map[string]int{}
	for range 30 {
		_, body := get(t, http.DefaultClient, url, key, "/")
		hits[body]++
	}
	for _, b := range set {
		// One request at a time: every backend is always tied at 0 in flight, so round
		// robin alone decides and splits evenly.
		if hits[b.ID] != 10 {
			t.Errorf("hits = %v, want 10 each", hits)
			break
		}
	}
}

func TestBalancingAvoidsBusyBackend(t *testing.T) {
	p := New(nil)
	release := make(chan struct{})
	slow, _ := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, "slow")
	})
	fast, _ := startBackend(t, "fast", nil)
	key := Key("catalog", "staging")
	p.Set(key, []Backend{slow})
	url := startProxy(t, p)

	done := make(chan string, 1)
	go func() {
		_, body := get(t, http.DefaultClient, url, key, "/slow")
		done <- body
	}()
	waitFor(t, func() bool { return p.InFlight("slow") == 1 })
	// The count carries over to the new set, which keeps slow: requests avoid it.
	p.Set(key, []Backend{slow, fast})
	for range 10 {
		if _, body := get(t, http.DefaultClient, url, key, "/"); body != "fast" {
			t.Fatalf("a request went to %q, which has a request in flight", body)
		}
	}
	close(release)
	if body := <-done; body != "slow" {
		t.Fatalf("slow request answered %q", body)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5 s")
}

// TestRetriesGETWhenTheBackendDiesMidRequest: an instance killed while it holds a GET
// costs the user nothing; a POST is not repeated.
func TestRetriesGETWhenTheBackendDiesMidRequest(t *testing.T) {
	var posts atomic.Int32
	dying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close() // dies without answering
	}))
	defer dying.Close()
	alive := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		io.WriteString(w, "alive")
	}))
	defer alive.Close()
	p := New(nil)
	p.Set("web.prod.localhost", []Backend{{ID: "dying", Addr: dying.Listener.Addr().String()}, {ID: "alive", Addr: alive.Listener.Addr().String()}})
	front := httptest.NewServer(p)
	defer front.Close()
	for i := range 10 {
		req, _ := http.NewRequest(http.MethodGet, front.URL, nil)
		req.Host = "web.prod.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "alive" {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
		}
	}
	posts.Store(0)
	failed := 0
	for range 10 {
		req, _ := http.NewRequest(http.MethodPost, front.URL, strings.NewReader("x"))
		req.Host = "web.prod.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failed++
		}
	}
	if int(posts.Load()) != 10 {
		t.Errorf("10 POSTs reached the backends %d times: a POST was repeated or lost", posts.Load())
	}
	if failed == 0 {
		t.Log("no POST met the dying backend (balancing); the GET part still holds")
	}
}

func TestLastUsedFollowsRequests(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	p := New(nil)
	if !p.LastUsed("web.dev.localhost").IsZero() {
		t.Error("a missing route was used")
	}
	p.Set("web.dev.localhost", []Backend{{ID: "a", Addr: backend.Listener.Addr().String()}})
	joined := p.LastUsed("web.dev.localhost")
	if joined.IsZero() {
		t.Fatal("a new route has no time")
	}
	time.Sleep(2 * time.Millisecond)
	front := httptest.NewServer(p)
	defer front.Close()
	req, _ := http.NewRequest("GET", front.URL, nil)
	req.Host = "web.dev.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if used := p.LastUsed("WEB.dev.localhost"); !used.After(joined) {
		t.Errorf("LastUsed %v not after the route joined %v", used, joined)
	}
}

// A backend that stops answering without closing its connections (its machine is gone)
// holds requests in flight until Abort: then GETs go to another backend at once, a
// POST fails rather than being sent twice, and the address serves again once a
// backend there joins a route.
func TestAbortSendsRequestsInFlightElsewhere(t *testing.T) {
	hang := make(chan struct{})
	arrived := make(chan string, 4)
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.Method
		<-hang // never answers while the test runs
	}))
	defer func() { close(hang); silent.Close() }()
	alive, _ := startBackend(t, "alive", nil)
	p := New(nil)
	key := Key("web", "prod")
	p.Set(key, []Backend{{ID: "silent", Addr: silent.Listener.Addr().String()}})
	url := startProxy(t, p)

	type answer struct {
		code int
		body string
		err  error
	}
	send := func(method string) chan answer {
		out := make(chan answer, 1)
		go func() {
			var body io.Reader
			if method == http.MethodPost {
				body = strings.NewReader("x")
			}
			req, _ := http.NewRequest(method, url, body)
			req.Host = "web.prod.localhost"
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				out <- answer{err: err}
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			out <- answer{code: res.StatusCode, body: string(b)}
		}()
		<-arrived
		return out
	}
	inGet, inPost := send(http.MethodGet), send(http.MethodPost)
	select {
	case a := <-inGet:
		t.Fatalf("a GET to a silent backend was answered before Abort: %+v", a)
	case <-time.After(100 * time.Millisecond):
	}
	p.Set(key, []Backend{alive})
	p.Abort("silent")
	for name, ch := range map[string]chan answer{"GET": inGet, "POST": inPost} {
		select {
		case a := <-ch:
			switch {
			case name == "GET" && (a.err != nil || a.code != 200 || a.body != "alive"):
				t.Errorf("GET in flight when its backend was aborted: %+v, want alive's answer", a)
			case name == "POST" && (a.err != nil || a.code != http.StatusBadGateway):
				t.Errorf("POST in flight when its backend was aborted: %+v, want 502", a)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the %s in flight still waits 5s after Abort", name)
		}
	}
	if len(arrived) != 0 {
		t.Errorf("a request reached the aborted backend again: %s", <-arrived)
	}

	// The address serves again once a backend there joins a route.
	again, _ := startBackend(t, "again", nil)
	p.Set(key, []Backend{again})
	p.Abort("again")
	p.Set(key, []Backend{{ID: "again-2", Addr: again.Addr}})
	if code, body := get(t, http.DefaultClient, url, "web.prod.localhost", "/"); code != 200 || body != "again" {
		t.Errorf("after a backend joined at an aborted address: %d %q", code, body)
	}
}
